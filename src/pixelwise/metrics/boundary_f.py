"""Boundary F-measure (ODS, OIS, AP, R50) with the protocol of the BSDS500 boundary benchmark.

Per image and threshold ``t`` (``linspace(1/(K+1), 1-1/(K+1), K)``): binarise ``pred >= t``,
thin (MATLAB ``bwmorph(.., 'thin', Inf)``), pair predicted with ground-truth boundary pixels of
each annotator one to one within ``max_dist`` times the image diagonal (the ground truth is not
thinned), then count as ``evaluation_bdry_image.m``:

- ``cntR``: ground-truth pixels paired, summed over annotators; ``sumR``: all of them;
- ``cntP``: predicted pixels paired in at least one annotator; ``sumP``: all predicted pixels.

Summaries as ``collect_eval_bdry.m``: ODS is the best F of the dataset curve with 100 linear
interpolation steps between thresholds; OIS sums every image's counts at its best (not
interpolated) threshold; AP is the area under the interpolated P(R) curve at R = 0:0.01:1 (as
its ``interp1``/``unique`` — duplicate recalls keep the last threshold's precision); R50 is
recall at 50 % precision as Dollár's ``edgesEvalDir``. Empty predictions or ground truth give
P or R = 0 as the protocol does (``cnt / (sum + (sum == 0))``), never NaN.

The pairing is the benchmark's minimum-cost assignment (see
:mod:`pixelwise.metrics.boundary_matching`); ``approximate=True`` replaces it with a tolerance
test (a pixel counts if any pixel of the other map is within reach), much faster and biased
upwards, meant for per-epoch validation and flagged ``"approximate": True`` in the result.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np
import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

__all__ = ["BoundaryF", "bsds_thresholds", "boundary_counts", "summarize_boundary_counts"]


def bsds_thresholds(n: int) -> np.ndarray:
    """MATLAB ``linspace(1/(n+1), 1-1/(n+1), n)`` as the benchmark computes it: float64 [n]."""
    if n < 1:
        raise ValueError(f"bsds_thresholds: need at least one threshold, got {n}")
    d1, d2 = 1.0 / (n + 1), 1.0 - 1.0 / (n + 1)
    if n == 1:
        return np.array([d2])
    # [d1 + (0:n-2)*(d2-d1)/(n-1), d2]: multiply before dividing, last point exact.
    t = d1 + np.arange(n - 1, dtype=np.float64) * (d2 - d1) / (n - 1)
    return np.append(t, d2)


def _as_thresholds(thresholds: int | Sequence[float] | torch.Tensor) -> np.ndarray:
    if isinstance(thresholds, int | np.integer):
        return bsds_thresholds(int(thresholds))
    t = np.asarray(
        thresholds.detach().cpu().numpy() if isinstance(thresholds, torch.Tensor) else thresholds,
        dtype=np.float64,
    ).ravel()
    if t.size == 0 or not np.all(np.isfinite(t)) or np.any(np.diff(t) <= 0):
        raise ValueError(
            f"BoundaryF: thresholds must be an int or a strictly increasing sequence of finite "
            f"values, got {t.tolist()[:8]}{'...' if t.size > 8 else ''}"
        )
    return t


def _pred_to_numpy(pred: torch.Tensor, index: int) -> np.ndarray:
    """Soft map [H, W] as float64 numpy; uint8 maps are read as the benchmark reads PNGs (x / 255)."""
    p = pred.detach().cpu()
    if p.dtype == torch.uint8:
        return p.numpy().astype(np.float64) / 255.0
    if not p.is_floating_point():
        raise TypeError(f"BoundaryF: preds must be float in [0, 1] or uint8, got {p.dtype}")
    a = p.numpy().astype(np.float64)
    if a.size and not (np.all(np.isfinite(a)) and a.min() >= 0.0 and a.max() <= 1.0):
        lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
        raise ValueError(
            f"BoundaryF: preds[{index}] must lie in [0, 1] (probabilities, not logits), "
            f"got values in [{lo:.4g}, {hi:.4g}]{' with NaN/inf' if not np.all(np.isfinite(a)) else ''}"
        )
    return a


def _target_to_numpy(target: torch.Tensor, index: int, hw: tuple[int, int]) -> np.ndarray:
    if not isinstance(target, torch.Tensor):
        raise TypeError(
            f"BoundaryF: targets[{index}] must be a tensor, got {type(target).__name__}"
        )
    if target.is_floating_point() or target.is_complex():
        raise TypeError(
            f"BoundaryF: targets[{index}] must be bool (or 0/1 integers), got {target.dtype}"
        )
    if target.dim() == 2:
        target = target.unsqueeze(0)
    if target.dim() != 3 or tuple(target.shape[-2:]) != hw:
        raise ValueError(
            f"BoundaryF: targets[{index}] must be [K, H, W] with (H, W) = {hw} of preds[{index}], "
            f"got {list(target.shape)}"
        )
    if target.shape[0] == 0:
        raise ValueError(f"BoundaryF: targets[{index}] has no annotation (K = 0)")
    return target.detach().cpu().numpy() != 0


def boundary_counts(
    pred: np.ndarray,
    gts: np.ndarray,
    thresholds: np.ndarray,
    max_dist: float = 0.0075,
    thin: bool = True,
    approximate: bool = False,
    num_threads: int = 1,
) -> np.ndarray:
    """Benchmark counts of one image: int64 [T, 4] = (cntR, sumR, cntP, sumP) of soft pred float [H, W] vs gts bool [K, H, W].

    As ``evaluation_bdry_image.m`` for ascending ``thresholds`` [T]; thresholds (thinning) and
    annotators (matching) are shared out over ``num_threads`` threads.
    """
    # The numba kernels are imported on first use: importing pixelwise.metrics stays light.
    from pixelwise.geometry.thinning import thin_levels
    from pixelwise.metrics.boundary_matching import evaluate_levels

    levels = np.searchsorted(thresholds, pred, side="right")  # pred >= t[i]  <=>  i < level
    ptr, pix = thin_levels(levels, len(thresholds), do_thin=thin, num_threads=num_threads)
    return evaluate_levels(
        ptr, pix, gts, max_dist=max_dist, approximate=approximate, num_threads=num_threads
    )


def _ratio(cnt: np.ndarray, tot: np.ndarray) -> np.ndarray:
    return cnt / (tot + (tot == 0))


def _fmeasure(r: np.ndarray, p: np.ndarray) -> np.ndarray:
    return 2 * p * r / (p + r + ((p + r) == 0))


def _best_interpolated(
    thr: np.ndarray, r: np.ndarray, p: np.ndarray
) -> tuple[float, float, float, float]:
    """``maxF`` of collect_eval_bdry: best F over 100 linear steps between consecutive thresholds -> (t, r, p, f)."""
    best = (float(thr[0]), float(r[0]), float(p[0]), float(_fmeasure(r[0], p[0])))
    d = np.linspace(0.0, 1.0, 100)
    for i in range(1, len(thr)):
        t = thr[i] * d + thr[i - 1] * (1 - d)
        rr = r[i] * d + r[i - 1] * (1 - d)
        pp = p[i] * d + p[i - 1] * (1 - d)
        f = _fmeasure(rr, pp)
        j = int(np.argmax(f))  # first of equal maxima, as the strict '>' of the MATLAB loop
        if f[j] > best[3]:
            best = (float(t[j]), float(rr[j]), float(pp[j]), float(f[j]))
    return best


def _unique_last(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MATLAB (legacy) ``[u, i] = unique(x)``: sorted values, index of the last occurrence of each."""
    rev = x[::-1]
    u, i = np.unique(rev, return_index=True)
    return u, len(x) - 1 - i


