"""Synthetic Shapes item speed: the reference recipe on the fly, from the shape cache, and the fast renderer.

``SyntheticShapes(renderer="reference")`` draws each shape as the SuperPoint reference does
(960x1280 canvas, 21x21 blur, bilinear resize; :mod:`pixelwise.data.reference_shapes`), which
is what the paper's numbers are measured on but costs ~17 ms per shape. Training therefore reads
its shapes from the on-disk cache (:mod:`pixelwise.data.shape_cache`, as the reference caches
its set) and only augments them per item. This measures, in one run, items/s of:

- the reference renderer on the fly, clean and with the training augmentation (the baseline);
- the same items from the cache (the training path);
- the fast renderer (:mod:`pixelwise.data.shape_primitives`), for comparison.

One thread (cv2 and torch); CPU time of this process. The cache is built in a temporary
directory first (not timed).

Usage: ``.venv/bin/python benchmarks/bench_synthetic_shapes.py [--quick]``
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import cv2
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_line  # noqa: E402

from pixelwise.data.synthetic_shapes import SyntheticShapes  # noqa: E402


def _per_item(dataset: SyntheticShapes, n: int) -> float:
    """CPU seconds per item over items 0..n-1 (best of 2 runs, to damp machine noise)."""
    best = math.inf
    for _ in range(2):
        t0 = time.process_time()
        for i in range(n):
            dataset[i]
        best = min(best, (time.process_time() - t0) / n)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer items (< 60 s)")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    n = 40 if args.quick else 300

    with tempfile.TemporaryDirectory() as cache:
        kinds = {
            "reference, on the fly (baseline)": {},
            "reference, from the cache": {"cache_dir": cache},
            "fast renderer": {"renderer": "fast"},
        }
        times = {}
        for name, kwargs in kinds.items():
            clean = SyntheticShapes(length=n, photometric=False, homographic=False, **kwargs)
            augmented = SyntheticShapes(length=n, **kwargs)  # same shapes: one cache serves both
            times[name] = (_per_item(clean, n), _per_item(augmented, n))

    base_clean, base_aug = times["reference, on the fly (baseline)"]
    print("## Synthetic Shapes items, 120x160, reference mix, one thread (items/s of CPU time)\n")
    print("| source | clean items/s | vs baseline | with training augmentation | vs baseline |")
    print("|---|---:|---:|---:|---:|")
    for name, (t_clean, t_aug) in times.items():
        print(
            f"| {name} | {1 / t_clean:.0f} | {base_clean / t_clean:.1f}x "
            f"| {1 / t_aug:.0f} | {base_aug / t_aug:.1f}x |"
        )
    print(f"\n{n} items per row; baseline measured in this run.")
    print(machine_line())


if __name__ == "__main__":
    main()
