"""Conversions between this project's pixel-centre coordinates and other code's conventions.

pixelwise puts pixel centres at integer coordinates (DESIGN.md): resizing by a factor ``s`` maps
``p -> (p + 0.5) * s - 0.5``. The reference SuperPoint code (rpautrat) draws Synthetic Shapes at
960x1280 with OpenCV (also pixel centres at integers) and resizes the points to 120x160 by
``p -> p * s``; its ground truth therefore sits ``0.5 * (1 - s)`` px right and down of where the
pixel-centre mapping puts it: 0.4375 px for ``s = 1/8`` (the ~0.44 px offset measured between our
detections and its points). Use these functions when scoring against data in that convention.
"""

from __future__ import annotations

import torch

__all__ = ["from_scaled_corner_convention", "to_scaled_corner_convention"]


def to_scaled_corner_convention(points: torch.Tensor, scale: float) -> torch.Tensor:
    """Our points [..., 2] (x, y) at the resized size -> where ``p_big * scale`` puts them."""
    return points + 0.5 * (1.0 - scale)


def from_scaled_corner_convention(points: torch.Tensor, scale: float) -> torch.Tensor:
    """Points [..., 2] resized by ``p_big * scale`` (rpautrat's Synthetic Shapes) -> ours."""
    return points - 0.5 * (1.0 - scale)
