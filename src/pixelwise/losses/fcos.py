"""FCOS targets and loss: which location is responsible for which box, and how wrong it is.

Assignment (Tian et al. 2019, with the "center sampling" of the FCOS improvements):
a location is a positive of box ``g`` when it lies inside ``g``, within ``radius * stride`` of
the box centre (the sub-box is clipped to ``g``), and the largest of its distances
``max(l, t, r, b)`` to ``g``'s sides falls in its level's size range; among several such boxes
it takes the one of smallest area. Locations no box claims are negatives, except those inside
an ``iscrowd`` box, which are ignored (neither positive nor negative), as COCO evaluation
ignores detections matched to crowd regions.

Loss: sigmoid focal loss over every non-ignored location and class (torchvision's
``sigmoid_focal_loss``), GIoU loss (torchvision's ``generalized_box_iou_loss``) on positives
weighted by their centerness targets, and binary cross-entropy of the centerness logit on
positives; each normalised by the number of positives in the batch (at least 1).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torchvision.ops import generalized_box_iou_loss, sigmoid_focal_loss

from pixelwise.geometry.dense_boxes import distances_to_boxes, level_locations

__all__ = ["default_size_ranges", "fcos_loss", "fcos_targets"]

IGNORE = -1
BACKGROUND = -2


def default_size_ranges(strides: Sequence[int]) -> list[tuple[float, float]]:
    """FCOS's regression ranges scaled to the strides: [0, 8s_0], [8s_0, 8s_1], ..., [.., inf)."""
    bounds = [0.0] + [8.0 * s for s in strides[:-1]] + [float("inf")]
    return [(bounds[i], bounds[i + 1]) for i in range(len(strides))]


