"""Class-balanced binary cross-entropy for edge maps (seed 21.3.1, HED), with deep supervision.

With s the edge logit, y in [0, 1] the target and beta = E/T the fraction of edge pixels,
the cost at a pixel is

    C = (1 - beta) * y * log(1 + exp(-s)) + beta * (1 - y) * log(1 + exp(s)),

i.e. -(1 - beta) y log P(edge) - beta (1 - y) log P(not edge): positives weighted (1 - beta),
negatives beta. (The seed prints the positive bracket as ``s + log(1 + exp s)`` and negates
the negative term; both are sign slips: -log sigmoid(s) = log(1 + exp(-s)) = -s + log(1 + exp s).)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

BETA_MODES: tuple[str, ...] = ("dataset", "image", "batch")
REDUCTIONS: tuple[str, ...] = ("mean", "sum")

Beta = float | torch.Tensor | str


def edge_fraction(targets: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """beta = E/T over everything given: targets [...] in [0,1], weights [...] (0 = ignored) -> scalar."""
    if not targets.is_floating_point():
        targets = targets.float()
    if weights is None:
        return targets.mean() if targets.numel() else targets.new_zeros(())
    weights = weights.to(targets.dtype)
    return (weights * targets).sum() / weights.sum().clamp_min(1e-12)


def _as_maps(x: torch.Tensor, name: str) -> torch.Tensor:
    if x.ndim == 3:
        return x.unsqueeze(1)
    if x.ndim != 4:
        raise ValueError(f"balanced_bce: {name} must be [B,H,W] or [B,K,H,W], got {tuple(x.shape)}")
    return x


def _beta(beta: Beta, targets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """beta broadcastable to targets [B,K,H,W]: a number, per image [B,1,1,1], or per batch."""
    if isinstance(beta, str):
        if beta == "image":
            e = (weights * targets).sum(dim=(1, 2, 3), keepdim=True)
            t = weights.sum(dim=(1, 2, 3), keepdim=True)
            return e / t.clamp_min(1e-12)
        if beta == "batch":
            return edge_fraction(targets, weights)
        if beta == "dataset":
            raise ValueError(
                "balanced_bce: beta='dataset' is the edge fraction E/T of the training set; "
                "compute it once (edge_fraction over the annotations) and pass the number"
            )
        raise ValueError(
            f"balanced_bce: beta={beta!r}: expected a number in [0,1] or one of {BETA_MODES}"
        )
    beta = torch.as_tensor(beta, dtype=targets.dtype, device=targets.device)
    if beta.numel() != 1 or not 0.0 <= float(beta) <= 1.0:
        raise ValueError(f"balanced_bce: beta={beta.tolist()}: expected a number in [0,1]")
    return beta.reshape(())


def _check(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor | None):
    logits = _as_maps(logits, "logits")
    targets = _as_maps(targets, "targets").to(logits.dtype)
    if logits.shape[1] != 1:
        raise ValueError(f"balanced_bce: logits must have one channel, got {tuple(logits.shape)}")
    if targets.shape[0] != logits.shape[0] or targets.shape[-2:] != logits.shape[-2:]:
        raise ValueError(
            f"balanced_bce: targets {tuple(targets.shape)} do not match logits {tuple(logits.shape)} "
            "(expected the same batch size and H, W)"
        )
    if weights is None:
        weights = torch.ones_like(targets)
    else:
        weights = _as_maps(weights, "weights").to(logits.dtype)
        if weights.shape != targets.shape:
            raise ValueError(
                f"balanced_bce: weights {tuple(weights.shape)} must have the shape of targets "
                f"{tuple(targets.shape)}"
            )
    return logits, targets, weights


def _reduce(cost: torch.Tensor, weights: torch.Tensor, reduction: str) -> torch.Tensor:
    """Weighted costs [B,K,H,W] -> scalar: per-(image, annotation) mean then mean, or sum / B."""
    per_map = (weights * cost).sum(dim=(2, 3))  # [B,K]
    if reduction == "sum":
        return per_map.sum() / cost.shape[0]
    counts = weights.sum(dim=(2, 3))
    used = counts > 0  # padded annotators and fully ignored maps carry no pixels
    if not used.any():
        return cost.sum() * 0.0  # keeps the graph; nothing to learn from
    return (per_map[used] / counts[used]).mean()


def balanced_bce(
    logits: torch.Tensor,
    targets: torch.Tensor,
    weights: torch.Tensor | None = None,
    beta: Beta = "image",
    reduction: str = "mean",
) -> torch.Tensor:
    """Class-balanced BCE: logits [B,1,H,W], targets/weights [B,K,H,W] (K annotations) -> scalar.

    Every annotation k of image b is its own data item (the seed's sum over ground truths);
    `weights` (0 = ignored pixel, 0 everywhere = absent annotation) mask pixels out.
    `beta`: a number (e.g. the dataset fraction E/T), "image" (E/T of each image over its
    annotations, as HED) or "batch". `reduction`: "mean" = the seed's
    (1/N) sum_i (1/N_p(i)) sum_x C over the N (image, annotation) items with N_p(i) counted
    pixels; "sum" = sum over pixels and annotations, divided by the batch size (HED/RCF).
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"balanced_bce: reduction={reduction!r}: expected one of {REDUCTIONS}")
    logits, targets, weights = _check(logits, targets, weights)
    return _balanced(logits, targets, weights, _beta(beta, targets, weights), reduction)


def _balanced(logits, targets, weights, b: torch.Tensor, reduction: str) -> torch.Tensor:
    b = b.detach()  # a statistic of the labels, not something to differentiate
    cost = (1 - b) * targets * F.softplus(-logits) + b * (1 - targets) * F.softplus(logits)
    return _reduce(cost, weights, reduction)


def deep_supervision_bce(
    logits: Sequence[torch.Tensor],
    targets: torch.Tensor,
    weights: torch.Tensor | None = None,
    beta: Beta = "image",
    output_weights: Sequence[float] | None = None,
    reduction: str = "mean",
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Weighted sum of balanced_bce over every output map [B,1,H,W] -> (total, per-output losses)."""
    if reduction not in REDUCTIONS:
        raise ValueError(
            f"deep_supervision_bce: reduction={reduction!r}: expected one of {REDUCTIONS}"
        )
    if not len(logits):
        raise ValueError("deep_supervision_bce: no output maps given")
    if output_weights is None:
        output_weights = [1.0] * len(logits)
    if len(output_weights) != len(logits):
        raise ValueError(
            f"deep_supervision_bce: {len(output_weights)} output weights for {len(logits)} outputs"
        )
    # beta depends on the targets only: one value for every output.
    checked = [_check(x, targets, weights) for x in logits]
    b = _beta(beta, checked[0][1], checked[0][2])
    losses = [_balanced(x, t, w, b, reduction) for x, t, w in checked]
    total = sum(w * loss for w, loss in zip(output_weights, losses))
    return total, losses
