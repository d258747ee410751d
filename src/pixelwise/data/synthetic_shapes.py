"""Synthetic Shapes: random shapes with known corners, generated on the fly (MagicPoint training data).

A map-style ``torch.utils.data.Dataset``: item ``i`` of a split is a pure function of
``(seed, split, i)`` (``numpy.random.SeedSequence([seed, split_id, i])``), so it is the same
in any worker, at any worker count, in any order. Nothing is written to disk.

Per item: one primitive is chosen with the reference mix (:data:`PRIMITIVE_WEIGHTS`), drawn
on a blurred-blob background, optionally photometrically augmented (:mod:`pixelwise.data.photometric`) and warped by a random
homography (points warped with it, points leaving the valid region dropped), as in the
SuperPoint reference's ``magic-point_shapes.yaml``; the homography comes from the project's one
sampler (``pixelwise.geometry.homography.sample_homography_np``, its numpy path), in its
coordinate convention. Random draws happen in the order shape, homography, photometric, so
switching augmentation on or off never changes the shape, and switching photometric
augmentation never changes the homography.

Two renderers draw the shape:

- ``renderer="reference"`` (default): the reference generator's own recipe
  (:mod:`pixelwise.data.reference_shapes`: a 960x1280 canvas with integer vertices, 21x21
  Gaussian blur, bilinear resize), the distribution the paper's and rpautrat's Synthetic
  Shapes numbers are measured on; ~17 ms per 120x160 shape on one core. The shape of item
  ``i`` is shape ``i % num_shapes``, drawn from its own random stream
  ``SeedSequence([seed, split_id, i % num_shapes, 0])``; the augmentation of item ``i`` comes
  from ``SeedSequence([seed, split_id, i, 1])``. So ``num_shapes`` (default: ``length``) fixes
  a set of shapes, as the reference's cached training set does, that every epoch augments
  afresh, and ``cache_dir`` keeps those shapes on disk (:mod:`pixelwise.data.shape_cache`)
  so they are rendered once.
- ``renderer="fast"``: :mod:`pixelwise.data.shape_primitives`, an approximation drawn at the
  target size with supersampling (~5x cheaper; one random stream per item). Its images are
  sharper-edged and its noise milder than the reference's: Harris scores 0.83 on it against
  0.69 on the reference distribution.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from pixelwise.data.photometric import photometric_augment
from pixelwise.data.reference_shapes import render_reference_shape
from pixelwise.data.shape_cache import ShapeCache, cache_key
from pixelwise.data.shape_primitives import (
    DRAW_FUNCTIONS,
    PRIMITIVE_WEIGHTS,
    PRIMITIVES,
    ShapeCanvas,
    draw_background,
)
from pixelwise.geometry.adaptation import ADAPTATION_HOMOGRAPHY
from pixelwise.geometry.homography import merge_homography_params, sample_homography_np

__all__ = [
    "PRIMITIVES",
    "PRIMITIVE_WEIGHTS",
    "SPLITS",
    "HOMOGRAPHY_PARAMS",
    "SyntheticShapes",
    "warp_image_and_points",
]

SPLITS: dict[str, int] = {"train": 0, "val": 1, "test": 2}
RENDERERS = ("reference", "fast")

# Homographic augmentation of the reference's magic-point_shapes.yaml, drawn by the project's one
# sampler (pixelwise.geometry.homography, its numpy path in the workers): the reference's export
# homographies (magic-point_coco_export.yaml) with a smaller patch, 1.57 rad and 5 % overflow.
HOMOGRAPHY_PARAMS: dict[str, Any] = {
    **ADAPTATION_HOMOGRAPHY,
    "patch_ratio": 0.8,
    "max_angle": 1.57,
    "translation_overflow": 0.05,
}


def _disk(radius: int) -> np.ndarray:
    r = np.arange(-radius, radius + 1)
    return ((r[:, None] ** 2 + r[None, :] ** 2) <= radius * radius).astype(np.uint8)


def warp_image_and_points(
    image: np.ndarray, keypoints: np.ndarray, homography: np.ndarray, border_margin: int = 3
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Warp image [H,W] and keypoints [N,2] (x, y) by H (B(H p) = A(p)) -> image [H,W], keypoints [M,2], valid [H,W] bool.

    Pixels of B whose source falls outside A are 0 (artifacts allowed); ``valid`` marks the
    pixels whose source is inside A, eroded by a disk of radius ``border_margin`` (the image
    border itself does not erode). Warped points outside the image or on invalid pixels are
    dropped.
    """
    h, w = image.shape
    hmat = np.asarray(homography, np.float64)
    warped = cv2.warpPerspective(
        image, hmat, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )
    valid = cv2.warpPerspective(
        np.ones((h, w), np.uint8),
        hmat,
        (w, h),
        flags=cv2.INTER_NEAREST,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    if border_margin > 0:
        # cv2.erode pads with the maximum by default: the image border does not erode.
        valid = cv2.erode(valid, _disk(border_margin))
    valid = valid.astype(bool)
    pts = np.asarray(keypoints, np.float64).reshape(-1, 2)
    if len(pts):
        proj = pts @ hmat[:, :2].T + hmat[:, 2]
        pts = proj[:, :2] / proj[:, 2:3]
        inside = (
            (proj[:, 2] > 0)
            & (pts[:, 0] >= 0)
            & (pts[:, 0] <= w - 1)
            & (pts[:, 1] >= 0)
            & (pts[:, 1] <= h - 1)
        )
        pts = pts[inside]
        rows = np.rint(pts[:, 1]).astype(np.int64)
        cols = np.rint(pts[:, 0]).astype(np.int64)
        pts = pts[valid[rows, cols]]
    return warped, pts, valid


def _parse_primitives(primitives: str | Sequence[str]) -> tuple[str, ...]:
    if isinstance(primitives, str):
        names: Sequence[str] = PRIMITIVES if primitives == "all" else [primitives]
    else:
        names = list(primitives)
    if len(names) == 0:
        raise ValueError(
            f"primitives: expected 'all' or a non-empty list of names from {list(PRIMITIVES)}, got []"
        )
    unknown = [n for n in names if n not in PRIMITIVES]
    if unknown:
        raise ValueError(
            f"primitives: unknown primitive name(s) {unknown}; expected 'all' or names from {list(PRIMITIVES)}"
        )
    return tuple(dict.fromkeys(names))  # drop duplicates, keep order


class SyntheticShapes(Dataset):
    """On-the-fly Synthetic Shapes dataset of ``length`` items of ``size`` (H, W), deterministic per (seed, split, index).

    Item: ``{"image": float32 [1,H,W] in [0,1], "keypoints": float32 [N,2] (x, y),
    "valid_mask": bool [H,W], "primitive": str}``. ``primitives`` is ``"all"`` (the reference
    mix, :data:`PRIMITIVE_WEIGHTS`) or a list of names from :data:`PRIMITIVES` (mixed with
    the same relative weights). ``photometric`` / ``homographic`` switch the reference
    augmentations; ``add_noise`` overrides the photometric noise operations (``True``: always
    applied, ``False``: never, ``None``: with ``photometric``). ``homography_params`` override
    :data:`HOMOGRAPHY_PARAMS`; ``valid_border_margin`` is the erosion radius of the valid
    mask. ``renderer`` is ``"reference"`` or ``"fast"`` (module docstring);
    ``num_shapes`` (reference renderer) the number of distinct shapes the items cycle over
    (default ``length``); ``cache_dir`` (reference renderer) a directory to keep the rendered
    shapes in; ``supersample`` the drawing resolution factor of the fast renderer.
    """

    def __init__(
        self,
        size: tuple[int, int] = (120, 160),
        length: int = 10_000,
        seed: int = 0,
        split: str = "train",
        primitives: str | Sequence[str] = "all",
        photometric: bool = True,
        homographic: bool = True,
        add_noise: bool | None = None,
        homography_params: dict[str, Any] | None = None,
        valid_border_margin: int = 3,
        supersample: int = 4,
        renderer: str = "reference",
        num_shapes: int | None = None,
        cache_dir: str | None = None,
    ) -> None:
        try:
            height, width = (int(s) for s in size)
            ok = all(int(s) == s for s in size)
        except (TypeError, ValueError):
            ok = False
        if not ok or height < 32 or width < 32:
            raise ValueError(f"size: expected (height, width) integers, each >= 32, got {size!r}")
        if not isinstance(length, int) or isinstance(length, bool) or length < 0:
            raise ValueError(f"length: expected a non-negative int, got {length!r}")
        if split not in SPLITS:
            raise ValueError(f"split: expected one of {list(SPLITS)}, got {split!r}")
        if add_noise not in (None, True, False):
            raise ValueError(f"add_noise: expected None, True or False, got {add_noise!r}")
        if not isinstance(supersample, int) or supersample < 1:
            raise ValueError(f"supersample: expected a positive int, got {supersample!r}")
        if not isinstance(valid_border_margin, int) or valid_border_margin < 0:
            raise ValueError(
                f"valid_border_margin: expected a non-negative int, got {valid_border_margin!r}"
            )
        if renderer not in RENDERERS:
            raise ValueError(f"renderer: expected one of {list(RENDERERS)}, got {renderer!r}")
        if num_shapes is not None and (
            not isinstance(num_shapes, int) or isinstance(num_shapes, bool) or num_shapes < 1
        ):
            raise ValueError(f"num_shapes: expected a positive int or null, got {num_shapes!r}")
        if renderer == "fast" and (num_shapes is not None or cache_dir is not None):
            raise ValueError(
                "num_shapes and cache_dir apply to renderer='reference' only; "
                f"got num_shapes={num_shapes!r}, cache_dir={cache_dir!r} with renderer='fast'"
            )
        params = merge_homography_params(HOMOGRAPHY_PARAMS, homography_params, "homography_params")
        self.size = (height, width)
        self.length = length
        self.seed = int(seed)
        self.split = split
        self.primitives = _parse_primitives(primitives)
        weights = np.array([PRIMITIVE_WEIGHTS[p] for p in self.primitives], np.float64)
        self._cdf = np.cumsum(weights / weights.sum())
        self._cdf[-1] = 1.0
        self.photometric = bool(photometric)
        self.homographic = bool(homographic)
        self.add_noise = add_noise
        self.homography_params = params
        self.valid_border_margin = valid_border_margin
        self.supersample = supersample
        self.renderer = renderer
        self.num_shapes = num_shapes if num_shapes is not None else max(length, 1)
        self.cache_dir = cache_dir
        self._cache: ShapeCache | None = None
        if cache_dir is not None and length > 0:
            key = cache_key(
                {
                    "seed": self.seed,
                    "split": split,
                    "size": list(self.size),
                    "primitives": list(self.primitives),
                    "num_shapes": self.num_shapes,
                }
            )
            self._cache = ShapeCache(
                f"{cache_dir}/synthetic_shapes_{split}_{key}",
                self.num_shapes,
                self.size,
                self._render_indexed,
            )

    def __len__(self) -> int:
        return self.length

    def _index(self, index: int) -> int:
        if -self.length <= index < 0:
            index += self.length
        if not 0 <= index < self.length:
            raise IndexError(
                f"index {index} out of range for SyntheticShapes of length {self.length}"
            )
        return int(index)

    def _rng(self, *key: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence([self.seed, SPLITS[self.split], *key]))

    def _render_indexed(self, shape_index: int) -> tuple[np.ndarray, np.ndarray, int]:
        """Reference shape ``shape_index``: (image uint8 [H,W], points [K,2], primitive index)."""
        rng = self._rng(shape_index, 0)
        primitive = self._choose(rng)
        image, points = render_reference_shape(rng, primitive, self.size)
        return image, points, self.primitives.index(primitive)

    def _shape(self, index: int) -> tuple[np.ndarray, np.ndarray, str]:
        """The un-augmented shape of item ``index``: (image float32 [H,W] in [0,1], points [K,2], primitive)."""
        shape_index = index % self.num_shapes
        if self._cache is not None:
            image, points, k = self._cache.item(shape_index)
        else:
            image, points, k = self._render_indexed(shape_index)
        return image.astype(np.float32) * np.float32(1.0 / 255.0), points, self.primitives[k]

    def _choose(self, rng: np.random.Generator) -> str:
        # The first draw of an item's stream picks its primitive (so primitive_of is cheap).
        return self.primitives[int(np.searchsorted(self._cdf, rng.random(), side="right"))]

    def primitive_of(self, index: int) -> str:
        """Name of the primitive drawn for item ``index`` (without rendering it)."""
        index = self._index(index)
        if self.renderer == "fast":
            return self._choose(self._rng(index))
        if self._cache is not None:
            return self.primitives[int(self._cache.primitives[index % self.num_shapes])]
        return self._choose(self._rng(index % self.num_shapes, 0))

    def generate(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
        """Item ``index`` as numpy: image float32 [H,W], keypoints float64 [N,2] (x, y), valid bool [H,W], primitive."""
        index = self._index(index)
        if self.renderer == "fast":
            rng = self._rng(index)
            primitive = self._choose(rng)
            height, width = self.size
            canvas = ShapeCanvas(draw_background(rng, height, width), factor=self.supersample)
            points = DRAW_FUNCTIONS[primitive](canvas, rng)
            image = canvas.render()
        else:
            image, points, primitive = self._shape(index)
            rng = self._rng(index, 1)
        homography = (
            sample_homography_np(rng, self.size, **self.homography_params)
            if self.homographic
            else None
        )
        if self.photometric or self.add_noise:
            image = photometric_augment(
                image, rng, photometric=self.photometric, add_noise=self.add_noise
            )
        if homography is not None:
            image, points, valid = warp_image_and_points(
                image, points, homography, self.valid_border_margin
            )
        else:
            valid = np.ones(self.size, bool)
        return image, points, valid, primitive

    def __getitem__(self, index: int) -> dict[str, Any]:
        image, points, valid, primitive = self.generate(int(index))
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image, np.float32))[None],
            "keypoints": torch.from_numpy(np.asarray(points, np.float32).reshape(-1, 2)),
            "valid_mask": torch.from_numpy(valid),
            "primitive": primitive,
        }

    def __repr__(self) -> str:
        return (
            f"SyntheticShapes(size={self.size}, length={self.length}, seed={self.seed}, split={self.split!r}, "
            f"primitives={list(self.primitives)}, photometric={self.photometric}, "
            f"homographic={self.homographic}, add_noise={self.add_noise}, renderer={self.renderer!r}, "
            f"num_shapes={self.num_shapes})"
        )