def _interp1(x: np.ndarray, y: np.ndarray, xi: np.ndarray) -> np.ndarray:
    """MATLAB ``interp1(x, y, xi)`` (linear, NaN outside [x(1), x(end)]) for increasing x."""
    return np.interp(xi, x, y, left=np.nan, right=np.nan)


def summarize_boundary_counts(
    image_counts: np.ndarray, thresholds: np.ndarray
) -> dict[str, object]:
    """ODS / OIS / AP / R50 and the P-R curve from per-image counts int [N, T, 4], as collect_eval_bdry.m."""
    c = np.asarray(image_counts, dtype=np.float64).reshape(-1, len(thresholds), 4)
    tot = c.sum(0)
    r = _ratio(tot[:, 0], tot[:, 1])
    p = _ratio(tot[:, 2], tot[:, 3])
    f = _fmeasure(r, p)
    ods_t, ods_r, ods_p, ods_f = _best_interpolated(thresholds, r, p)
    # OIS: every image at its own best threshold (first maximum, not interpolated), counts summed.
    best = np.zeros(4)
    for img in c:
        fi = _fmeasure(_ratio(img[:, 0], img[:, 1]), _ratio(img[:, 2], img[:, 3]))
        best += img[int(np.flatnonzero(fi == fi.max())[0])]
    ois_r, ois_p = float(_ratio(best[0], best[1])), float(_ratio(best[2], best[3]))
    ois_f = float(_fmeasure(ois_r, ois_p))
    ru, iu = _unique_last(r)
    ap = 0.0
    if ru.size > 1:
        pi = _interp1(ru, p[iu], np.arange(101) * 0.01)
        ap = float(np.nansum(pi) * 0.01)
    # R50 (edgesEvalDir): on the unique-recall points, recall where precision reaches 0.5.
    r50 = 0.0
    if ru.size > 1:
        pu, ip = _unique_last(p[iu])
        if pu.size > 1:
            v = _interp1(pu, ru[ip], np.array([max(pu[0], 0.5)]))[0]
            r50 = 0.0 if math.isnan(v) else float(v)  # no point reaches 50 % precision
    elif ru.size == 1:
        r50 = float(ru[0]) if p[iu][0] >= 0.5 else 0.0
    return {
        "ods": ods_f,
        "ods_threshold": ods_t,
        "ods_precision": ods_p,
        "ods_recall": ods_r,
        "ois": ois_f,
        "ois_precision": ois_p,
        "ois_recall": ois_r,
        "ap": ap,
        "r50": r50,
        "thresholds": thresholds.copy(),
        "precision": p,
        "recall": r,
        "f": f,
    }


