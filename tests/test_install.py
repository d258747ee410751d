"""A non-editable install runs from outside the repository: configs and weights are package data.

The package is built from a copy of the sources and installed (``pip install --no-deps
--no-build-isolation``, no network) into a fresh venv made without system site-packages. Its
third-party dependencies are borrowed from the test's own environment through a ``.pth`` line
(a plain path: that environment's own ``.pth`` files, among them the editable install of this
repository, are not run), so ``pixelwise`` itself can only come from the installed copy; the
test checks that it does before running the console scripts from a temporary directory.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _run(args: list, cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(WANDB_MODE="offline", WANDB_SILENT="true", OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, (
        f"{' '.join(map(str, args))} exited {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}"
        f"\n--- stderr\n{proc.stderr[-5000:]}"
    )
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """bin/ of a fresh venv with pixelwise installed from a wheel of a copy of the sources."""
    root = tmp_path_factory.mktemp("install")
    source = root / "source"
    source.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md", "LICENSE"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(
        REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    venv = root / "venv"
    _run([sys.executable, "-m", "venv", venv], cwd=root)
    python = venv / "bin" / "python"
    purelib = Path(
        _run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], root
        ).stdout.strip()
    )
    # The dependencies (torch, lightning, hydra, ...) and the build backend: the venv's own old
    # setuptools (from ensurepip) would shadow the one pyproject.toml needs.
    _run([python, "-m", "pip", "uninstall", "--quiet", "--yes", "setuptools"], cwd=root)
    (purelib / "zz_pixelwise_test_deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    _run(
        [python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", source],
        cwd=root,
    )
    return venv / "bin"


@pytest.mark.slow
def test_the_installed_package_is_used_with_its_configs_weights_and_license(installed, tmp_path):
    code = (
        "import pixelwise, pixelwise.cli as c\n"
        "from pixelwise import SuperPoint\n"
        "from importlib.metadata import distribution\n"
        "print(pixelwise.__file__)\n"
        "print(c.CONFIG_DIR)\n"
        "print(SuperPoint.from_pretrained('superpoint_photos').pretrained)\n"
        "print(sorted(f.name for f in distribution('pixelwise').files if 'LICENSE' in f.name))\n"
    )
    lines = _run([installed / "python", "-c", code], tmp_path).stdout.splitlines()
    venv = installed.parent
    for line in lines[:3]:
        assert Path(line).resolve().is_relative_to(venv.resolve()), lines
        assert not Path(line).resolve().is_relative_to(REPO), lines
    assert Path(lines[1], "train.yaml").is_file()
    assert lines[3] == "['LICENSE']"


@pytest.mark.slow
def test_pixelwise_train_fast_dev_run_from_outside_the_repository(installed, tmp_path):
    proc = _run(
        [
            installed / "pixelwise-train",
            "task=segmentation",
            "trainer.fast_dev_run=true",
            "data.num_workers=0",
            "hydra.run.dir=run",
        ],
        tmp_path,
    )
    assert (tmp_path / "run" / "config.yaml").is_file()
    assert (tmp_path / "run" / "metrics.json").is_file()
    assert "run directory:" in proc.stdout


@pytest.mark.slow
def test_console_scripts_answer_help(installed, tmp_path):
    for script in ("pixelwise-match", "pixelwise-hpatches-offline", "pixelwise-sample-images"):
        out = _run([installed / script, "--help"], tmp_path).stdout
        assert "usage: " + script in out
    _run([installed / "pixelwise-evaluate", "--cfg", "job"], tmp_path)


_FIRST_BOUNDARY_CALLS = """
import json, time
import numba, torch
from pixelwise.geometry import thinning
from pixelwise.metrics import BoundaryF, boundary_matching

g = torch.Generator().manual_seed(1)
preds = torch.rand(2, 40, 50, generator=g)
targets = [torch.rand(3, 40, 50, generator=g) > 0.9 for _ in range(2)]
start = time.perf_counter()
BoundaryF(thresholds=99).update(preds, targets)
first = time.perf_counter() - start
for kwargs in ({}, {"edge_nms": True}, {"approximate": True}, {"thin": False}, {"num_threads": 2}):
    for p in (preds, (preds * 255).to(torch.uint8)):
        metric = BoundaryF(thresholds=5, **kwargs)
        metric.update(p, targets)
        metric.compute()
thinning.thin(targets[0])
thinning.edge_nms(preds)
boundary_matching.correspond_pixels(targets[0][0].numpy(), targets[0][1].numpy())
kernels = {
    f"{module.__name__}.{name}": kernel
    for module in (thinning, boundary_matching)
    for name, kernel in vars(module).items()
    if isinstance(kernel, numba.core.registry.CPUDispatcher)
}
print(json.dumps({
    "first_update": first,
    "hits": {n: sum(k.stats.cache_hits.values()) for n, k in kernels.items()},
    "misses": {n: [str(s) for s in k.stats.cache_misses] for n, k in kernels.items() if k.stats.cache_misses},
    "cache_paths": sorted({k.stats.cache_path for k in kernels.values()}),
}))
"""


@pytest.mark.slow
def test_first_boundary_f_calls_after_install_load_compiled_kernels(installed, tmp_path):
    """The wheel carries the numba kernels compiled at build (setup.py): no call compiles one."""
    import json

    report = json.loads(
        _run([installed / "python", "-c", _FIRST_BOUNDARY_CALLS], tmp_path).stdout.splitlines()[-1]
    )
    assert report["misses"] == {}, f"kernels compiled at run time: {report['misses']}"
    assert sum(report["hits"].values()) >= 5, report["hits"]
    venv = installed.parent.resolve()
    for path in report["cache_paths"]:
        assert Path(path).resolve().is_relative_to(venv), report["cache_paths"]
    # For the record (not asserted: times are benchmarks' business).
    print(f"first BoundaryF.update after install: {report['first_update']:.2f} s")
