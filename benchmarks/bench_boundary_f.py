"""BoundaryF vs pyEdgeEval (the BSDS benchmark's correspondPixels C++ code), same images, same run.

1. Time per image at 99 thresholds, 5 annotators, BSDS size (321x481), for moderate and for
   heavy false-edge texture: our whole per-image pipeline (threshold, thin, match, count) and
   pyEdgeEval's ``evaluate_boundaries_threshold_multiple_gts`` with its defaults (max_dist
   0.0075, thinning on), both in this process on the same arrays. The ratio is pyEdgeEval's
   CPU time over ours.
2. Agreement on those images: ODS / OIS / AP from our counts and from pyEdgeEval's counts of
   the timed run, summarised by the same function. (pyEdgeEval thins with a lookup table that
   differs from MATLAB's bwmorph on a few pixels, and its matcher's random outlier edges move
   a few matches between runs: tests/metrics/test_boundary_f_pyedgeeval.py.)
3. The first ``BoundaryF.update`` in a fresh process: with numba's on-disk cache, and with an
   empty cache (what a process without a usable cache does: compile every kernel). An install
   from the wheel has the cache: ``setup.py`` compiles the kernels into it.

Run: .venv/bin/python benchmarks/bench_boundary_f.py [--quick] [--size H W]
(--quick: 96x128, for checking the code paths; the BSDS-size run takes pyEdgeEval minutes
per image.)
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from _machine import machine_line
from scipy import ndimage as ndi

from pixelwise.metrics.boundary_f import boundary_counts, bsds_thresholds, summarize_boundary_counts

ANNOTATORS = 5
TEXTURES = {"moderate": 0.3, "heavy": 1.0}


# ---------------------------------------------------------------------------- synthetic data


def synthetic_image(
    h: int, w: int, n_annotators: int, seed: int, texture: float = 0.3
) -> tuple[np.ndarray, np.ndarray]:
    """Soft prediction float64 [H, W] (8-bit levels) and annotator boundaries bool [K, H, W].

    Region boundaries of a warped Voronoi partition; each annotator jitters the seeds by about a
    pixel and may skip boundaries. The prediction blurs the annotators' mean, adds false edges in
    textured patches covering about ``texture`` of the image, and weak noise.
    """
    rng = np.random.default_rng(seed)
    n_regions = max(6, (h * w) // 2500)
    seeds = rng.uniform([0, 0], [h, w], size=(n_regions, 2))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    # smooth warp so that boundaries are curved, not Voronoi-straight
    warp = [ndi.gaussian_filter(rng.normal(0, 1, (h, w)), 12) * 60 for _ in range(2)]
    gts = []
    for _ in range(n_annotators):
        s = seeds + rng.normal(0, 0.8, seeds.shape)  # annotators disagree by about a pixel
        d = (yy[..., None] + warp[0][..., None] - s[:, 0]) ** 2 + (
            xx[..., None] + warp[1][..., None] - s[:, 1]
        ) ** 2
        lab = d.argmin(-1)
        for _ in range(rng.integers(0, 3)):  # some annotators skip some boundaries
            r = rng.integers(n_regions)
            lab[lab == r] = (r + 1) % n_regions
        b = np.zeros((h, w), bool)
        b[:, :-1] |= lab[:, :-1] != lab[:, 1:]
        b[:-1, :] |= lab[:-1, :] != lab[1:, :]
        gts.append(b)
    gts = np.stack(gts)
    soft = ndi.gaussian_filter(gts.mean(0), 1.5) * 3.5
    # textured patches: false edges the annotators did not draw
    field = ndi.gaussian_filter(rng.normal(0, 1, (h, w)), 10)
    patch = field > np.quantile(field, 1 - texture) if texture > 0 else np.zeros((h, w), bool)
    edges = np.abs(ndi.laplace(ndi.gaussian_filter(rng.normal(0, 1, (h, w)), 2.0)))
    soft += patch * 0.5 * np.clip(edges * 6 - 0.2, 0, None)
    soft += np.clip(ndi.gaussian_filter(rng.normal(0, 0.02, (h, w)), 0.7), 0, None)
    soft = np.clip(soft, 0, 1)
    return np.round(soft * 255) / 255, gts


# ---------------------------------------------------------------------------- the two sides


def pyedgeeval_counts(soft: np.ndarray, gts: np.ndarray, thr: np.ndarray) -> np.ndarray:
    """int64 [T, 4] (cntR, sumR, cntP, sumP) from pyEdgeEval's multiple-annotator evaluation."""
    if not hasattr(np, "in1d"):  # pyEdgeEval 0.2.8 under numpy >= 2.4 (numpy's replacement)
        np.in1d = lambda a, b, **kw: np.isin(a, b, **kw).ravel()  # type: ignore[attr-defined]
    from pyEdgeEval.common.binary_label.evaluate_boundaries import (
        evaluate_boundaries_threshold_multiple_gts,
    )

    cnt_r, sum_r, cnt_p, sum_p = evaluate_boundaries_threshold_multiple_gts(
        thr, soft, gts, max_dist=0.0075, apply_thinning=True
    )
    return np.stack([cnt_r, sum_r, cnt_p, sum_p], axis=1).astype(np.int64)


