"""Panoptic-DeepLab losses: semantic cross-entropy, centre-heatmap MSE, offset L1. Pure tensors."""

from __future__ import annotations

import torch

from pixelwise.losses.pixel_cross_entropy import pixel_cross_entropy

__all__ = ["panoptic_loss"]


def panoptic_loss(
    semantic_logits: torch.Tensor,
    heatmap: torch.Tensor,
    offsets: torch.Tensor,
    mask: torch.Tensor,
    heatmap_target: torch.Tensor,
    offset_target: torch.Tensor,
    offset_weight: torch.Tensor,
    heatmap_valid: torch.Tensor | None = None,
    class_weight: torch.Tensor | None = None,
    ignore_index: int = 255,
    semantic_weight: float = 1.0,
    center_weight: float = 200.0,
    offset_loss_weight: float = 0.01,
) -> dict[str, torch.Tensor]:
    """The three losses and their weighted sum.

    semantic_logits [B,K,H,W], heatmap [B,1,H,W], offsets [B,2,H,W] (predictions); mask long
    [B,H,W] (255 = ignore); heatmap_target [B,1,H,W], offset_target [B,2,H,W], offset_weight
    bool [B,1,H,W] (thing pixels), heatmap_valid bool [B,1,H,W] (pixels the heatmap loss sees;
    None: all). Returns {"loss", "semantic", "center", "offset"}: ``semantic`` the (weighted)
    mean CE; ``center`` the mean squared error over valid pixels; ``offset`` the L1 of (dx, dy)
    summed over the two channels and averaged over thing pixels (0 without any);
    loss = semantic_weight·semantic + center_weight·center + offset_loss_weight·offset.
    """
    sem = pixel_cross_entropy(semantic_logits, mask, weight=class_weight, ignore_index=ignore_index)
    sq = (heatmap - heatmap_target).square()
    if heatmap_valid is None:
        center = sq.mean()
    else:
        v = heatmap_valid.to(sq.dtype)
        center = (sq * v).sum() / v.sum().clamp(min=1.0)
    wt = offset_weight.to(offsets.dtype)
    offset = ((offsets - offset_target).abs() * wt).sum() / wt.sum().clamp(min=1.0)
    loss = semantic_weight * sem + center_weight * center + offset_loss_weight * offset
    return {"loss": loss, "semantic": sem, "center": center, "offset": offset}
