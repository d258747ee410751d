"""How fast one worker thread renders SyntheticScenes (scenes/s), raw and through __getitem__.

    .venv/bin/python benchmarks/bench_scenes.py [--quick]

Rows: sizes 96x128 (the default segmentation task) and 256x512. Columns: scenes/s of
`render` (numpy), of `__getitem__` (tensors) and of `__getitem__` with a typical augmentation,
each as wall-clock and as CPU time of this process (the machine may be shared; CPU time is what
one DataLoader worker would need on an idle core). The ratio column is against the raw render
measured in the same run; "x target" compares raw render with the 300 scenes/s aim at 96x128.
"""

from __future__ import annotations

import argparse
import time

import albumentations as A
import cv2

from pixelwise.data.synthetic_scenes import SyntheticScenes

try:
    from _machine import machine_line
except ImportError:  # run from elsewhere than benchmarks/
    import os
    import platform

    def machine_line() -> str:
        return f"machine: {platform.processor()}, {os.cpu_count()} cores"


TARGET = 300.0  # scenes/s at 96x128 on one thread


def _rate(fn, n: int) -> tuple[float, float]:
    """(wall, cpu) calls per second of fn(i) for i in range(n), after one warm-up call."""
    fn(0)
    w, c = time.perf_counter(), time.process_time()
    for i in range(n):
        fn(i)
    return n / (time.perf_counter() - w), n / max(time.process_time() - c, 1e-9)


def scenes_per_second(size: tuple[int, int], n: int) -> float:
    """Wall-clock scenes/s of SyntheticScenes.render on this thread at size (H, W), over n scenes."""
    cv2.setNumThreads(0)
    ds = SyntheticScenes(size=size, length=n + 1, seed=0)
    return _rate(ds.render, n)[0]


def main() -> None:
    """Print the markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer scenes (< 60 s)")
    args = parser.parse_args()
    cv2.setNumThreads(0)
    aug = A.Compose([A.HorizontalFlip(p=0.5), A.RandomBrightnessContrast(p=0.5)])
    print(
        "| size | mode | scenes/s wall | scenes/s CPU | ratio vs render (CPU; baseline measured in this run) | x target |"
    )
    print("|---|---|---:|---:|---:|---:|")
    for size, n in (
        ((96, 128), 150 if args.quick else 1000),
        ((256, 512), 30 if args.quick else 200),
    ):
        ds = SyntheticScenes(size=size, length=n + 1, seed=0)
        dsa = SyntheticScenes(size=size, length=n + 1, seed=0, transform=aug)
        base = None
        for mode, fn in (
            ("render", ds.render),
            ("getitem", ds.__getitem__),
            ("getitem+aug", dsa.__getitem__),
        ):
            wall, cpu = _rate(fn, n)
            base = base or cpu
            target = f"{cpu / TARGET:.2f}" if size == (96, 128) and mode == "render" else ""
            print(
                f"| {size[0]}x{size[1]} | {mode} | {wall:.0f} | {cpu:.0f} | {cpu / base:.2f} | {target} |"
            )
    print()
    print(machine_line())


if __name__ == "__main__":
    main()
