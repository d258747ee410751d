"""Classical corner detectors (Harris, Shi-Tomasi, FAST) as dense heatmaps, scored by the same code as nets.

``ClassicalDetector(method)(images [B,1,H,W]) -> heat [B,1,H,W]`` in [0, 1]; feed it to
``pixelwise.geometry.extract_keypoints`` and ``pixelwise.metrics.KeypointAP`` exactly like a
MagicPoint heatmap. The responses follow rpautrat's ``classical_detectors.py`` (the baselines of
the SuperPoint paper, Table 2), which quantises the [0, 1] image to ``uint8(255 x)`` (truncating)
first, as here, with the map to [0, 1] chosen to keep the ranking of scores (the only thing
precision-recall and AP depend on) and the reference's cut-off of weak responses:

- ``harris``: ``cv2.cornerHarris(image_u8, blockSize=4, ksize=3, k=0.04)``;
  ``r / (r + harris_scale)`` for ``r > 0``, else 0. Monotone in the raw response. rpautrat keeps
  responses ``r > 1e-4`` (its evaluation's ``remove_zero``); the default ``harris_scale = 0.1``
  puts that cut at the project's ``detection_threshold`` 0.001 (``r / (r + 0.1) = 0.001`` at
  ``r = 1.0e-4``). The cut matters: weak low-contrast corners are what separate the reference's
  Harris mAP 0.69 from the 0.82 an uncut Harris reaches on the same images.
- ``shi``: ``cv2.cornerMinEigenVal(image, blockSize=3, ksize=3)`` divided by its maximum over the
  image: the largest ``qualityLevel`` of ``goodFeaturesToTrack`` at which the pixel passes. rpautrat
  sweeps 600 quality levels of ``goodFeaturesToTrack(maxCorners=600, minDistance=5)``; here the
  level is continuous, there is no corner cap, and NMS replaces ``minDistance``.
- ``fast``: with ``fast_nms=True`` (default, the reference) OpenCV's
  ``FastFeatureDetector(threshold=10)`` with its own 3x3 non-maximum suppression, each corner's
  ``response`` / 255 at its pixel. That suppression is strict, so of two tied neighbours (common
  on synthetic images) neither survives: this is part of why FAST scores only 0.71 / 0.08 in the
  paper. ``fast_nms=False`` keeps every pixel's FAST-9/16 score (:func:`fast_score_map`, equal to
  OpenCV's ``response``, checked in the tests) where ``>= fast_threshold``, leaving suppression to
  the extraction's NMS. The 3-pixel border is 0.
"""

from __future__ import annotations

from functools import partial

import cv2
import numpy as np
import torch
from torch import nn

from pixelwise.geometry.keypoints import check_gray_batch

__all__ = ["ClassicalDetector", "fast_score_map", "METHODS"]

METHODS = ("harris", "shi", "fast")
_ALIASES = {"shi-tomasi": "shi", "shi_tomasi": "shi", "gftt": "shi"}

# Bresenham circle of radius 3, in circular order, as (dx, dy) (OpenCV's FAST-9/16 pattern).
_FAST_CIRCLE = (
    (0, 3), (1, 3), (2, 2), (3, 1), (3, 0), (3, -1), (2, -2), (1, -3),
    (0, -3), (-1, -3), (-2, -2), (-3, -1), (-3, 0), (-3, 1), (-2, 2), (-1, 3),
)  # fmt: skip
_FAST_ARC = 9


def fast_score_map(image: np.ndarray) -> np.ndarray:
    """FAST-9/16 corner score of a uint8 image [H,W] -> int32 [H,W] (-1 where no arc is brighter/darker; border -1).

    Score = largest ``t`` such that some arc of 9 contiguous circle pixels is entirely ``> p + t``
    or entirely ``< p - t`` (the pixel is a FAST corner at threshold ``T`` iff score >= T).
    """
    if image.dtype != np.uint8 or image.ndim != 2:
        raise ValueError(
            f"fast_score_map: expected a uint8 image [H, W], got {image.dtype} {image.shape}"
        )
    h, w = image.shape
    score = np.full((h, w), -1, dtype=np.int32)
    if h < 7 or w < 7:
        return score
    img = image.astype(np.int32)
    centre = img[3 : h - 3, 3 : w - 3]
    diffs = np.stack(
        [img[3 + dy : h - 3 + dy, 3 + dx : w - 3 + dx] - centre for dx, dy in _FAST_CIRCLE]
    )
    ring = np.concatenate([diffs, diffs[: _FAST_ARC - 1]])  # wrap around for arcs crossing index 0
    best = np.full(centre.shape, -(10**6), dtype=np.int32)
    for start in range(len(_FAST_CIRCLE)):
        arc = ring[start : start + _FAST_ARC]
        best = np.maximum(best, arc.min(0))  # all brighter by more than t  <=>  min(diff) > t
        best = np.maximum(best, (-arc).min(0))  # all darker
    # Strict inequalities: the largest integer t with min > t is min - 1.
    score[3 : h - 3, 3 : w - 3] = best - 1
    return score


