"""Boundary benchmark speed and agreement: pixelwise's BoundaryF pipeline vs a reference-style dense matcher.

The reference does per threshold what the BSDS code does: threshold, thin (skimage's thin, the
replica of MATLAB's bwmorph thin), and per annotator one dense min-cost assignment over
correspondPixels' graph (matchable pixels + outlier nodes, costs rint(100 * distance), outlier
cost ceil(100 * 100 * maxDist)), solved with scipy's linear_sum_assignment. At 321x481 it is
timed on a sample of thresholds (those whose dense matrix fits in memory) and extrapolated to 99.

Run: .venv/bin/python benchmarks/bench_boundary_f.py [--quick]
"""

from __future__ import annotations

import argparse
import math
import os
import time

import numpy as np
from _machine import machine_line
from scipy import ndimage as ndi
from scipy.optimize import linear_sum_assignment
from skimage.morphology import thin as sk_thin

from pixelwise.metrics.boundary_f import boundary_counts, bsds_thresholds, summarize_boundary_counts
from pixelwise.metrics.boundary_matching import tie_break

# The reference C++/MATLAB benchmark's time per image at 99 thresholds, as quoted in issue 4
# (not measured here: no MATLAB on this machine).
QUOTED_SECONDS = {(121, 161): 9.0, (321, 481): 40.0}
MAX_DENSE_NODES = 7000  # dense reference matrices above this (392 MB) are not built


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


# ---------------------------------------------------------------------------- dense reference


def dense_correspond(pred: np.ndarray, gt: np.ndarray, max_dist: float, annotator: int, ties: bool):
    """Matched pred mask and #matched gt of one dense assignment of correspondPixels' graph (None if too big)."""
    h, w = pred.shape
    md = max_dist * math.sqrt(h * h + w * w)
    # match.cc keeps only matchable pixels (some pixel of the other map within maxDist)
    near_g = ndi.distance_transform_edt(~gt) <= md if gt.any() else np.zeros_like(gt)
    near_p = ndi.distance_transform_edt(~pred) <= md if pred.any() else np.zeros_like(pred)
    P, G = np.flatnonzero(pred & near_g), np.flatnonzero(gt & near_p)
    matched = np.zeros(h * w, bool)
    if P.size == 0 or G.size == 0:
        return matched.reshape(h, w), 0
    n = P.size + G.size
    if n > MAX_DENSE_NODES:
        return None
    py, px = np.divmod(P, w)
    gy, gx = np.divmod(G, w)
    d2 = (py[:, None] - gy[None]) ** 2 + (px[:, None] - gx[None]) ** 2
    ok = ~(d2.astype(np.float64) > md * md)
    ow = math.ceil(100 * md * 100)
    scale = float(2**20 * (n + 1)) if ties else 1.0
    cost = np.full((n, n), ow * scale)
    real = np.rint(np.sqrt(d2) * 100) * scale
    if ties:
        real += tie_break(annotator, np.repeat(P, G.size), np.tile(G, P.size)).reshape(
            P.size, G.size
        )
    cost[: P.size, : G.size] = np.where(ok, real, 4.0 * ow * scale)
    rows, cols = linear_sum_assignment(cost)
    pairs = (rows < P.size) & (cols < G.size)
    pairs[pairs] = ok[rows[pairs], cols[pairs]]
    matched[P[rows[pairs]]] = True
    return matched.reshape(h, w), int(pairs.sum())


def dense_counts_at(soft, gts, t, max_dist, ties):
    """(cntR, sumR, cntP, sumP) at one threshold, or None if a dense matrix would be too big."""
    b = sk_thin(soft >= t)
    acc = np.zeros_like(b)
    cnt_r = 0
    for k, g in enumerate(gts):
        res = dense_correspond(b, g, max_dist, k, ties)
        if res is None:
            return None
        acc |= res[0]
        cnt_r += res[1]
    return np.array([cnt_r, int(gts.sum()), int(acc.sum()), int(b.sum())])


# ---------------------------------------------------------------------------- timing


def time_ours(soft, gts, thr, approximate=False, num_threads=1, repeat=3):
    """Best of ``repeat`` (CPU seconds, wall seconds) of the whole per-image pipeline."""
    best_cpu, best_wall = math.inf, math.inf
    for _ in range(repeat):
        c0, w0 = time.process_time(), time.perf_counter()
        boundary_counts(soft, gts, thr, approximate=approximate, num_threads=num_threads)
        best_cpu = min(best_cpu, time.process_time() - c0)
        best_wall = min(best_wall, time.perf_counter() - w0)
    return best_cpu, best_wall


