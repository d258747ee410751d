"""Homographic adaptation vs a bare forward of the same detector over the same number of images.

Goal (issue 6): adaptation time <= 1.15x the bare forward of B*N images (warps, masks and
aggregation cheap next to the net). Usage: python benchmarks/bench_adaptation.py [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pixelwise.geometry.adaptation import homographic_adaptation  # noqa: E402
from pixelwise.geometry.homography import sample_homography, warp_images  # noqa: E402

try:
    from _machine import machine_line  # noqa: E402
except ImportError:  # pragma: no cover - the lead adds it
    import os
    import platform

    def machine_line() -> str:
        return f"machine: {platform.processor()}, {os.cpu_count()} cores, torch {torch.__version__}"


class StandInMagicPoint(nn.Module):
    """MagicPoint-size VGG (64-64-128-128, head 256 -> 65), used if SuperPointNet is missing."""

    def __init__(self) -> None:
        super().__init__()
        widths = [
            (1, 64),
            (64, 64),
            (64, 64),
            (64, 64),
            (64, 128),
            (128, 128),
            (128, 128),
            (128, 128),
        ]
        self.convs = nn.ModuleList(nn.Conv2d(i, o, 3, padding=1) for i, o in widths)
        self.head_a = nn.Conv2d(128, 256, 3, padding=1)
        self.head_b = nn.Conv2d(256, 65, 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        for i, conv in enumerate(self.convs):
            x = F.relu(conv(x))
            if i in (1, 3, 5):
                x = F.max_pool2d(x, 2)
        return {"logits": self.head_b(F.relu(self.head_a(x)))}


def make_detector():
    """(name, callable [b,1,h,w] -> softmax heatmap [b,1,h,w])."""
    try:
        from pixelwise.nets.superpoint import SuperPointNet

        net, name = SuperPointNet(descriptor=False), "SuperPointNet(descriptor=False)"
    except ImportError:
        net, name = StandInMagicPoint(), "stand-in MagicPoint VGG"
    net.eval()

    def detector(images: torch.Tensor) -> torch.Tensor:
        logits = net(images)["logits"]
        heat = F.pixel_shuffle(torch.softmax(logits, dim=1)[:, :64], 8)
        return heat[..., : images.shape[-2], : images.shape[-1]]

    return name, detector


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="N=10, 120x160, 3 repeats (< 60 s)")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (default 1: the machine is shared)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    if args.quick:
        batch, n, shape, chunk, repeats = 2, 10, (120, 160), 10, 3
    else:
        batch, n, shape, chunk, repeats = 2, 100, (240, 320), 25, 3
    name, detector = make_detector()
    images = torch.rand(batch, 1, *shape)
    # The baseline sees the very images the adaptation feeds the net (the originals and
    # their warps by the same homographies): the net's CPU speed depends on the data
    # (zeros run faster than noise), so other inputs would bias the ratio.
    homs = sample_homography(batch * (n - 1), shape, generator=torch.Generator().manual_seed(0))
    plain_inputs = torch.cat([images, warp_images(images.repeat_interleave(n - 1, dim=0), homs)])

    def bare() -> None:
        with torch.no_grad():
            for i in range(0, batch * n, chunk):
                detector(plain_inputs[i : i + chunk])

    def adapt(net=detector) -> None:
        homographic_adaptation(
            net,
            images,
            num_homographies=n,
            chunk_size=chunk,
            generator=torch.Generator().manual_seed(0),
        )

    def free_detector(x: torch.Tensor) -> torch.Tensor:
        return x[:, :1]

    bare()  # warm-up (allocator, oneDNN kernels)
    # CPU time of this process (one thread), not wall time: on a machine shared with other
    # jobs wall time mostly measures their load. Wall times are printed too.
    runs = {"bare": bare, "adapt": adapt, "overhead": lambda: adapt(free_detector)}
    cpu = {k: [] for k in runs}
    wall = {k: [] for k in runs}
    for _ in range(repeats):  # interleaved so drifts hit all alike
        for key, fn in runs.items():
            c0, w0 = time.process_time(), time.perf_counter()
            fn()
            cpu[key].append(time.process_time() - c0)
            wall[key].append(time.perf_counter() - w0)
    tb, ta, to = (statistics.median(cpu[k]) for k in runs)
    wb, wa, wo = (statistics.median(wall[k]) for k in runs)
    warped = batch * n

    print(
        f"## Homographic adaptation vs bare forward ({name}, {shape[0]}x{shape[1]}, N={n}, chunk={chunk})\n"
    )
    print("| run | CPU time (s) | wall time (s) | warped images/s (CPU) | source images/s (CPU) |")
    print("|---|---:|---:|---:|---:|")
    print(
        f"| baseline, measured in this run: bare forward of the same {warped} (warped) images | {tb:.2f} | {wb:.2f} | {warped / tb:.2f} | - |"
    )
    print(
        f"| homographic_adaptation, {batch} images x {n} | {ta:.2f} | {wa:.2f} | {warped / ta:.2f} | "
        f"{batch / ta:.4f} |"
    )
    print(
        f"| adaptation with a free detector (overhead only) | {to:.2f} | {wo:.2f} | {warped / to:.1f} | - |"
    )
    print(
        f"\n**ratio adaptation / bare forward (CPU time, both measured in this run): {ta / tb:.3f}** (goal <= 1.15; median of {repeats})"
    )
    print(f"\nratio (bare + overhead) / bare: {(tb + to) / tb:.3f}; wall-time ratio {wa / wb:.3f}")
    print(f"\n{machine_line()}")


if __name__ == "__main__":
    main()
