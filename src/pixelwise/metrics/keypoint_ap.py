"""Interest-point detector metric of the SuperPoint paper: precision-recall over scores, AP, localization error.

Definitions reproduce rpautrat's ``superpoint/evaluations/detector_evaluation.py``
(``compute_tp_fp``, ``compute_pr``, ``compute_mAP``, ``compute_loc_error``):

Per image (``update``):

- predictions with ``score > min_score`` (rpautrat's ``remove_zero=1e-4``) are sorted by score,
  highest first; ground-truth points are rounded to their pixel (``floor(v + 0.5)``, duplicates
  merged: rpautrat reads them from a ``keypoint_map``; ``round_gt=False`` keeps them exact) and
  ordered row-major (by y, then x), the order of ``np.where`` on that map;
- a prediction "matches" a ground-truth point within ``distance`` pixels (Euclidean, ``<=``);
  it is a true positive iff it has a match and it is the first prediction (in score order)
  whose *first* matching ground-truth point (in row-major order) is that point. So each ground
  truth is counted at most once, and - a quirk kept for fidelity - a prediction whose first
  in-range ground truth is already taken is a false positive even if another in-range ground
  truth is still free;
- ``n_gt`` counts all ground-truth points of the image.

Over the whole set (``compute``): the (score, tp) pairs of all images are pooled and sorted by
score (ties: update order); ``recall_k = TP_k / n_gt``, ``precision_k = TP_k / k`` (0/0 = 1,
x/0 = 0 as rpautrat's ``div0``); the curve is extended with (recall 0, precision 0) in front
and (recall 1, precision 0) at the end, precision replaced by its running maximum from the
right, and ``map = sum_k precision_k (recall_k - recall_{k-1})``. "mAP" in the paper and in
rpautrat is this AP of the pooled curve ("mean" over the test set, not a mean of per-image APs).

Next to it, ``map_one_to_one`` is the same pooled AP with plain one-to-one matching (the
project's own definition): in score order, each prediction takes the nearest ground-truth point
within ``distance`` that no better prediction has taken (ties: row-major first), and is a true
positive iff there is one. A perfect detector scores 1.0 there; under the reference's quirk it
loses every ground-truth point whose first in-range neighbour is another ground-truth point
(about 0.98 on Synthetic Shapes).

Localization error: for every prediction with ``score > loc_score_threshold`` (rpautrat's
``prob_thresh``, default 0.5; its MagicPoint notebook passes 0.4), the distance to the nearest
ground-truth point, kept if ``<= distance``; the mean over all kept predictions of all images
(no one-to-one matching). NaN when there is none.

Note: rpautrat's function default is ``distance_thresh=2``; the paper and this project use
``distance=4``. rpautrat feeds every pixel of the probability map; this metric takes whatever
keypoints the caller extracts (e.g. ``extract_keypoints(heat, threshold=1e-4, nms_radius=4)``).

States are ``cat`` lists (per-prediction score, tp flag, group) and ``sum`` tensors, so the
result under DDP equals the single-process one exactly. Optional per-group results (e.g. per
primitive of Synthetic Shapes): declare the group names at construction, pass one name per
image to ``update``; ``compute`` adds ``map/<group>`` and ``localization_error/<group>``
(NaN for a group that received no image).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

__all__ = ["KeypointAP", "average_precision_from_tp"]


def _div0(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a / b with 0/0 = 1 and x/0 = 0 (rpautrat's ``div0``)."""
    out = a / b
    bad = ~torch.isfinite(out)
    return torch.where(bad, (a == 0).to(out.dtype), out)