def cpu_time(repeat: int, fn, *args, **kwargs) -> tuple[float, float, object]:
    """Best of ``repeat`` (CPU seconds of the process, wall seconds) of fn(*args, **kwargs), and its last result."""
    best_cpu, best_wall, out = math.inf, math.inf, None
    for _ in range(repeat):
        c0, w0 = time.process_time(), time.perf_counter()
        out = fn(*args, **kwargs)
        best_cpu = min(best_cpu, time.process_time() - c0)
        best_wall = min(best_wall, time.perf_counter() - w0)
    return best_cpu, best_wall, out


FIRST_CALL = """
import time
t0 = time.perf_counter()
import numpy as np, torch
from pixelwise.metrics import BoundaryF
t1 = time.perf_counter()
rng = np.random.default_rng(0)
pred = torch.as_tensor(rng.random((1, 60, 80)))
gts = torch.as_tensor(rng.random((1, 2, 60, 80)) > 0.95)
metric = BoundaryF(99)
t2 = time.perf_counter()
metric.update(pred, gts)
t3 = time.perf_counter()
metric.update(pred, gts)
t4 = time.perf_counter()
print(t1 - t0, t3 - t2, t4 - t3)
"""


def first_call(cache_dir: str | None) -> tuple[float, float, float]:
    """(import s, first update s, second update s) of BoundaryF in a fresh Python process."""
    env = dict(os.environ)
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = cache_dir
    out = subprocess.run(
        [sys.executable, "-c", FIRST_CALL], env=env, capture_output=True, text=True, check=True
    )
    a, b, c = (float(v) for v in out.stdout.split())
    return a, b, c


# ---------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="96x128 images, one repeat")
    ap.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), help="image size")
    args = ap.parse_args()
    h, w = args.size or ((96, 128) if args.quick else (321, 481))
    repeat = 1 if args.quick else 3
    thr = bsds_thresholds(99)
    cores = (
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    )

    # Section 3 first, while no kernel is loaded in this process (it runs in children anyway).
    warm = first_call(None)
    warm = first_call(None)  # the first child may have (re)written the cache
    with tempfile.TemporaryDirectory() as empty:
        cold = first_call(empty)

    # Warm our kernels up in this process (the first call is measured above, not here).
    s0, g0 = synthetic_image(40, 50, 3, 0)
    for approx in (False, True):
        boundary_counts(s0, g0, thr, approximate=approx, num_threads=cores)
        boundary_counts(s0, g0, thr, approximate=approx)

    print(
        f"## Boundary benchmark: time per image, {h}x{w}, 99 thresholds, {ANNOTATORS} annotators\n"
    )
    print(
        "| texture | ours exact, 1 thread: CPU s | ours exact, "
        f"{cores} threads: wall s | ours approx.: CPU s | baseline, measured in this run: "
        "pyEdgeEval (correspondPixels C++): CPU s | pyEdgeEval / ours (1 thread) |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    agreement = []
    for name, texture in TEXTURES.items():
        soft, gts = synthetic_image(h, w, ANNOTATORS, 10, texture=texture)
        cpu, _, ours = cpu_time(repeat, boundary_counts, soft, gts, thr)
        _, wall_mt, _ = cpu_time(repeat, boundary_counts, soft, gts, thr, num_threads=cores)
        cpu_a, _, _ = cpu_time(repeat, boundary_counts, soft, gts, thr, approximate=True)
        ref_cpu, _, ref = cpu_time(1, pyedgeeval_counts, soft, gts, thr)
        print(
            f"| {name} ({texture:.0%}) | {cpu:.3f} | {wall_mt:.3f} | {cpu_a:.3f} | {ref_cpu:.1f} "
            f"| {ref_cpu / cpu:.0f}x |"
        )
        agreement.append((name, ours, ref))

    print(
        "\nOurs: best of the repeats; pyEdgeEval: one run. CPU seconds are the process's (all"
        " threads). Texture: share of the image covered by false edges in the synthetic"
        " prediction.\n"
    )
    print("## Agreement on the same images (counts of the timed runs)\n")
    print(
        "| texture | ODS ours / pyEdgeEval | OIS ours / pyEdgeEval | AP ours / pyEdgeEval | identical count rows |"
    )
    print("|---|---|---|---|---:|")
    for name, ours, ref in agreement:
        a = summarize_boundary_counts(ours[None], thr)
        b = summarize_boundary_counts(ref[None], thr)
        same = int((ours == ref).all(axis=1).sum())
        cells = " | ".join(f"{a[k]:.4f} / {b[k]:.4f}" for k in ("ods", "ois", "ap"))
        print(f"| {name} | {cells} | {same}/{len(thr)} |")

    print("\n## First BoundaryF.update in a fresh process (60x80 image, 2 annotators)\n")
    print("| numba cache | import pixelwise.metrics (s) | first update (s) | second update (s) |")
    print("|---|---:|---:|---:|")
    print(
        f"| on disk (every process after the first) | {warm[0]:.2f} | {warm[1]:.2f} | {warm[2]:.3f} |"
    )
    print(
        f"| empty (no usable cache: compiles every kernel) | {cold[0]:.2f} | {cold[1]:.2f} | {cold[2]:.3f} |"
    )
    print(f"\n{machine_line()}")


if __name__ == "__main__":
    main()
