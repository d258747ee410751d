"""65-way cross-entropy of the interest-point detector, per 8x8 cell (SuperPoint's L_p)."""

from __future__ import annotations

import torch

__all__ = ["cell_cross_entropy"]

_CLASSES = 65
_IGNORE = 255


def cell_cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    cell_mask: torch.Tensor | None = None,
    soft_tolerance: float = 1e-3,
) -> torch.Tensor:
    """Mean over valid cells of the cross-entropy of logits [B,65,Hc,Wc] against a target -> scalar.

    ``target`` is either hard labels, long [B,Hc,Wc] with values in 0..64 or 255 (ignored): the
    loss of a cell is ``-log softmax(logits)[label]`` (as rpautrat's ``detector_loss``, whose
    valid-mask weighting divides by the number of valid cells); or soft targets, float
    [B,65,Hc,Wc], each cell a distribution (sums to 1 within ``soft_tolerance``, checked): the
    loss of a cell is ``-sum_k q_k log p_k``. ``cell_mask`` (bool [B,Hc,Wc], True = valid)
    additionally excludes cells for either kind. With no valid cell the loss is 0 (still
    connected to ``logits`` so that backward works).
    """
    if logits.dim() != 4 or logits.shape[1] != _CLASSES:
        raise ValueError(
            f"cell_cross_entropy: logits must be [B, 65, Hc, Wc], got {list(logits.shape)}"
        )
    b, _, hc, wc = logits.shape
    if cell_mask is not None and tuple(cell_mask.shape) != (b, hc, wc):
        raise ValueError(
            f"cell_cross_entropy: cell_mask must be [B, Hc, Wc] = {[b, hc, wc]}, got {list(cell_mask.shape)}"
        )
    log_p = torch.log_softmax(logits.float(), dim=1)

    if target.is_floating_point():
        if tuple(target.shape) != (b, _CLASSES, hc, wc):
            raise ValueError(
                f"cell_cross_entropy: soft targets must be [B, 65, Hc, Wc] = {[b, _CLASSES, hc, wc]}, "
                f"got {list(target.shape)}"
            )
        valid = torch.ones((b, hc, wc), dtype=torch.bool, device=logits.device)
        if cell_mask is not None:
            valid &= cell_mask.bool()
        q = target.float()
        if (q[valid.unsqueeze(1).expand_as(q)] < 0).any():
            raise ValueError(
                "cell_cross_entropy: soft targets must be >= 0 (a distribution per cell)"
            )
        sums = q.sum(1)[valid]
        if sums.numel() and (sums - 1).abs().max() > soft_tolerance:
            worst = sums[(sums - 1).abs().argmax()].item()
            raise ValueError(
                "cell_cross_entropy: each soft target cell must sum to 1 over its 65 channels "
                f"(within {soft_tolerance}); found a cell summing to {worst:.6g}. "
                "Use pixelwise.geometry.heatmap_to_cell_distribution to build them from a heatmap."
            )
        per_cell = -(q * log_p).sum(1)
    else:
        if target.dtype == torch.bool:
            raise TypeError(
                "cell_cross_entropy: hard labels must be an integer tensor (long), got bool"
            )
        if tuple(target.shape) != (b, hc, wc):
            raise ValueError(
                f"cell_cross_entropy: hard labels must be [B, Hc, Wc] = {[b, hc, wc]}, got {list(target.shape)}"
            )
        labels = target.long()
        bad = ((labels < 0) | (labels >= _CLASSES)) & (labels != _IGNORE)
        if bad.any():
            raise ValueError(
                f"cell_cross_entropy: labels must be in 0..64 or 255 (ignore), found {labels[bad][0].item()}"
            )
        valid = labels != _IGNORE
        if cell_mask is not None:
            valid &= cell_mask.bool()
        safe = labels.masked_fill(~valid, 0)
        per_cell = -log_p.gather(1, safe.unsqueeze(1)).squeeze(1)

    n_valid = valid.sum()
    if n_valid == 0:
        return logits.sum() * 0.0
    return per_cell[valid].sum() / n_valid