def fcos_targets(
    locations: torch.Tensor,
    strides: torch.Tensor,
    ranges: torch.Tensor,
    boxes: torch.Tensor,
    labels: torch.Tensor,
    iscrowd: torch.Tensor | None = None,
    radius: float = 1.5,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Targets of one image.

    locations float [M,2] (x, y) of all levels; strides float [M]; ranges float [M,2] (lo, hi);
    boxes float [N,4] xyxy; labels long [N]; iscrowd bool [N] or None.
    Returns (classes long [M]: a label, ``BACKGROUND`` (-2) or ``IGNORE`` (-1),
    target boxes float [M,4]: the assigned box, zeros elsewhere).
    """
    m = locations.shape[0]
    classes = torch.full((m,), BACKGROUND, dtype=torch.long, device=locations.device)
    assigned = torch.zeros(m, 4, dtype=locations.dtype, device=locations.device)
    if boxes.numel() == 0:
        return classes, assigned
    crowd = (
        iscrowd.bool()
        if iscrowd is not None
        else torch.zeros(len(boxes), dtype=torch.bool, device=boxes.device)
    )
    x, y = locations[:, 0:1], locations[:, 1:2]  # [M,1]
    x1, y1, x2, y2 = boxes.unbind(1)  # [N]
    ltrb = torch.stack([x - x1, y - y1, x2 - x, y2 - y], dim=2)  # [M,N,4]
    inside_box = ltrb.min(dim=2).values > 0
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    r = radius * strides[:, None]  # [M,1]
    inside_center = (
        (x > torch.maximum(cx - r, x1))
        & (x < torch.minimum(cx + r, x2))
        & (y > torch.maximum(cy - r, y1))
        & (y < torch.minimum(cy + r, y2))
    )
    reach = ltrb.max(dim=2).values
    in_range = (reach >= ranges[:, 0:1]) & (reach <= ranges[:, 1:2])
    area = ((x2 - x1) * (y2 - y1))[None, :].expand(m, -1)
    candidate = inside_box & inside_center & in_range & ~crowd[None, :]
    area = torch.where(candidate, area, torch.full_like(area, float("inf")))
    best_area, best = area.min(dim=1)
    positive = torch.isfinite(best_area)
    classes[positive] = labels[best[positive]]
    assigned[positive] = boxes[best[positive]]
    in_crowd = (inside_box & crowd[None, :]).any(dim=1) & ~positive
    classes[in_crowd] = IGNORE
    return classes, assigned


def _centerness(ltrb: torch.Tensor) -> torch.Tensor:
    """FCOS centerness sqrt(min(l,r)/max(l,r) * min(t,b)/max(t,b)) of distances [N,4]."""
    lr, tb = ltrb[:, [0, 2]], ltrb[:, [1, 3]]
    ratio = (lr.min(1).values / lr.max(1).values) * (tb.min(1).values / tb.max(1).values)
    return torch.sqrt(ratio.clamp(min=0))


def fcos_loss(
    cls_logits: Sequence[torch.Tensor],
    box_distances: Sequence[torch.Tensor],
    centerness: Sequence[torch.Tensor],
    strides: Sequence[int],
    boxes: Sequence[torch.Tensor],
    labels: Sequence[torch.Tensor],
    iscrowd: Sequence[torch.Tensor] | None = None,
    size_ranges: Sequence[tuple[float, float]] | None = None,
    radius: float = 1.5,
    focal_alpha: float = 0.25,
    focal_gamma: float = 2.0,
) -> dict[str, torch.Tensor]:
    """Per-level maps [B,K,H_l,W_l], [B,4,H_l,W_l], [B,1,H_l,W_l] and per-image boxes [N_i,4],
    labels [N_i], iscrowd [N_i] -> {"loss", "classification", "box", "centerness"} (scalars)."""
    num_levels = len(strides)
    if not len(cls_logits) == len(box_distances) == len(centerness) == num_levels:
        raise ValueError(
            f"fcos_loss: {len(cls_logits)}/{len(box_distances)}/{len(centerness)} levels of "
            f"class/box/centerness maps for {num_levels} strides"
        )
    ranges_per_level = size_ranges or default_size_ranges(strides)
    if len(ranges_per_level) != num_levels:
        raise ValueError(
            f"fcos_loss: {len(ranges_per_level)} size ranges for {num_levels} levels (strides {list(strides)})"
        )
    device = cls_logits[0].device
    sizes = [tuple(c.shape[-2:]) for c in cls_logits]
    locs = level_locations(sizes, strides, device=device)
    counts = [len(loc) for loc in locs]
    locations = torch.cat(locs)
    stride_of = torch.cat(
        [torch.full((n,), float(s), device=device) for n, s in zip(counts, strides)]
    )
    ranges = torch.cat(
        [
            torch.tensor([r], device=device, dtype=torch.float32).expand(n, 2)
            for n, r in zip(counts, ranges_per_level)
        ]
    )
    batch, num_classes = cls_logits[0].shape[:2]
    # [B, M, K], [B, M, 4], [B, M]: levels concatenated in the order of `locations`.
    logits = torch.cat([c.flatten(2) for c in cls_logits], dim=2).transpose(1, 2).float()
    dists = torch.cat([d.flatten(2) for d in box_distances], dim=2).transpose(1, 2).float()
    ctr_logits = torch.cat([c.flatten(2) for c in centerness], dim=2).squeeze(1).float()
    if len(boxes) != batch or len(labels) != batch:
        raise ValueError(
            f"fcos_loss: {len(boxes)} box lists / {len(labels)} label lists for {batch} images"
        )
    targets = [
        fcos_targets(
            locations,
            stride_of,
            ranges,
            boxes[b].to(device).float(),
            labels[b].to(device),
            None if iscrowd is None else iscrowd[b].to(device),
            radius,
        )
        for b in range(batch)
    ]
    classes = torch.stack([t[0] for t in targets])  # [B,M]
    target_boxes = torch.stack([t[1] for t in targets])  # [B,M,4]
    valid = classes != IGNORE
    positive = classes >= 0
    num_pos = max(float(positive.sum()), 1.0)
    onehot = F.one_hot(classes.clamp(min=0), num_classes).to(logits.dtype)
    onehot = onehot * positive[..., None]
    focal = sigmoid_focal_loss(
        logits, onehot, alpha=focal_alpha, gamma=focal_gamma, reduction="none"
    )
    classification = (focal * valid[..., None]).sum() / num_pos
    if positive.any():
        loc = locations[None].expand(batch, -1, -1)[positive]
        tgt = target_boxes[positive]
        ltrb = torch.stack(
            [
                loc[:, 0] - tgt[:, 0],
                loc[:, 1] - tgt[:, 1],
                tgt[:, 2] - loc[:, 0],
                tgt[:, 3] - loc[:, 1],
            ],
            dim=1,
        )
        ctr_target = _centerness(ltrb)
        pred_boxes = distances_to_boxes(loc, dists[positive])
        giou = generalized_box_iou_loss(pred_boxes, tgt, reduction="none")
        box = (giou * ctr_target).sum() / ctr_target.sum().clamp(min=1e-6)
        ctr = (
            F.binary_cross_entropy_with_logits(ctr_logits[positive], ctr_target, reduction="sum")
            / num_pos
        )
    else:
        # Keep every output in the graph so DDP sees gradients for all parameters.
        box = dists.sum() * 0.0
        ctr = ctr_logits.sum() * 0.0
    return {
        "loss": classification + box + ctr,
        "classification": classification,
        "box": box,
        "centerness": ctr,
    }
