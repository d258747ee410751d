"""Per-pixel multi-class cross-entropy with an ignore label."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pixel_cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None = None,
    ignore_index: int = 255,
) -> torch.Tensor:
    """Mean cross-entropy of logits [B,K,H,W] against labels long [B,H,W] (ignore_index skipped).

    With class weights the mean is weighted, as the seed's sum over pixels of w_y * -log p_y
    divided by the sum of the weights. All pixels ignored gives 0 (not NaN) so a crop of
    void pixels does not poison training.
    """
    if logits.ndim != 4 or target.shape != (logits.shape[0], *logits.shape[2:]):
        raise ValueError(
            f"pixel_cross_entropy: logits {tuple(logits.shape)} and target {tuple(target.shape)} "
            "must be [B,K,H,W] and [B,H,W]"
        )
    if not (target != ignore_index).any():
        return logits.sum() * 0.0
    return F.cross_entropy(logits, target, weight=weight, ignore_index=ignore_index)
