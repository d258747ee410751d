"""Colour-coded label maps and image | ground truth | prediction panels."""

from __future__ import annotations

import numpy as np
import torch

from pixelwise.drawing import to_uint8_image


def default_palette(num_classes: int) -> np.ndarray:
    """A fixed, well-spread uint8 palette [num_classes,3] (bit-interleaved, as VOC's)."""
    palette = np.zeros((num_classes, 3), dtype=np.uint8)
    for c in range(num_classes):
        label, r, g, b = c, 0, 0, 0
        for shift in range(7, -1, -1):
            r |= (label & 1) << shift
            g |= ((label >> 1) & 1) << shift
            b |= ((label >> 2) & 1) << shift
            label >>= 3
        palette[c] = (r, g, b)
    return palette


def colorize(labels: np.ndarray, palette: np.ndarray, ignore_index: int = 255) -> np.ndarray:
    """Label map [H,W] -> uint8 RGB [H,W,3]; ignore pixels and unknown ids are black."""
    labels = np.asarray(labels)
    out = np.zeros((*labels.shape, 3), dtype=np.uint8)
    valid = (labels >= 0) & (labels < len(palette)) & (labels != ignore_index)
    out[valid] = palette[labels[valid]]
    return out


def segmentation_panel(
    image: torch.Tensor,
    target: torch.Tensor,
    pred: torch.Tensor,
    palette: np.ndarray,
    ignore_index: int = 255,
    alpha: float = 0.5,
) -> np.ndarray:
    """One panel [H, 3W, 3]: image | ground-truth overlay | prediction overlay."""
    rgb = to_uint8_image(image).astype(np.float32)
    parts = [rgb]
    for labels in (target, pred):
        colours = colorize(labels.cpu().numpy(), palette, ignore_index).astype(np.float32)
        parts.append((1 - alpha) * rgb + alpha * colours)
    return np.concatenate(parts, axis=1).round().astype(np.uint8)
