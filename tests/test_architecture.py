"""DESIGN.md's rooms, checked on the source: which room may import which, and no import cycles.

The rules are read off the import statements (``ast``), so a lazy import inside a function
counts too: a room that is not allowed to depend on another may not reach it at any time.
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

import pixelwise

PACKAGE = Path(pixelwise.__file__).parent

# The rooms of DESIGN.md and what each may import of the project besides itself. Top-level
# helper modules (errors, formats, drawing, ...) are rooms of their own, named by module.
ALLOWED: dict[str, set[str]] = {
    "geometry": set(),
    "nets": {"geometry"},
    "losses": {"geometry"},
    "metrics": {"geometry"},
    "errors": set(),
    "formats": {"errors"},
    "data": {"geometry", "formats", "errors"},
    "tasks": {"nets", "losses", "geometry", "metrics"},
    # Callbacks update metrics and draw: never nets (classical baselines are models the task
    # scores) nor data (dataset facts come through the task's outputs and DatasetInfo).
    "callbacks": {"metrics", "geometry", "formats", "drawing", "hpatches_report", "tasks"},
    "drawing": set(),
    "hpatches_report": {"metrics"},
}

# Within an allowed room, the only modules a room may import (callbacks read the tasks' typed
# outputs, the contract of DESIGN.md, never a task class).
ONLY_MODULES: dict[tuple[str, str], str] = {("callbacks", "tasks"): "pixelwise.tasks.outputs"}

# Only these modules may import Hydra itself (DESIGN: cli.py is the only module that knows Hydra).
HYDRA_USERS = {"cli"}


def _room(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _module(path: Path) -> str:
    rel = path.relative_to(PACKAGE).with_suffix("")
    parts = ("pixelwise", *rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, module_level_only: bool = False) -> list[str]:
    """Absolute module names imported by ``path`` (relative imports resolved)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _module(path) if path.name == "__init__.py" else _module(path).rpartition(".")[0]
    nodes = tree.body if module_level_only else list(ast.walk(tree))
    names = []
    for node in nodes:
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                prefix = ".".join(base)
                module = f"{prefix}.{node.module}" if node.module else prefix
            else:
                module = node.module or ""
            names.append(module)
            # `from pixelwise.tasks import outputs` imports the submodule too.
            names += [f"{module}.{alias.name}" for alias in node.names]
    return names


SOURCES = sorted(p for p in PACKAGE.rglob("*.py") if "conf" not in p.relative_to(PACKAGE).parts)


def test_sources_found():
    assert len(SOURCES) > 50, SOURCES


@pytest.mark.parametrize("room", sorted(ALLOWED))
def test_room_imports_only_what_design_allows(room):
    offending = []
    for path in SOURCES:
        if _room(path) != room:
            continue
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] != "pixelwise" or len(parts) < 2:
                continue
            target = parts[1]
            is_room = (PACKAGE / target).is_dir() or (PACKAGE / f"{target}.py").exists()
            if is_room and target != room and target not in ALLOWED[room]:
                offending.append(f"{path.relative_to(PACKAGE)} imports {name}")
            only = ONLY_MODULES.get((room, target))
            if only and not (name == only or name.startswith(only + ".")):
                offending.append(f"{path.relative_to(PACKAGE)} imports {name}, not {only}")
    assert not offending, f"room {room!r} may import only {sorted(ALLOWED[room])}: {offending}"


def test_only_cli_imports_hydra():
    offending = [
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in SOURCES
        if _room(path) not in HYDRA_USERS
        for name in _imports(path)
        if name.split(".")[0] == "hydra"
    ]
    assert not offending, offending


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` (node -> the nodes it imports) as a list of nodes, or None."""
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as error:
        return list(error.args[1])
    return None


def test_cycle_finder_finds_a_cycle():
    cycle = _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}})
    assert cycle is not None and len(cycle) == 4 and cycle[0] == cycle[-1]
    assert set(cycle) == {"a", "b", "c"}
    assert _cycle({"a": {"b"}, "b": set(), "c": {"b"}}) is None


def test_no_import_cycles_at_module_level():
    """Import-time cycles between modules (imports at the top of a module, as Python runs them)."""
    modules = {_module(p): p for p in SOURCES}
    # A package's __init__ re-exporting its own submodules is not a cycle of the code's logic.
    graph = {
        name: {
            target
            for target in _imports(path, module_level_only=True)
            if target in modules and target != name and not target.startswith(name + ".")
        }
        for name, path in modules.items()
    }
    assert sum(map(len, graph.values())) > 100  # the graph was read, not found empty
    cycle = _cycle(graph)
    assert cycle is None, f"import cycle: {' -> '.join(cycle)}"