def average_precision_from_tp(
    scores: torch.Tensor, tp: torch.Tensor, n_gt: int | torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pooled detections (scores [N], tp bool [N]) and #gt -> (ap scalar, precision [N+2], recall [N+2]) as rpautrat."""
    order = torch.argsort(scores, descending=True, stable=True)
    tp = tp[order].to(torch.float64)
    tp_cum = torch.cumsum(tp, 0)
    fp_cum = torch.cumsum(1.0 - tp, 0)
    n_gt_t = torch.as_tensor(n_gt, dtype=torch.float64, device=tp.device)
    recall = _div0(tp_cum, n_gt_t.expand_as(tp_cum))
    precision = _div0(tp_cum, tp_cum + fp_cum)
    zero = torch.zeros(1, dtype=torch.float64, device=tp.device)
    recall = torch.cat([zero, recall, zero + 1])
    precision = torch.cat([zero, precision, zero])
    precision = torch.flip(torch.cummax(torch.flip(precision, [0]), 0).values, [0])
    ap = torch.sum(precision[1:] * (recall[1:] - recall[:-1]))
    return ap, precision, recall


class KeypointAP(Metric):
    """Detector AP ("mAP"), localization error and P-R curve over score thresholds, as rpautrat / the paper.

    ``update(pred_keypoints: list[[N,2] (x,y)], pred_scores: list[[N]], gt_keypoints: list[[M,2]],
    groups: list[str] | None)``; ``compute() -> {"map", "map_one_to_one", "localization_error", "precision" [T],
    "recall" [T], "thresholds" [T], "map/<g>", "localization_error/<g>"}``. The T-point curve
    counts predictions with ``score >= t`` for ``t`` in ``linspace(0, 1, num_thresholds)`` (for
    plots; ``map`` uses the exact curve). See the module docstring for the definitions.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(
        self,
        distance: float = 4.0,
        num_thresholds: int = 101,
        min_score: float = 1e-4,
        loc_score_threshold: float = 0.5,
        round_gt: bool = True,
        groups: Sequence[str] | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if distance < 0:
            raise ValueError(f"KeypointAP: distance must be >= 0, got {distance}")
        if num_thresholds < 2:
            raise ValueError(f"KeypointAP: num_thresholds must be >= 2, got {num_thresholds}")
        self.distance = float(distance)
        self.num_thresholds = int(num_thresholds)
        self.min_score = float(min_score)
        self.loc_score_threshold = float(loc_score_threshold)
        self.round_gt = round_gt
        self.groups = tuple(groups) if groups is not None else ()
        if len(set(self.groups)) != len(self.groups):
            raise ValueError(f"KeypointAP: group names must be unique, got {list(self.groups)}")
        self._group_index = {g: i for i, g in enumerate(self.groups)}
        g = len(self.groups)
        self.add_state("scores", default=[], dist_reduce_fx="cat")
        self.add_state("tp", default=[], dist_reduce_fx="cat")
        self.add_state("tp_one_to_one", default=[], dist_reduce_fx="cat")
        self.add_state("group_ids", default=[], dist_reduce_fx="cat")
        self.add_state(
            "n_images", default=torch.zeros(g + 1, dtype=torch.float64), dist_reduce_fx="sum"
        )
        self.add_state(
            "n_gt", default=torch.zeros(g + 1, dtype=torch.float64), dist_reduce_fx="sum"
        )
        self.add_state(
            "loc_sum", default=torch.zeros(g + 1, dtype=torch.float64), dist_reduce_fx="sum"
        )
        self.add_state(
            "loc_count", default=torch.zeros(g + 1, dtype=torch.float64), dist_reduce_fx="sum"
        )

    def _prepare_gt(self, gt: torch.Tensor) -> torch.Tensor:
        gt = gt.to(self.device, torch.float64)
        if self.round_gt:
            gt = torch.unique(torch.floor(gt + 0.5), dim=0)
        if len(gt):
            # row-major: by y, then x (np.where order on rpautrat's keypoint_map)
            order = torch.argsort(gt[:, 0], stable=True)
            gt = gt[order]
            gt = gt[torch.argsort(gt[:, 1], stable=True)]
        return gt

    def _check(self, name: str, i: int, t: object, ncols: int | None) -> torch.Tensor:
        if not isinstance(t, torch.Tensor):
            raise TypeError(
                f"KeypointAP.update: {name}[{i}] must be a torch.Tensor, got {type(t).__name__}"
            )
        if ncols is None:
            if t.dim() != 1:
                if t.numel() == 0:
                    return t.reshape(0)
                raise ValueError(
                    f"KeypointAP.update: {name}[{i}] must have shape [N], got {list(t.shape)}"
                )
        elif t.dim() != 2 or t.shape[1] != ncols:
            if t.numel() == 0:
                return t.reshape(0, ncols)
            raise ValueError(
                f"KeypointAP.update: {name}[{i}] must have shape [N, 2] (x, y), got {list(t.shape)}"
            )
        return t

    def update(
        self,
        pred_keypoints: Sequence[torch.Tensor],
        pred_scores: Sequence[torch.Tensor],
        gt_keypoints: Sequence[torch.Tensor],
        groups: Sequence[str] | None = None,
    ) -> None:
        """Add a batch: per image predicted keypoints [N,2] (x,y), their scores [N], ground truth [M,2] (x,y)."""
        for name, seq in (
            ("pred_keypoints", pred_keypoints),
            ("pred_scores", pred_scores),
            ("gt_keypoints", gt_keypoints),
        ):
            if isinstance(seq, torch.Tensor) or not isinstance(seq, Sequence):
                raise TypeError(
                    f"KeypointAP.update: {name} must be a list with one tensor per image, got {type(seq).__name__}"
                )
        n = len(pred_keypoints)
        if len(pred_scores) != n or len(gt_keypoints) != n:
            raise ValueError(
                "KeypointAP.update: pred_keypoints, pred_scores and gt_keypoints must have one entry per image; "
                f"got lengths {n}, {len(pred_scores)}, {len(gt_keypoints)}"
            )
        if groups is not None:
            if isinstance(groups, str) or len(groups) != n:
                raise ValueError(
                    f"KeypointAP.update: groups must be a list of {n} names (one per image), got {groups!r}"
                )
            unknown = sorted({g for g in groups if g not in self._group_index})
            if unknown:
                raise ValueError(
                    f"KeypointAP.update: unknown groups {unknown}; declare them with KeypointAP(groups=[...]) "
                    f"(declared: {list(self.groups)})"
                )
        none_id = len(self.groups)
        for i in range(n):
            kp = self._check("pred_keypoints", i, pred_keypoints[i], 2)
            sc = self._check("pred_scores", i, pred_scores[i], None)
            gt = self._check("gt_keypoints", i, gt_keypoints[i], 2)
            if len(kp) != len(sc):
                raise ValueError(
                    f"KeypointAP.update: image {i} has {len(kp)} predicted keypoints but {len(sc)} scores"
                )
            gid = self._group_index[groups[i]] if groups is not None else none_id
            gt = self._prepare_gt(gt)
            tp, tp_one_to_one, scores, loc = self._match(kp, sc, gt)
            self.scores.append(scores.float())
            self.tp.append(tp)
            self.tp_one_to_one.append(tp_one_to_one)
            self.group_ids.append(torch.full((len(tp),), gid, dtype=torch.long, device=self.device))
            # slot none_id holds the totals; a named group also adds to its own slot
            for j in {gid, none_id}:
                self.n_images[j] += 1
                self.n_gt[j] += len(gt)
                self.loc_sum[j] += loc.sum()
                self.loc_count[j] += len(loc)

    def _match(
        self, kp: torch.Tensor, sc: torch.Tensor, gt: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """One image -> (tp [N'], one-to-one tp [N'], scores [N'], localization errors [L]) after the min_score filter."""
        kp = kp.to(self.device, torch.float64)
        sc = sc.to(self.device)
        keep = sc > self.min_score
        kp, sc = kp[keep], sc[keep]
        order = torch.argsort(sc, descending=True, stable=True)
        kp, sc = kp[order], sc[order]
        if len(kp) == 0 or len(gt) == 0:
            none = torch.zeros(len(kp), dtype=torch.bool, device=self.device)
            return none, none.clone(), sc, kp.new_zeros(0)
        # explicit differences, not torch.cdist: its matrix-product formula (used above 25 rows)
        # is not exact, and integer distances such as exactly 4 px are common here
        dist = (kp[:, None, :] - gt[None, :, :]).pow(2).sum(-1).sqrt()  # [N, M]
        matches = dist <= self.distance
        has = matches.any(1)
        first_gt = matches.to(torch.uint8).argmax(1)  # first matching gt in row-major order
        pos = torch.arange(len(kp), device=self.device)
        first_pred = torch.full((len(gt),), len(kp), dtype=torch.long, device=self.device)
        first_pred = first_pred.scatter_reduce(0, first_gt[has], pos[has], reduce="amin")
        tp = has & (first_pred[first_gt] == pos)
        nearest = dist.min(1).values
        loc = nearest[(sc > self.loc_score_threshold) & (nearest <= self.distance)]
        return tp, self._one_to_one(dist), sc, loc

    def _one_to_one(self, dist: torch.Tensor) -> torch.Tensor:
        """Greedy one-to-one matching [N, M] distances (rows in score order) -> tp bool [N]."""
        d = dist.cpu().numpy()
        free = np.ones(d.shape[1], bool)
        tp = np.zeros(d.shape[0], bool)
        for i in np.flatnonzero((d <= self.distance).any(1)):  # rows with any match only
            cand = np.where(free & (d[i] <= self.distance), d[i], np.inf)
            j = int(np.argmin(cand))
            if np.isfinite(cand[j]):
                tp[i] = True
                free[j] = False
        return torch.from_numpy(tp).to(self.device)

    def _pr_at_thresholds(
        self, scores: torch.Tensor, tp: torch.Tensor, n_gt: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        thresholds = torch.linspace(
            0, 1, self.num_thresholds, dtype=torch.float64, device=scores.device
        )
        above = scores.to(torch.float64).unsqueeze(0) >= thresholds.unsqueeze(1)  # [T, N]
        n_det = above.sum(1).to(torch.float64)
        n_tp = (above & tp.unsqueeze(0)).sum(1).to(torch.float64)
        precision = _div0(n_tp, n_det)
        recall = _div0(n_tp, n_gt.expand_as(n_tp))
        return precision, recall, thresholds

    def compute(self) -> dict[str, torch.Tensor]:
        """-> {"map", "localization_error", "precision" [T], "recall" [T], "thresholds" [T], per-group entries}."""
        scores = (
            dim_zero_cat(self.scores) if len(self.scores) else torch.zeros(0, device=self.device)
        )
        tp = (
            dim_zero_cat(self.tp)
            if len(self.tp)
            else torch.zeros(0, dtype=torch.bool, device=self.device)
        )
        gids = (
            dim_zero_cat(self.group_ids)
            if len(self.group_ids)
            else torch.zeros(0, dtype=torch.long, device=self.device)
        )
        tp = tp.bool()
        tp_one_to_one = (
            dim_zero_cat(self.tp_one_to_one).bool()
            if len(self.tp_one_to_one)
            else torch.zeros(0, dtype=torch.bool, device=self.device)
        )
        none_id = len(self.groups)
        ap, _, _ = average_precision_from_tp(scores, tp, self.n_gt[none_id])
        ap_one_to_one, _, _ = average_precision_from_tp(scores, tp_one_to_one, self.n_gt[none_id])
        precision, recall, thresholds = self._pr_at_thresholds(scores, tp, self.n_gt[none_id])
        out = {
            "map": ap.float(),
            "map_one_to_one": ap_one_to_one.float(),
            "localization_error": (self.loc_sum[none_id] / self.loc_count[none_id]).float(),
            "precision": precision.float(),
            "recall": recall.float(),
            "thresholds": thresholds.float(),
        }
        for name, j in self._group_index.items():
            sel = gids == j
            ap_g = average_precision_from_tp(scores[sel], tp[sel], self.n_gt[j])[0]
            # a group without images has no AP (rpautrat's formula would give 0)
            out[f"map/{name}"] = (
                ap_g if self.n_images[j] > 0 else ap_g.new_tensor(float("nan"))
            ).float()
            out[f"localization_error/{name}"] = (self.loc_sum[j] / self.loc_count[j]).float()
        return out
