"""pixelwise.data.

The names below are imported lazily (PEP 562), so ``python -m pixelwise.data.<module>`` runs a
module that the package has not imported already (runpy warns otherwise).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "HPatches": "pixelwise.data.hpatches",
    "SuperPointPairs": "pixelwise.data.superpoint_pairs",
    "SCENE_CLASSES": "pixelwise.data.synthetic_scenes",
    "SCENE_PALETTE": "pixelwise.data.synthetic_scenes",
    "SyntheticScenes": "pixelwise.data.synthetic_scenes",
    "PRIMITIVES": "pixelwise.data.synthetic_shapes",
    "SyntheticShapes": "pixelwise.data.synthetic_shapes",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import an exported name on first access."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'pixelwise.data' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
