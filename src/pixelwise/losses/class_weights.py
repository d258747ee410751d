"""Class weights for per-pixel cross-entropy from class pixel frequencies."""

from __future__ import annotations

import torch

CLASS_WEIGHTING = ("none", "inverse_frequency", "median_frequency")


def class_weights(pixel_counts: torch.Tensor, mode: str = "none") -> torch.Tensor | None:
    """Weights [K] from pixel counts [K]; None for mode "none".

    `inverse_frequency`: w_c = 1 / f_c, normalised so the pixel-weighted mean weight is 1.
    `median_frequency` (Eigen & Fergus 2015): w_c = median(f) / f_c. Classes never seen get
    weight 0 (they cannot contribute to the loss anyway) and are left out of the median.
    """
    if mode not in CLASS_WEIGHTING:
        raise ValueError(f"class weighting {mode!r} is not one of {CLASS_WEIGHTING}")
    if mode == "none":
        return None
    counts = pixel_counts.double()
    if counts.ndim != 1 or (counts < 0).any():
        raise ValueError(
            f"pixel_counts must be a non-negative [K] vector, got {tuple(counts.shape)}"
        )
    seen = counts > 0
    if not seen.any():
        raise ValueError(
            "pixel_counts are all zero: no labelled pixel to compute class weights from"
        )
    freq = counts / counts.sum()
    weights = torch.zeros_like(freq)
    if mode == "inverse_frequency":
        weights[seen] = 1.0 / freq[seen]
        weights = weights / (weights * freq).sum()
    else:
        weights[seen] = freq[seen].median() / freq[seen]
    return weights.float()
