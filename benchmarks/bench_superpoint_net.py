"""MagicPoint training step (forward + cell cross-entropy + backward + AdamW): default vs channels_last.

    .venv/bin/python benchmarks/bench_superpoint_net.py [--quick] [--batch N] [--threads 2]

Full run: batch 32, two alternating rounds of 4 timed steps per format. ``--quick``: batch 8,
one round of 2 timed steps (a step at batch 32 takes ~10-18 s on 2 shared cores).

Prints a markdown table: seconds per step and images/s for each memory format, and the ratio
default / channels_last (> 1 means channels_last is faster), measured in the same run on the
same random batch (120 x 160 gray images, random 65-class cell labels).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_line  # noqa: E402

from pixelwise.losses import cell_cross_entropy  # noqa: E402
from pixelwise.nets import magicpoint  # noqa: E402


def time_steps(
    memory_format: torch.memory_format, images, labels, warmup: int, steps: int
) -> list[float]:
    """Seconds of each of `steps` training steps after `warmup` untimed ones, fresh net and optimizer."""
    torch.manual_seed(0)
    net = magicpoint().to(memory_format=memory_format)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    x = images.contiguous(memory_format=memory_format)
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = cell_cross_entropy(net(x)["logits"], labels)
        loss.backward()
        opt.step()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="batch 8, 1 warm-up + 2 timed steps per format (< 60 s)",
    )
    parser.add_argument("--batch", type=int, default=None, help="default 32 (quick: 8)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="timed steps per format and round (default 4, quick 2)",
    )
    args = parser.parse_args()
    if args.batch is None:
        args.batch = 8 if args.quick else 32
    torch.set_num_threads(args.threads)
    warmup, steps = (1, 2) if args.quick else (1, 4)
    if args.steps is not None:
        steps = args.steps

    g = torch.Generator().manual_seed(0)
    h, w = 120, 160
    images = torch.rand(args.batch, 1, h, w, generator=g)
    labels = torch.randint(0, 65, (args.batch, h // 8, w // 8), generator=g)

    results = {}
    # Alternate the two formats so that a load change on the shared machine hits both.
    rounds = 1 if args.quick else 2
    for _ in range(rounds):
        for name, fmt in (
            ("contiguous (default)", torch.contiguous_format),
            ("channels_last", torch.channels_last),
        ):
            results.setdefault(name, []).extend(time_steps(fmt, images, labels, warmup, steps))

    base = statistics.median(results["contiguous (default)"])
    print(
        f"MagicPoint training step, batch {args.batch}, {h}x{w}, AdamW, {args.threads} threads "
        f"({'quick' if args.quick else 'full'}: median of {len(results['channels_last'])} steps)\n"
    )
    print(
        "| memory format | s / step (median) | min | images / s | speed-up vs default (baseline measured in this run) |"
    )
    print("|---|---|---|---|---|")
    for name, ts in results.items():
        med = statistics.median(ts)
        print(
            f"| {name} | {med:.3f} | {min(ts):.3f} | {args.batch / med:.1f} | {base / med:.2f}x |"
        )
    print(f"\n{machine_line()}")


if __name__ == "__main__":
    main()