def time_reference(soft, gts, thr, indices, n_annotators):
    """CPU seconds per threshold (all annotators) of the dense reference, estimated on ``thr[indices]``.

    Only the first ``n_annotators`` are run and the time is scaled to all of them. Thresholds
    whose dense matrix would not fit are skipped; returns (seconds per threshold, #timed).
    """
    spent, timed = 0.0, 0
    sub = gts[:n_annotators]
    for i in indices:
        c0 = time.process_time()
        res = dense_counts_at(soft, sub, thr[i], 0.0075, ties=False)
        if res is not None:
            spent += (time.process_time() - c0) * len(gts) / len(sub)
            timed += 1
    return spent / max(timed, 1), timed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--quick", action="store_true", help="fewer images and sampled thresholds (< 60 s)"
    )
    args = ap.parse_args()
    thr = bsds_thresholds(99)
    cores = (
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    )

    # warm up the numba kernels (compiled once, cached on disk)
    s0, g0 = synthetic_image(40, 50, 3, 0)
    for approx in (False, True):
        boundary_counts(s0, g0, thr, approximate=approx, num_threads=2)
        boundary_counts(s0, g0, thr, approximate=approx)

    print("## Boundary benchmark: time per image at 99 thresholds, 5 annotators\n")
    print(
        "| image (texture) | ours exact, 1 thread: CPU s | ours exact, "
        f"{cores} threads: wall s | ours approx.: CPU s | dense reference: CPU s "
        "| speed-up vs dense (same run) | speed-up vs quoted C++ |"
    )
    print("|---|---|---|---|---|---|---|")
    cases = [((121, 161), 0.3), ((321, 481), 0.3), ((321, 481), 1.0)]
    n_img = 1 if args.quick else 3
    # 121x161: a spread of thresholds. 321x481: the dense matrices of low thresholds do not fit
    # in memory, so only high ones (the cheapest) are timed: a lower bound of the reference.
    sample = {
        (121, 161): np.linspace(0, 98, 5 if args.quick else 11).round().astype(int)[1:-1],
        (321, 481): np.array([89] if args.quick else [89, 94, 98]),
    }
    ref_annotators = {(121, 161): 5, (321, 481): 1 if args.quick else 5}
    notes = []
    for (h, w), texture in cases:
        if args.quick and texture > 0.5:
            continue
        for j in range(n_img):
            soft, gts = synthetic_image(h, w, 5, 10 + j, texture=texture)
            repeat = 2 if args.quick else 3
            cpu, _ = time_ours(soft, gts, thr, repeat=repeat)
            _, wall_mt = time_ours(soft, gts, thr, num_threads=cores, repeat=repeat)
            cpu_a, _ = time_ours(soft, gts, thr, approximate=True, repeat=repeat)
            idx = sample[(h, w)]
            per_thr, timed = time_reference(soft, gts, thr, idx, ref_annotators[(h, w)])
            ref = per_thr * len(thr)
            quoted = QUOTED_SECONDS[(h, w)]
            at = ", ".join(f"{thr[i]:.2f}" for i in idx)
            bound = ">= " if h > 200 else ""
            ref_txt = f"{bound}{ref:.1f} (t = {at})" if timed else "n/a (too big)"
            ratio = f"{bound}{ref / cpu:.0f}x" if timed else "n/a"
            print(
                f"| {h}x{w} #{j} ({texture:.0%}) | {cpu:.3f} | {wall_mt:.3f} | {cpu_a:.3f} | {ref_txt} "
                f"| {ratio} | {quoted / cpu:.0f}x (of {quoted:.0f} s) |"
            )
            if timed < len(idx):
                notes.append(
                    f"{h}x{w} #{j}: {len(idx) - timed} sampled thresholds not timed (dense matrix > "
                    f"{MAX_DENSE_NODES} nodes)."
                )
    for n in notes:
        print(f"\n{n}")
    print(
        "\nThe reference is timed per threshold on the thresholds listed and multiplied by 99 (at"
        " 321x481 only high thresholds fit in memory and they are the cheapest: a lower bound;"
        " with --quick it runs one annotator there and is scaled to five)."
        " 'Ours' is the whole per-image pipeline (threshold, thin, match, count), best of 3;"
        " CPU seconds are the process's (all threads). The C++ reference times are those quoted in"
        " issue 4 (9 s for 121x161, 40 s for a 321x481 BSDS image), not measured here."
        " Texture: share of the image covered by false-edge texture in the synthetic prediction."
    )

    # ---- agreement on a small synthetic set, all 99 thresholds
    n_set = 1 if args.quick else 6
    hw = (121, 161)
    print(
        f"\n## Agreement on {n_set} synthetic images {hw[0]}x{hw[1]} (3-5 annotators, 99 thresholds,"
        " max_dist 0.0075)\n"
    )
    ours, ref_scipy, ref_tie = [], [], []
    for j in range(n_set):
        soft, gts = synthetic_image(*hw, 3 + j % 3, 100 + j)
        ours.append(boundary_counts(soft, gts, thr))
        ref_scipy.append(np.stack([dense_counts_at(soft, gts, t, 0.0075, ties=False) for t in thr]))
        if not args.quick:
            ref_tie.append(
                np.stack([dense_counts_at(soft, gts, t, 0.0075, ties=True) for t in thr])
            )
    rows = [
        ("pixelwise BoundaryF", np.stack(ours)),
        ("dense reference, scipy's tie-breaking", np.stack(ref_scipy)),
    ]
    if ref_tie:
        rows.append(("dense reference, our tie-break stream", np.stack(ref_tie)))
    base = summarize_boundary_counts(rows[0][1], thr)
    print("| matcher | ODS | OIS | AP | R50 | abs. diff ODS / OIS / AP | identical count rows |")
    print("|---|---|---|---|---|---|---|")
    for name, c in rows:
        s = summarize_boundary_counts(c, thr)
        diff = " / ".join(f"{abs(s[k] - base[k]):.4f}" for k in ("ods", "ois", "ap"))
        same = int((c == rows[0][1]).all(axis=2).sum())
        print(
            f"| {name} | {s['ods']:.4f} | {s['ois']:.4f} | {s['ap']:.4f} | {s['r50']:.4f} | {diff} "
            f"| {same}/{c.shape[0] * c.shape[1]} |"
        )
    print(f"\n{machine_line()}")


if __name__ == "__main__":
    main()
