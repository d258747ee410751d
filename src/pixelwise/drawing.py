"""Pictures for notebooks, match.py and the callbacks: images as uint8 RGB, keypoint matches (no Lightning)."""

from __future__ import annotations

import cv2
import numpy as np
import torch

__all__ = ["draw_matches", "to_uint8_image"]


def to_uint8_image(image: torch.Tensor) -> np.ndarray:
    """Float image [C,H,W] in [0,1] -> uint8 RGB [H,W,3] (grayscale repeated)."""
    array = (image.detach().float().clamp(0, 1) * 255).round().byte().cpu().numpy()
    array = np.transpose(array, (1, 2, 0))
    return np.repeat(array, 3, axis=2) if array.shape[2] == 1 else array[..., :3]


def draw_matches(
    image_a: torch.Tensor,
    image_b: torch.Tensor,
    keypoints_a: torch.Tensor,
    keypoints_b: torch.Tensor,
    matches: torch.Tensor,
    inliers: np.ndarray | torch.Tensor | None = None,
) -> np.ndarray:
    """Images [C,H,W] in [0,1], points [N,2]/[M,2] (x, y), matches [K,2] -> uint8 RGB [max H, Wa+Wb, 3].

    Side by side; all keypoints as small blue dots, matches as lines: green for RANSAC inliers,
    red for outliers (all yellow when ``inliers`` is None).
    """
    a, b = to_uint8_image(image_a), to_uint8_image(image_b)
    height = max(a.shape[0], b.shape[0])
    canvas = np.zeros((height, a.shape[1] + b.shape[1], 3), np.uint8)
    canvas[: a.shape[0], : a.shape[1]] = a
    canvas[: b.shape[0], a.shape[1] :] = b
    shift = np.array([a.shape[1], 0.0])
    pa = keypoints_a.detach().cpu().double().numpy()
    pb = keypoints_b.detach().cpu().double().numpy() + shift
    for p in np.concatenate([pa, pb]):
        cv2.circle(canvas, (round(p[0]), round(p[1])), 1, (60, 120, 255), -1, cv2.LINE_AA)
    for k, (i, j) in enumerate(matches.detach().cpu().tolist()):
        if inliers is None:
            colour = (255, 220, 0)
        else:
            colour = (0, 220, 0) if inliers[k] else (230, 30, 30)
        p, q = pa[i], pb[j]
        cv2.line(
            canvas, (round(p[0]), round(p[1])), (round(q[0]), round(q[1])), colour, 1, cv2.LINE_AA
        )
    return canvas
