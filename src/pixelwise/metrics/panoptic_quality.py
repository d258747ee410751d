"""Panoptic quality PQ = SQ · RQ (Kirillov et al. 2019) with the COCO / Cityscapes evaluation rules.

Why not ``torchmetrics.detection.PanopticQuality`` (1.9): it is not the official computation.
(1) It subtracts from a pair's union the target pixels the prediction left void; the official
``pq_compute`` (cityscapesScripts ``evalPanopticSemanticLabeling``, COCO ``panopticapi``)
subtracts only the prediction's pixels on ground-truth void. (2) It drops a ground-truth segment
that is mostly predicted void from the false negatives; the official code counts every unmatched
non-crowd segment. (3) It has no crowd regions (``iscrowd``): the official code never matches a
crowd segment, does not count it as a false negative, and does not count a prediction lying
mostly on void + crowd of its own class as a false positive. (4) It gives PQ only (SQ/RQ and
things/stuff averages need ``return_sq_and_rq`` / per-class post-processing). This metric
follows the official code line by line; its test checks it against cityscapesScripts to 1e-9.

Speed (``benchmarks/bench_panoptic.py``, same run, busy 2-core machine): update + compute 41 ms per
512x1024 image against 62 ms for the official ``pq_compute_single_core`` (33 ms of which decode its
PNGs): 1.5x faster end to end, 0.7x of the official's speed without the decoding.

One difference is deliberate: the official code keeps, per category, only the last crowd segment
of an image's ``segments_info`` for the false-positive rule; here all crowd segments of the
category count (identical when an image has at most one crowd segment per category, which is
what ``createPanopticImgs`` and COCO's converters write).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchmetrics import Metric

__all__ = ["PanopticQuality", "panoptic_quality_stats"]


def _compact(
    pan: torch.Tensor, segments: torch.Tensor, what: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Segment ids [H,W] -> indices 1..N of rows of ``segments`` (0 = void); the table's rows [N,3]."""
    ids = segments[:, 0]
    if ids.numel() and len(torch.unique(ids)) != len(ids):
        raise ValueError(f"PanopticQuality: {what} segments repeat a segment id: {ids.tolist()}")
    if (ids == 0).any():
        raise ValueError(f"PanopticQuality: {what} segments contain id 0, which is void")
    flat = pan.reshape(-1)
    top = max(int(flat.max()) if flat.numel() else 0, int(ids.max()) if ids.numel() else 0)
    if flat.numel() and int(flat.min()) < 0:
        raise ValueError(f"PanopticQuality: {what} map has negative segment ids")
    if top < (1 << 22):  # a lookup table: one gather (ids of real data stay below 2^22)
        lut = torch.full((top + 1,), -1, dtype=torch.long, device=pan.device)
        lut[0] = 0
        lut[ids] = torch.arange(1, len(ids) + 1, device=pan.device)
        idx = lut[flat]  # -1: an id not in the table
    elif ids.numel() == 0:
        idx = torch.where(flat == 0, 0, -1)
    else:
        order = torch.argsort(ids)
        sorted_ids = ids[order]
        pos = torch.searchsorted(sorted_ids, flat).clamp(max=len(ids) - 1)
        idx = torch.where(sorted_ids[pos] == flat, order[pos] + 1, torch.where(flat == 0, 0, -1))
    if bool((idx < 0).any()):
        bad = torch.unique(flat[idx < 0])[:10].tolist()
        raise ValueError(
            f"PanopticQuality: {what} map has segment id(s) {bad} that are not in its segments; "
            "expected every non-zero id listed (0 = void)"
        )
    return idx, segments


