"""Extra peak memory and time of descriptor_hinge_loss (forward + backward) vs the obvious batched-matmul implementation.

Goal (issue 7): at batch 16, 240x320 (Hc, Wc = 30, 40), D = 256 the loss's extra peak memory
stays under 512 MiB, and its time is a small fraction of a training step.

The baseline, measured in this run at the same size, is the plain-autograd implementation
anyone would write first: ``torch.bmm`` of the normalised descriptors ([B, N, N] dots,
N = Hc*Wc), a float [B, N, N] positive mask from ``torch.cdist``, the two hinge terms, the
mean. Its loss value is checked equal to ours. The reference code's [B, N, N, D] broadcast
product is also measured, at the small sizes where it fits (no ratio is drawn from it).

Memory is measured as the peak resident set size of a fresh subprocess (Linux VmHWM, reset via
/proc/self/clear_refs after the inputs exist) minus its RSS just before the loss, with glibc's
mmap threshold pinned low so that freed tensors return to the OS. Time is the CPU time of
the process (on a shared machine wall time measures the others' load).

Usage: python benchmarks/bench_descriptor_loss.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def naive_loss(
    desc_a, desc_b, homography, lambda_d=250.0, pos_margin=1.0, neg_margin=0.2, cell_size=8
):
    """The reference's formulation: the [B, N, N, D] broadcast product, then the hinge terms."""
    import torch
    import torch.nn.functional as F

    from pixelwise.geometry.homography import warp_points
    from pixelwise.losses.descriptor_hinge import cell_centers

    batch, dim, hc, wc = desc_a.shape
    n = hc * wc
    centers = cell_centers(hc, wc, cell_size, dtype=desc_a.dtype)
    warped = warp_points(centers, homography.to(desc_a.dtype))
    s = (torch.cdist(warped, centers[None].expand(batch, n, 2)) <= cell_size).to(desc_a.dtype)
    a = F.normalize(desc_a.reshape(batch, dim, n), dim=1).transpose(1, 2)[:, :, None, :]
    b = F.normalize(desc_b.reshape(batch, dim, n), dim=1).transpose(1, 2)[:, None, :, :]
    dot = (a * b).sum(-1)
    cost = lambda_d * s * F.relu(pos_margin - dot) + (1 - s) * F.relu(dot - neg_margin)
    return cost.mean()


def bmm_loss(
    desc_a, desc_b, homography, lambda_d=250.0, pos_margin=1.0, neg_margin=0.2, cell_size=8
):
    """The obvious implementation: [B, N, N] dots by torch.bmm, plain autograd, the mean over pairs."""
    import torch
    import torch.nn.functional as F

    from pixelwise.geometry.homography import warp_points
    from pixelwise.losses.descriptor_hinge import cell_centers

    batch, dim, hc, wc = desc_a.shape
    n = hc * wc
    centers = cell_centers(hc, wc, cell_size, dtype=torch.float64)
    warped = warp_points(centers, homography.double())
    s = (torch.cdist(warped, centers[None].expand(batch, n, 2)) <= cell_size).to(desc_a.dtype)
    a = F.normalize(desc_a.reshape(batch, dim, n), dim=1).transpose(1, 2)  # [B, N, D]
    b = F.normalize(desc_b.reshape(batch, dim, n), dim=1)  # [B, D, N]
    dot = torch.bmm(a, b)
    cost = lambda_d * s * F.relu(pos_margin - dot) + (1 - s) * F.relu(dot - neg_margin)
    return cost.mean()


def measure(impl: str, batch: int, hc: int, wc: int, dim: int, threads: int) -> dict:
    """Run in a fresh process: extra peak RSS (MiB) and time (s) of one forward + backward."""
    import torch

    torch.set_num_threads(threads)
    from pixelwise.geometry.homography import sample_homography
    from pixelwise.losses.descriptor_hinge import descriptor_hinge_loss

    g = torch.Generator().manual_seed(0)
    desc_a = torch.randn(batch, dim, hc, wc, generator=g, requires_grad=True)
    desc_b = torch.randn(batch, dim, hc, wc, generator=g, requires_grad=True)
    homs = sample_homography(batch, (hc * 8, wc * 8), generator=g)
    if impl == "ours":

        def fn():
            return descriptor_hinge_loss(desc_a, desc_b, homs)
    elif impl == "ours_relu_l2":

        def fn():
            return descriptor_hinge_loss(
                desc_a, desc_b, homs, dot_normalization="relu_l2", normalization="valid"
            )
    elif impl == "bmm":

        def fn():
            return bmm_loss(desc_a, desc_b, homs)
    else:

        def fn():
            return naive_loss(desc_a, desc_b, homs)

    # A small warm-up (library init, lazy allocations) off the measured region.
    fn_small = descriptor_hinge_loss(desc_a[:1, :, :2, :2], desc_b[:1, :, :2, :2], homs[:1])
    fn_small.backward()
    desc_a.grad = desc_b.grad = None
    # The gradients' storage is part of any training step: allocate it before measuring.
    desc_a.grad = torch.zeros_like(desc_a)
    desc_b.grad = torch.zeros_like(desc_b)
    before = _rss_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
    t0 = time.process_time()  # CPU time: wall time on a shared machine measures the others' load
    loss = fn()
    loss.backward()
    elapsed = time.process_time() - t0
    peak = _rss_kib("VmHWM")
    return {"extra_mib": (peak - before) / 1024, "time_s": elapsed, "loss": float(loss)}