class BoundaryF(Metric):
    """BSDS boundary benchmark as a torchmetrics Metric: ODS, OIS, AP, R50 and the P-R curve.

    ``update(preds, targets)``: ``preds`` float [B, H, W] in [0, 1] (or uint8, read as x / 255
    like the benchmark reads PNGs); ``targets`` a list of B bool tensors [K_i, H, W] (K_i
    annotators of image i) or a bool tensor [B, K, H, W]. ``compute()`` returns a dict of float64
    tensors: ``ods``, ``ods_threshold``, ``ods_precision``, ``ods_recall``, ``ois``,
    ``ois_precision``, ``ois_recall``, ``ap``, ``r50``, curves ``thresholds``, ``precision``,
    ``recall``, ``f`` [T], and the Python bool ``approximate``.

    Args:
        thresholds: number K of levels ``linspace(1/(K+1), 1-1/(K+1), K)`` or an increasing sequence.
        max_dist: matching tolerance as a fraction of the image diagonal.
        thin: thin the binarised predictions (the benchmark's default).
        approximate: tolerance test instead of one-to-one matching (fast, optimistic).
        edge_nms: apply the HED/RCF evaluation NMS (:func:`pixelwise.geometry.thinning.edge_nms`)
            to each prediction first.
        num_threads: threads per image (thresholds are thinned, annotators matched in
            parallel); default: the CPUs this process may use, at most 8. Results do not depend on it.

    The states (summed counts per threshold and per-image count rows) reduce exactly under DDP.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(
        self,
        thresholds: int | Sequence[float] | torch.Tensor = 99,
        max_dist: float = 0.0075,
        thin: bool = True,
        approximate: bool = False,
        edge_nms: bool = False,
        num_threads: int | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if num_threads is None:
            num_threads = min(
                8,
                len(os.sched_getaffinity(0))
                if hasattr(os, "sched_getaffinity")
                else os.cpu_count() or 1,
            )
        if int(num_threads) < 1:
            raise ValueError(f"BoundaryF: num_threads must be >= 1, got {num_threads}")
        self.num_threads = int(num_threads)
        if not (isinstance(max_dist, int | float) and math.isfinite(max_dist) and max_dist > 0):
            raise ValueError(
                f"BoundaryF: max_dist must be a positive fraction of the diagonal, got {max_dist!r}"
            )
        self.thresholds = _as_thresholds(thresholds)
        self.max_dist = float(max_dist)
        self.thin = bool(thin)
        self.approximate = bool(approximate)
        self.edge_nms = bool(edge_nms)
        n = len(self.thresholds)
        self.add_state("counts", default=torch.zeros(n, 4, dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state("image_counts", default=[], dist_reduce_fx="cat")

    def update(self, preds: torch.Tensor, targets: torch.Tensor | Sequence[torch.Tensor]) -> None:
        """Count one batch: preds [B, H, W], targets list of [K_i, H, W] or tensor [B, K, H, W]."""
        if not isinstance(preds, torch.Tensor) or preds.dim() != 3:
            got = list(preds.shape) if isinstance(preds, torch.Tensor) else type(preds).__name__
            raise ValueError(f"BoundaryF: preds must be a tensor [B, H, W], got {got}")
        if isinstance(targets, torch.Tensor):
            if targets.dim() != 4:
                raise ValueError(
                    f"BoundaryF: a target tensor must be [B, K, H, W], got {list(targets.shape)}"
                )
            targets = list(targets.unbind(0))
        if len(targets) != preds.shape[0]:
            raise ValueError(
                f"BoundaryF: {preds.shape[0]} predictions but {len(targets)} targets (one [K, H, W] per image)"
            )
        hw = (int(preds.shape[1]), int(preds.shape[2]))
        for i in range(preds.shape[0]):
            gts = _target_to_numpy(targets[i], i, hw)
            pred_t = preds[i]
            if self.edge_nms:
                from pixelwise.geometry.thinning import edge_nms as _edge_nms

                if not pred_t.is_floating_point():
                    pred_t = pred_t.double() / 255.0
                pred_t = _edge_nms(pred_t.float())
            pred = _pred_to_numpy(pred_t, i)
            c = boundary_counts(
                pred,
                gts,
                self.thresholds,
                self.max_dist,
                thin=self.thin,
                approximate=self.approximate,
                num_threads=self.num_threads,
            )
            ct = torch.from_numpy(c).to(self.counts.device)
            self.counts += ct
            self.image_counts.append(ct.unsqueeze(0))

    def compute(self) -> dict[str, object]:
        """Summaries of all counted images (see the class docstring)."""
        rows = (
            dim_zero_cat(self.image_counts)
            if (isinstance(self.image_counts, torch.Tensor) or len(self.image_counts))
            else torch.zeros(0, len(self.thresholds), 4, dtype=torch.int64)
        )
        rows = rows.reshape(-1, len(self.thresholds), 4).cpu().numpy()
        if rows.shape[0] == 0:
            rows = np.zeros((1, len(self.thresholds), 4), np.int64)
        out = summarize_boundary_counts(rows, self.thresholds)
        res: dict[str, object] = {
            k: torch.as_tensor(v, dtype=torch.float64, device=self.counts.device)
            for k, v in out.items()
        }
        res["approximate"] = self.approximate
        return res


def warm_up() -> float:
    """Compile (or load from numba's on-disk cache) every kernel BoundaryF uses; returns seconds.

    The kernels are ``numba.njit(cache=True)``. A wheel build compiles them into the package
    (``setup.py``), and ``make install`` runs this for the editable install, so a user's first
    evaluation only loads them (< 1 s). A process that finds no usable cache (another numba
    version, another CPU, a read-only install) compiles them once (~15 s); calling this first
    moves that wait to a moment of the user's choosing.
    """
    from pixelwise.metrics.boundary_matching import compile_kernels

    return compile_kernels()
