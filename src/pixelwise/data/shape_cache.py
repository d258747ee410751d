"""On-disk cache of rendered Synthetic Shapes (before augmentation), as the reference keeps its set.

The reference generator renders a fixed set of shapes once (10 000 per primitive for training)
and augments them on the fly. Rendering one reference-distribution shape costs ~17 ms on one
core (a 960x1280 canvas, :mod:`pixelwise.data.reference_shapes`) against ~1 ms to augment it,
so training reads its shapes from this cache and draws fresh augmentations every epoch.

Layout of one cache (a directory named after everything that determines its content):
``images.npy`` uint8 [N, H, W], ``points.npy`` float32 [M, 2] (all shapes' points, in order),
``offsets.npy`` int64 [N + 1] (shape i owns ``points[offsets[i]:offsets[i + 1]]``) and
``primitives.npy`` int8 [N] (index into the dataset's primitive list). Files are written
under temporary names and renamed when complete, so an interrupted build is redone, never
read half-written; several processes building the same cache at once each finish a complete
copy and the last rename wins.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from pixelwise.errors import UnreadableFileError

__all__ = ["ShapeCache", "cache_key"]

log = logging.getLogger(__name__)
_FILES = ("images", "points", "offsets", "primitives")
# Bump when the renderer's output changes, so old caches are not reused.
RENDER_VERSION = 1


def cache_key(description: dict) -> str:
    """Stable short hash of a JSON-able description of the cached content."""
    text = json.dumps({"version": RENDER_VERSION, **description}, sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


class ShapeCache:
    """Memory-mapped rendered shapes in ``directory``, built by ``render(i) -> (image uint8 [H,W], points [K,2], primitive index)`` if missing."""

    def __init__(
        self,
        directory: str | Path,
        count: int,
        size: tuple[int, int],
        render: Callable[[int], tuple[np.ndarray, np.ndarray, int]],
    ) -> None:
        self.directory = Path(directory).expanduser()
        if not all((self.directory / f"{name}.npy").is_file() for name in _FILES):
            self._build(count, size, render)
        try:
            arrays = {
                name: np.load(self.directory / f"{name}.npy", mmap_mode="r") for name in _FILES
            }
        except (OSError, ValueError) as err:
            raise UnreadableFileError(
                f"Synthetic Shapes cache {self.directory} is unreadable ({err}); delete it to rebuild"
            ) from err
        self.images = arrays["images"]
        self.points = arrays["points"]
        self.offsets = arrays["offsets"]
        self.primitives = arrays["primitives"]
        if self.images.shape != (count, *size) or self.offsets.shape != (count + 1,):
            raise UnreadableFileError(
                f"Synthetic Shapes cache {self.directory} holds images {self.images.shape}, "
                f"expected {(count, *size)}; delete it to rebuild"
            )

    def _build(
        self,
        count: int,
        size: tuple[int, int],
        render: Callable[[int], tuple[np.ndarray, np.ndarray, int]],
    ) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        log.info("Rendering %d Synthetic Shapes into the cache %s", count, self.directory)
        start = time.perf_counter()
        tag = f".tmp{os.getpid()}"
        images = np.lib.format.open_memmap(
            self.directory / f"images{tag}.npy", mode="w+", dtype=np.uint8, shape=(count, *size)
        )
        points, offsets = [], np.zeros(count + 1, np.int64)
        primitives = np.zeros(count, np.int8)
        step = max(count // 10, 1)
        for i in range(count):
            image, pts, primitive = render(i)
            images[i] = image
            points.append(np.asarray(pts, np.float32).reshape(-1, 2))
            offsets[i + 1] = offsets[i] + len(points[-1])
            primitives[i] = primitive
            if (i + 1) % step == 0:
                log.info("  %d / %d shapes (%.0f s)", i + 1, count, time.perf_counter() - start)
        images.flush()
        del images
        arrays = {
            "points": np.concatenate(points) if points else np.zeros((0, 2), np.float32),
            "offsets": offsets,
            "primitives": primitives,
        }
        for name, array in arrays.items():
            with open(self.directory / f"{name}{tag}.npy", "wb") as f:
                np.save(f, array)
        # images last: its presence (with the others) marks a complete cache.
        for name in ("points", "offsets", "primitives", "images"):
            os.replace(self.directory / f"{name}{tag}.npy", self.directory / f"{name}.npy")
        log.info("Rendered %d shapes in %.0f s", count, time.perf_counter() - start)

    def item(self, index: int) -> tuple[np.ndarray, np.ndarray, int]:
        """Shape ``index``: (image uint8 [H, W], points float64 [K, 2], primitive index)."""
        lo, hi = int(self.offsets[index]), int(self.offsets[index + 1])
        return (
            np.asarray(self.images[index]),
            np.asarray(self.points[lo:hi], np.float64),
            int(self.primitives[index]),
        )