def run_child(impl: str, batch: int, hc: int, wc: int, dim: int, threads: int) -> dict:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0")
    args = [
        sys.executable,
        __file__,
        "--child",
        impl,
        str(batch),
        str(hc),
        str(wc),
        str(dim),
        str(threads),
    ]
    out = subprocess.run(args, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def time_training_step(batch: int, hc: int, wc: int, threads: int, repeats: int) -> float:
    """Forward + backward of SuperPointNet (detector + descriptor heads) on both images of B pairs."""
    import torch

    torch.set_num_threads(threads)
    try:
        from pixelwise.nets.superpoint import SuperPointNet

        net = SuperPointNet(descriptor=True)

        def forward(x):
            out = net(x)
            return out["logits"].square().mean() + out["descriptors"].square().mean()
    except ImportError:  # the nets room not there yet: a MagicPoint-size stand-in
        import torch.nn as nn

        net = nn.Sequential(
            *[
                m
                for i, o in [
                    (1, 64),
                    (64, 64),
                    (64, 64),
                    (64, 64),
                    (64, 128),
                    (128, 128),
                    (128, 128),
                    (128, 128),
                ]
                for m in (nn.Conv2d(i, o, 3, padding=1), nn.ReLU())
            ]
        )

        def forward(x):
            return net(x).square().mean()

    images = torch.rand(2 * batch, 1, hc * 8, wc * 8)
    times = []
    for _ in range(repeats):
        net.zero_grad()
        t0 = time.process_time()
        forward(images).backward()
        times.append(time.process_time() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="batch 1 at the target size, small naive runs (< 60 s)"
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        impl, *nums = args.child
        print(json.dumps(measure(impl, *(int(v) for v in nums))))
        return

    sys.path.insert(0, str(HERE))
    from _machine import machine_line

    dim, hc, wc = 256, 30, 40
    target_batch = 1 if args.quick else 16
    # Broadcast runs that fit: (batch, hc, wc).
    naive_sizes = [(1, 10, 15)] if args.quick else [(1, 15, 20), (1, 20, 30)]

    rows = []
    ours = run_child("ours", target_batch, hc, wc, dim, args.threads)
    rows.append(("ours (`descriptor_hinge_loss`)", target_batch, hc, wc, ours))
    bmm = run_child("bmm", target_batch, hc, wc, dim, args.threads)
    rows.append(("baseline, measured in this run: bmm + plain autograd", target_batch, hc, wc, bmm))
    # Same loss: the comparison is between two computations of one value.
    assert abs(bmm["loss"] - ours["loss"]) <= 1e-4 * abs(ours["loss"]), (bmm, ours)
    if not args.quick:
        ref = run_child("ours_relu_l2", target_batch, hc, wc, dim, args.threads)
        rows.append(('ours, `dot_normalization="relu_l2"`', target_batch, hc, wc, ref))
    for b, h, w in naive_sizes:
        res = run_child("naive", b, h, w, dim, args.threads)
        rows.append(("reference code's [B,N,N,D] broadcast (small sizes only)", b, h, w, res))
    step = time_training_step(target_batch, hc, wc, args.threads, repeats=1 if args.quick else 2)

    print(f"## descriptor_hinge_loss: forward + backward, D = {dim}\n")
    print(
        "| formulation | batch | Hc x Wc | extra peak memory (MiB) | CPU time (s) "
        "| baseline memory / this | baseline time / this |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, b, h, w, res in rows:
        same = (b, h, w) == (target_batch, hc, wc)
        mem = f"{bmm['extra_mib'] / max(res['extra_mib'], 1e-9):.1f}x" if same else "-"
        tim = f"{bmm['time_s'] / max(res['time_s'], 1e-9):.2f}x" if same else "-"
        print(
            f"| {name} | {b} | {h}x{w} | {res['extra_mib']:.0f} | {res['time_s']:.3f} "
            f"| {mem} | {tim} |"
        )
    print(
        f"\n**ours: {ours['extra_mib']:.0f} MiB at batch {target_batch}** (goal < 512 MiB at batch 16); "
        f"loss ours {ours['loss']:.6f} = bmm baseline {bmm['loss']:.6f}"
    )
    print(
        f"\ntraining step (SuperPointNet forward + backward on the {2 * target_batch} images of "
        f"{target_batch} pairs, {hc * 8}x{wc * 8}): {step:.2f} s CPU; loss / step = {ours['time_s'] / step:.3f}"
    )
    print(f"\n{machine_line()}")


if __name__ == "__main__":
    main()
