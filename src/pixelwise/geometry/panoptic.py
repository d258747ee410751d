"""Panoptic-DeepLab geometry: instance-centre targets and the panoptic post-processing. Pure torch.

Coordinates are ``(x, y)`` = (column, row) with pixel centres at integers; offset maps have
two channels ``(dx, dy)``: a pixel at ``p`` points to ``p + offset``, its instance's centre.

Panoptic ids made here: ``(class + 1) * label_divisor`` for a stuff segment and
``(class + 1) * label_divisor + n`` (1 <= n < label_divisor) for a thing instance; 0 = void.

Cost of :func:`panoptic_postprocess` per image (``benchmarks/bench_panoptic.py``, batch 1, one
thread, AMD EPYC on a 2-core machine busy with other trainings, 30 instances, top_k 200):
3.7 ms at 96x128 (4.5% of the PanopticUNet forward, 16 channels, depth 4) and 322 ms at
512x1024 (6.7% of the forward, 4.8 s). Its memory is O(B·H·W) plus a [B, 65536, K_valid]
distance block.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F

__all__ = [
    "instance_centers",
    "panoptic_targets",
    "find_centers",
    "group_pixels",
    "PanopticGrouping",
    "panoptic_postprocess",
    "panoptic_segments",
]


def instance_centers(instances: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Centres of mass of the instances of a batch.

    instances long [B,H,W] (0 = none, ids up to M) -> (centres float [B,M+1,2] (x, y) of each
    id, rounded to the nearest pixel; present bool [B,M+1], False for id 0 and missing ids).
    """
    if instances.ndim != 3:
        raise ValueError(f"instance_centers: instances {tuple(instances.shape)}; expected [B,H,W]")
    b, h, w = instances.shape
    m = int(instances.max()) if instances.numel() else 0
    if instances.numel() and int(instances.min()) < 0:
        raise ValueError(
            "instance_centers: negative instance id; expected 0 (none) or a positive id"
        )
    ys, xs = torch.meshgrid(
        torch.arange(h, device=instances.device, dtype=torch.float64),
        torch.arange(w, device=instances.device, dtype=torch.float64),
        indexing="ij",
    )
    key = (instances + torch.arange(b, device=instances.device).view(b, 1, 1) * (m + 1)).reshape(-1)
    n = b * (m + 1)
    count = torch.zeros(n, dtype=torch.float64, device=instances.device).index_add_(
        0, key, torch.ones_like(key, dtype=torch.float64)
    )
    sx = torch.zeros(n, dtype=torch.float64, device=instances.device).index_add_(
        0, key, xs.expand(b, h, w).reshape(-1)
    )
    sy = torch.zeros(n, dtype=torch.float64, device=instances.device).index_add_(
        0, key, ys.expand(b, h, w).reshape(-1)
    )
    present = count > 0
    centres = torch.stack([sx, sy], dim=-1) / count.clamp(min=1).unsqueeze(-1)
    present = present.view(b, m + 1).clone()
    present[:, 0] = False
    return torch.round(centres).float().view(b, m + 1, 2), present


