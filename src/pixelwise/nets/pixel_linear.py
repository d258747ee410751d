"""The chapter's starting point: a linear classifier at each pixel (multinomial logistic regression).

Seed chapter 21.1.1-21.1.2: scores ``s = A x + b`` for the pixel's feature vector ``x``, read as
class probabilities by the softmax; trained with the per-pixel cross-entropy of 21.2 (which the
segmentation task already uses), this is multinomial logistic regression fitted to every pixel of
every training image, with one ``A`` and ``b`` shared by all pixels. It sees nothing of a pixel's
neighbours: what it cannot tell apart from the pixel alone is what the convolutional nets add.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["FEATURES", "PixelLinear", "pixel_features"]

# color: the pixel's C channel values; position: its (x, y) = (column, row) scaled to [0, 1].
FEATURES = ("color", "position")


def pixel_features(images: torch.Tensor, features: Sequence[str]) -> torch.Tensor:
    """images [B,C,H,W] -> per-pixel features [B,F,H,W], the ``features`` stacked in order."""
    b, _, h, w = images.shape
    parts = []
    for name in features:
        if name == "color":
            parts.append(images)
        else:  # position
            x = torch.arange(w, device=images.device, dtype=images.dtype) / max(w - 1, 1)
            y = torch.arange(h, device=images.device, dtype=images.dtype) / max(h - 1, 1)
            grid = torch.stack([x.expand(h, w), y[:, None].expand(h, w)])
            parts.append(grid.expand(b, 2, h, w))
    return torch.cat(parts, dim=1)


class PixelLinear(nn.Module):
    """Per-pixel multinomial logistic regression: images [B,in_channels,H,W] -> logits [B,num_classes,H,W].

    ``logits[:, :, i, j] = A @ x_ij + b`` with ``x_ij`` the pixel's features (``features``: a
    list drawn from ``FEATURES``; ``color`` = its ``in_channels`` values, ``position`` = its
    ``(x, y)`` scaled to [0, 1]); the softmax of the logits is the class probability. A 1x1
    convolution computes exactly this for all pixels at once. Any H and W work.
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 9,
        features: Sequence[str] = ("color",),
    ) -> None:
        super().__init__()
        features = [features] if isinstance(features, str) else list(features)
        if (
            not features
            or any(f not in FEATURES for f in features)
            or len(set(features)) < len(features)
        ):
            raise ValueError(
                f"PixelLinear: features={features!r}: expected a non-empty list of distinct "
                f"names from {FEATURES}"
            )
        for name, value in (("in_channels", in_channels), ("num_classes", num_classes)):
            if value < 1:
                raise ValueError(f"PixelLinear: {name}={value} must be >= 1")
        self.in_channels = in_channels
        self.features = tuple(features)
        dims = {"color": in_channels, "position": 2}
        self.classifier = nn.Conv2d(sum(dims[f] for f in features), num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """images [B,in_channels,H,W] -> logits [B,num_classes,H,W]."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"PixelLinear: expected images [B,{self.in_channels},H,W], got {tuple(x.shape)}"
            )
        return self.classifier(pixel_features(x, self.features))