def panoptic_quality_stats(
    pred: torch.Tensor,
    pred_segments: torch.Tensor,
    target: torch.Tensor,
    target_segments: torch.Tensor,
    num_classes: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One image's per-class (iou_sum float64 [K], tp [K], fp [K], fn [K]) by the official rules.

    pred / target long [H,W] segment ids (0 = void); *_segments long [N,3] (id, class, iscrowd).
    A predicted segment listed but absent from the map is ignored (it has no pixel).
    """
    if pred.shape != target.shape:
        raise ValueError(
            f"PanopticQuality: prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ"
        )
    dev = pred.device
    p_idx, p_seg = _compact(pred, pred_segments.to(dev).long().reshape(-1, 3), "predicted")
    g_idx, g_seg = _compact(target, target_segments.to(dev).long().reshape(-1, 3), "target")
    for seg, what in ((p_seg, "predicted"), (g_seg, "target")):
        if seg.numel() and (seg[:, 1].min() < 0 or seg[:, 1].max() >= num_classes):
            raise ValueError(
                f"PanopticQuality: {what} segment class {seg[:, 1].tolist()} outside [0, {num_classes})"
            )
    npred, ngt = len(p_seg), len(g_seg)
    inter = torch.bincount(g_idx * (npred + 1) + p_idx, minlength=(ngt + 1) * (npred + 1))
    inter = inter.view(ngt + 1, npred + 1).double()
    gt_area = inter.sum(1)[1:]  # [Ng] all pixels of each gt segment
    pred_area = inter.sum(0)[1:]  # [Np] all pixels of each predicted segment
    i = inter[1:, 1:]  # [Ng,Np]
    pred_void = inter[0, 1:]  # [Np] prediction on ground-truth void
    g_cls, g_crowd = g_seg[:, 1], g_seg[:, 2] > 0
    p_cls = p_seg[:, 1]
    union = pred_area.view(1, -1) + gt_area.view(-1, 1) - i - pred_void.view(1, -1)
    iou = torch.where(union > 0, i / union.clamp(min=1e-12), torch.zeros_like(i))
    same = (g_cls.view(-1, 1) == p_cls.view(1, -1)) & ~g_crowd.view(-1, 1)
    match = same & (iou > 0.5) & (i > 0)
    k = num_classes
    tp = torch.zeros(k, dtype=torch.long, device=dev)
    iou_sum = torch.zeros(k, dtype=torch.float64, device=dev)
    mg, mp = torch.nonzero(match, as_tuple=True)
    tp.index_add_(0, g_cls[mg], torch.ones_like(mg))
    iou_sum.index_add_(0, g_cls[mg], iou[mg, mp])
    g_matched = match.any(1)
    p_matched = match.any(0)
    fn = torch.zeros(k, dtype=torch.long, device=dev)
    fn_rows = ~g_matched & ~g_crowd
    fn.index_add_(0, g_cls[fn_rows], torch.ones_like(g_cls[fn_rows]))
    # Unmatched predictions: ignored when > half of them lies on void or crowd of their class.
    crowd_same = g_crowd.view(-1, 1) & (g_cls.view(-1, 1) == p_cls.view(1, -1))
    ignored = pred_void + (i * crowd_same).sum(0)
    present = pred_area > 0
    fp_cols = ~p_matched & present & ~(ignored / pred_area.clamp(min=1) > 0.5)
    fp = torch.zeros(k, dtype=torch.long, device=dev)
    fp.index_add_(0, p_cls[fp_cols], torch.ones_like(p_cls[fp_cols]))
    return iou_sum, tp, fp, fn


class PanopticQuality(Metric):
    """PQ, SQ, RQ: overall, things, stuff and per class; states are per-class sums (DDP-exact).

    ``update(preds, pred_segments, target, target_segments)``: segment-id maps long [B,H,W]
    (0 = void) and per image segment tables long [N,3] (id, class index, iscrowd). ``compute()``
    returns a dict of 0-dim tensors ``pq, sq, rq, pq_things, ..., rq_stuff`` (the mean over the
    classes of the group that have a true positive, false positive or false negative; NaN when
    none has) and ``n, n_things, n_stuff``, and [K] tensors ``pq_per_class, sq_per_class,
    rq_per_class`` (0 for a class without segments, as the official per-class table) and the
    raw ``tp, fp, fn, iou_sum`` per class.
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = True

    def __init__(self, num_classes: int, thing_classes: Sequence[int], **kwargs) -> None:
        super().__init__(**kwargs)
        if num_classes < 1:
            raise ValueError(f"PanopticQuality: num_classes={num_classes}; expected >= 1")
        things = [int(c) for c in thing_classes]
        if any(c < 0 or c >= num_classes for c in things):
            raise ValueError(f"PanopticQuality: thing_classes={things} outside [0, {num_classes})")
        self.num_classes = num_classes
        is_thing = torch.zeros(num_classes, dtype=torch.bool)
        is_thing[things] = True
        self.register_buffer("is_thing", is_thing, persistent=False)
        self.add_state(
            "iou_sum", torch.zeros(num_classes, dtype=torch.float64), dist_reduce_fx="sum"
        )
        for name in ("tp", "fp", "fn"):
            self.add_state(name, torch.zeros(num_classes, dtype=torch.long), dist_reduce_fx="sum")

    def update(
        self,
        preds: torch.Tensor,
        pred_segments: Sequence[torch.Tensor],
        target: torch.Tensor,
        target_segments: Sequence[torch.Tensor],
    ) -> None:
        """preds / target long [B,H,W]; pred_segments / target_segments: B tables [N_i,3]."""
        if preds.ndim == 2:
            preds, target = preds.unsqueeze(0), target.unsqueeze(0)
            pred_segments, target_segments = [pred_segments], [target_segments]  # type: ignore[list-item]
        if not (len(preds) == len(target) == len(pred_segments) == len(target_segments)):
            raise ValueError(
                f"PanopticQuality: {len(preds)} predictions, {len(target)} targets, "
                f"{len(pred_segments)} and {len(target_segments)} segment tables; expected equal"
            )
        for p, ps, t, ts in zip(preds, pred_segments, target, target_segments):
            iou, tp, fp, fn = panoptic_quality_stats(p, ps, t, ts, self.num_classes)
            self.iou_sum += iou.to(self.iou_sum.device)
            self.tp += tp.to(self.tp.device)
            self.fp += fp.to(self.fp.device)
            self.fn += fn.to(self.fn.device)

    def compute(self) -> dict[str, torch.Tensor]:
        tp, fp, fn = self.tp.double(), self.fp.double(), self.fn.double()
        denom = tp + 0.5 * fp + 0.5 * fn
        seen = denom > 0
        pq = torch.where(seen, self.iou_sum / denom.clamp(min=1e-12), torch.zeros_like(denom))
        sq = torch.where(tp > 0, self.iou_sum / tp.clamp(min=1), torch.zeros_like(tp))
        rq = torch.where(seen, tp / denom.clamp(min=1e-12), torch.zeros_like(denom))
        out: dict[str, torch.Tensor] = {}
        for suffix, group in (
            ("", torch.ones_like(seen)),
            ("_things", self.is_thing),
            ("_stuff", ~self.is_thing),
        ):
            use = seen & group
            n = use.sum()
            for name, values in (("pq", pq), ("sq", sq), ("rq", rq)):
                out[f"{name}{suffix}"] = (
                    values[use].sum() / n
                    if n > 0
                    else torch.tensor(float("nan"), dtype=torch.float64)
                )
            out[f"n{suffix}"] = n
        out.update(
            pq_per_class=pq,
            sq_per_class=sq,
            rq_per_class=rq,
            tp=self.tp.clone(),
            fp=self.fp.clone(),
            fn=self.fn.clone(),
            iou_sum=self.iou_sum.clone(),
        )
        return out