def panoptic_targets(
    instances: torch.Tensor, sigma: float = 4.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Centre heatmap and offset targets of Panoptic-DeepLab.

    instances long [B,H,W] (0 = none) -> (heatmap float [B,1,H,W]: the max over instances of
    ``exp(-|p - c|² / (2 sigma²))`` with ``c`` the instance's rounded centre of mass;
    offsets float [B,2,H,W]: ``c - p`` (dx, dy) on instance pixels, 0 elsewhere;
    weight bool [B,1,H,W]: the instance pixels, where the offset loss applies).
    """
    if sigma <= 0:
        raise ValueError(f"panoptic_targets: sigma={sigma}; expected > 0")
    b, h, w = instances.shape
    centres, present = instance_centers(instances)
    dev = instances.device
    ys = torch.arange(h, device=dev, dtype=torch.float32).view(1, h, 1)
    xs = torch.arange(w, device=dev, dtype=torch.float32).view(1, 1, w)
    heatmap = torch.zeros(b, h, w, device=dev)
    # Slots of ids: one [B,H,W] pass per id (vectorised over the batch), so memory stays O(BHW).
    for k in range(1, centres.shape[1]):
        ok = present[:, k]
        if not bool(ok.any()):
            continue
        cx = centres[:, k, 0].view(b, 1, 1)
        cy = centres[:, k, 1].view(b, 1, 1)
        g = torch.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * sigma**2))
        heatmap = torch.maximum(heatmap, g * ok.view(b, 1, 1))
    weight = instances > 0
    idx = instances.reshape(b, -1, 1).expand(-1, -1, 2)
    c = torch.gather(centres, 1, idx).view(b, h, w, 2).permute(0, 3, 1, 2)
    grid = torch.stack(torch.broadcast_tensors(xs.expand(1, h, w), ys.expand(1, h, w)), dim=1)
    offsets = torch.where(weight.unsqueeze(1), c - grid, torch.zeros_like(c))
    return heatmap.unsqueeze(1), offsets, weight.unsqueeze(1)


def find_centers(
    heatmap: torch.Tensor, threshold: float = 0.1, nms_kernel: int = 7, top_k: int = 200
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Centre NMS (a pixel is kept if it is the max of its ``nms_kernel`` window and > threshold) + top-k.

    heatmap float [B,1,H,W] -> (centres float [B,K,2] (x, y), scores [B,K], valid bool [B,K]),
    K = min(top_k, H·W), sorted by score; invalid slots have score -1.
    """
    if heatmap.ndim != 4 or heatmap.shape[1] != 1:
        raise ValueError(f"find_centers: heatmap {tuple(heatmap.shape)}; expected [B,1,H,W]")
    if nms_kernel < 1 or nms_kernel % 2 == 0:
        raise ValueError(f"find_centers: nms_kernel={nms_kernel}; expected an odd int >= 1")
    b, _, h, w = heatmap.shape
    pooled = F.max_pool2d(heatmap, nms_kernel, stride=1, padding=nms_kernel // 2)
    keep = (heatmap == pooled) & (heatmap > threshold)
    scores = torch.where(keep, heatmap, torch.full_like(heatmap, -1.0)).view(b, -1)
    k = min(top_k, h * w)
    values, idx = scores.topk(k, dim=1)
    centres = torch.stack([idx % w, idx // w], dim=-1).float()
    return centres, values, values > threshold


def group_pixels(
    offsets: torch.Tensor, centres: torch.Tensor, valid: torch.Tensor, chunk: int = 1 << 16
) -> torch.Tensor:
    """Each pixel to the nearest centre of its predicted centre ``p + offset``.

    offsets [B,2,H,W], centres [B,K,2] (x, y), valid bool [B,K] -> slot long [B,H,W] in 0..K-1
    (-1 where an image has no valid centre). Only the first ``max valid per image`` slots are
    compared (``find_centers`` sorts valid centres first); the squared distance is computed as
    ``|c|² - 2 t·c`` (``|t|²`` is the same for every centre) by a batched matmul, over chunks
    of ``chunk`` pixels so the [B,chunk,K] block bounds memory.
    """
    b, _, h, w = offsets.shape
    k = int(valid.sum(dim=1).max()) if valid.numel() else 0
    if k == 0:
        return torch.full((b, h, w), -1, dtype=torch.long, device=offsets.device)
    # Keep the valid slots (first k of each row after a stable sort putting valid first).
    order = torch.argsort((~valid).to(torch.int8), dim=1, stable=True)[:, :k]
    c = torch.gather(centres, 1, order.unsqueeze(-1).expand(-1, -1, 2)).to(offsets.dtype)
    ok = torch.gather(valid, 1, order)
    ys, xs = torch.meshgrid(
        torch.arange(h, device=offsets.device, dtype=offsets.dtype),
        torch.arange(w, device=offsets.device, dtype=offsets.dtype),
        indexing="ij",
    )
    target = (torch.stack([xs, ys]).unsqueeze(0) + offsets).flatten(2)  # [B,2,HW]
    # score[b, p, j] = |c_j|² - 2 t_p·c_j (+inf for invalid slots); argmin over j.
    weights = torch.cat([-2.0 * c, c.square().sum(-1, keepdim=True)], dim=2)  # [B,k,3]
    weights[..., 2] = torch.where(
        ok, weights[..., 2], torch.full_like(weights[..., 2], float("inf"))
    )
    ones = torch.ones(b, 1, h * w, dtype=offsets.dtype, device=offsets.device)
    homog = torch.cat([target, ones], dim=1).transpose(1, 2)  # [B,HW,3]
    wt = weights.transpose(1, 2).contiguous()  # [B,3,k]
    out = torch.empty(b, h * w, dtype=torch.long, device=offsets.device)
    for start in range(0, h * w, chunk):
        score = torch.bmm(
            homog[:, start : start + chunk], wt
        )  # [B,chunk,k]: argmin on the last dim
        out[:, start : start + chunk] = torch.gather(order, 1, score.argmin(dim=2))
    out = torch.where(valid.any(dim=1, keepdim=True), out, torch.full_like(out, -1))
    return out.view(b, h, w)


@dataclass(frozen=True)
class PanopticGrouping:
    """How :func:`panoptic_postprocess` turns centres and offsets into segments.

    ``threshold``, ``nms_kernel`` (odd) and ``top_k`` select the centres (:func:`find_centers`);
    thing instances of fewer than ``min_thing_area`` pixels and stuff regions of fewer than
    ``min_stuff_area`` become void. Defaults: Panoptic-DeepLab's (0.1, 7, 200), no area limits.
    """

    threshold: float = 0.1
    nms_kernel: int = 7
    top_k: int = 200
    min_thing_area: int = 0
    min_stuff_area: int = 0

    def __post_init__(self) -> None:
        if self.nms_kernel < 1 or self.nms_kernel % 2 == 0:
            raise ValueError(f"nms_kernel={self.nms_kernel}: expected an odd int >= 1")
        if self.top_k < 1:
            raise ValueError(f"top_k={self.top_k}: expected >= 1")
        for key in ("min_thing_area", "min_stuff_area"):
            if getattr(self, key) < 0:
                raise ValueError(f"{key}={getattr(self, key)}: expected >= 0 (pixels)")

    @classmethod
    def from_config(cls, options: Mapping[str, Any] | None, where: str) -> PanopticGrouping:
        """Settings from a config mapping (None: the defaults); a bad key or value names ``where``."""
        options = dict(options or {})
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(options) - set(names))
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {unknown}; expected some of {names}")
        try:
            return cls(**options)
        except ValueError as err:
            raise ValueError(f"{where}.{err}") from None


def panoptic_postprocess(
    semantic: torch.Tensor,
    heatmap: torch.Tensor,
    offsets: torch.Tensor,
    thing_classes: Sequence[int],
    num_classes: int,
    grouping: PanopticGrouping | None = None,
    label_divisor: int = 1000,
) -> torch.Tensor:
    """Panoptic-DeepLab's merge of semantic, centres and offsets, batched.

    semantic long [B,H,W] (predicted classes), heatmap [B,1,H,W], offsets [B,2,H,W] ->
    panoptic long [B,H,W]. Thing pixels (semantic class in ``thing_classes``) go to the nearest
    predicted centre (:func:`group_pixels`); each instance's class is the majority vote of the
    semantic classes of its pixels (ties: the smaller class); instances of fewer than
    ``grouping.min_thing_area`` pixels and stuff regions (one per class) of fewer than
    ``grouping.min_stuff_area`` become void (0), as do thing pixels of an image without centres.
    """
    g = grouping or PanopticGrouping()
    b, h, w = semantic.shape
    if heatmap.shape != (b, 1, h, w) or offsets.shape != (b, 2, h, w):
        raise ValueError(
            f"panoptic_postprocess: semantic {tuple(semantic.shape)}, heatmap {tuple(heatmap.shape)}, "
            f"offsets {tuple(offsets.shape)}; expected [B,H,W], [B,1,H,W], [B,2,H,W]"
        )
    if g.top_k >= label_divisor:
        raise ValueError(
            f"panoptic_postprocess: top_k={g.top_k} must be < label_divisor={label_divisor}"
        )
    dev = semantic.device
    is_thing = torch.zeros(num_classes, dtype=torch.bool, device=dev)
    is_thing[list(thing_classes)] = True
    thing = is_thing[semantic]
    centres, _, valid = find_centers(heatmap, g.threshold, g.nms_kernel, g.top_k)
    k = centres.shape[1]
    slot = group_pixels(offsets, centres, valid)
    assigned = thing & (slot >= 0)
    # Majority vote: counts[b, slot, class] of the thing pixels.
    key = (
        torch.arange(b, device=dev).view(b, 1, 1) * k + slot.clamp(min=0)
    ) * num_classes + semantic
    counts = torch.zeros(b * k * num_classes, dtype=torch.long, device=dev)
    counts.index_add_(0, key[assigned], torch.ones_like(key[assigned]))
    counts = counts.view(b, k, num_classes)
    inst_class = counts.argmax(dim=2)  # [B,K]
    area = counts.sum(dim=2)
    keep_inst = (area > 0) & (area >= g.min_thing_area)
    inst_ids = (inst_class + 1) * label_divisor + torch.arange(1, k + 1, device=dev)
    inst_ids = torch.where(keep_inst, inst_ids, torch.zeros_like(inst_ids))
    thing_ids = torch.gather(inst_ids, 1, slot.clamp(min=0).view(b, -1)).view(b, h, w)
    pan = torch.where(assigned, thing_ids, torch.zeros_like(semantic))
    # Stuff: one segment per class per image; small ones void.
    stuff = ~thing
    skey = torch.arange(b, device=dev).view(b, 1, 1) * num_classes + semantic
    sarea = torch.zeros(b * num_classes, dtype=torch.long, device=dev)
    sarea.index_add_(0, skey[stuff], torch.ones_like(skey[stuff]))
    big = (sarea >= max(g.min_stuff_area, 1)).view(b * num_classes)[skey]
    pan = torch.where(stuff & big, (semantic + 1) * label_divisor, pan)
    return pan


def panoptic_segments(panoptic: torch.Tensor, label_divisor: int = 1000) -> list[torch.Tensor]:
    """Segments of maps made by :func:`panoptic_postprocess`: per image long [N,3] (id, class, iscrowd=0)."""
    out = []
    for pan in panoptic:
        ids = torch.unique(pan)
        ids = ids[ids > 0]
        out.append(torch.stack([ids, ids // label_divisor - 1, torch.zeros_like(ids)], dim=1))
    return out