def _harris_heat(
    image_u8: np.ndarray, block_size: int, ksize: int, k: float, scale: float
) -> np.ndarray:
    """uint8 [H,W] -> Harris response squashed to [0, 1): ``r / (r + scale)`` for r > 0, else 0."""
    r = cv2.cornerHarris(image_u8, block_size, ksize, k).astype(np.float64)
    r = np.maximum(r, 0.0)
    return r / (r + scale)


def _shi_heat(image_u8: np.ndarray, block_size: int, ksize: int) -> np.ndarray:
    """uint8 [H,W] -> minimum eigenvalue divided by its maximum over the image (0 if flat)."""
    lam = cv2.cornerMinEigenVal(image_u8, block_size, ksize=ksize).astype(np.float64)
    lam = np.maximum(lam, 0.0)
    peak = lam.max()
    return lam / peak if peak > 0 else lam


def _fast_heat(image_u8: np.ndarray, threshold: int, nms: bool) -> np.ndarray:
    """uint8 [H,W] -> FAST response / 255: OpenCV's suppressed corners, or every score >= threshold."""
    if nms:
        heat = np.zeros(image_u8.shape, np.float64)
        detector = cv2.FastFeatureDetector_create(threshold, True)
        for kp in detector.detect(image_u8):
            x, y = int(kp.pt[0]), int(kp.pt[1])
            heat[y, x] = max(heat[y, x], kp.response / 255.0)
        return heat
    score = fast_score_map(image_u8)
    return np.where(score >= threshold, score / 255.0, 0.0)


class ClassicalDetector(nn.Module):
    """images [B,1,H,W] float in [0,1] -> heatmap [B,1,H,W] in [0,1] from an OpenCV corner response.

    ``method``: ``"harris"``, ``"shi"`` (aliases ``"shi-tomasi"``, ``"gftt"``) or ``"fast"``; see
    the module docstring for each response and its map to [0, 1]. No parameters, no gradient;
    runs on CPU with OpenCV and returns a tensor on the input's device and dtype.
    """

    def __init__(
        self,
        method: str = "harris",
        harris_block_size: int = 4,
        harris_ksize: int = 3,
        harris_k: float = 0.04,
        harris_scale: float = 0.1,
        shi_block_size: int = 3,
        shi_ksize: int = 3,
        fast_threshold: int = 10,
        fast_nms: bool = True,
    ) -> None:
        super().__init__()
        name = _ALIASES.get(method.lower(), method.lower()) if isinstance(method, str) else method
        if name not in METHODS:
            raise ValueError(
                f"ClassicalDetector: unknown method {method!r}; expected one of {METHODS + tuple(_ALIASES)}"
            )
        if harris_scale <= 0:
            raise ValueError(f"ClassicalDetector: harris_scale must be > 0, got {harris_scale}")
        self.method = name
        # uint8 [H,W] -> heat [H,W]: the method's response with its own options bound.
        if name == "harris":
            self.response = partial(
                _harris_heat,
                block_size=harris_block_size,
                ksize=harris_ksize,
                k=harris_k,
                scale=harris_scale,
            )
        elif name == "shi":
            self.response = partial(_shi_heat, block_size=shi_block_size, ksize=shi_ksize)
        else:
            self.response = partial(_fast_heat, threshold=fast_threshold, nms=bool(fast_nms))

    def extra_repr(self) -> str:
        return f"method={self.method!r}"

    def _one(self, image: np.ndarray) -> np.ndarray:
        # rpautrat's np.uint8(im * 255): truncation, not rounding.
        return self.response((np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8))

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images [B,1,H,W] float in [0,1] -> heat [B,1,H,W] in [0,1]."""
        check_gray_batch(images, "ClassicalDetector", "gray images")
        arr = images.detach().to("cpu", torch.float32).numpy()
        heat = np.stack(
            [self._one(np.ascontiguousarray(arr[b, 0]))[None] for b in range(arr.shape[0])]
        )
        return torch.from_numpy(heat).to(device=images.device, dtype=images.dtype)
