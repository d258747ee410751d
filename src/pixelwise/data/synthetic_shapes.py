"""Synthetic Shapes: random shapes with known corners, generated on the fly (MagicPoint training data).

A map-style ``torch.utils.data.Dataset``: item ``i`` of a split is a pure function of
``(seed, split, i)`` (``numpy.random.SeedSequence([seed, split_id, i])``), so it is the same
in any worker, at any worker count, in any order. Nothing is written to disk.

Per item: one primitive is chosen with the reference mix (:data:`PRIMITIVE_WEIGHTS`), drawn
on a blurred-blob background (:mod:`pixelwise.data.shape_primitives`), optionally
photometrically augmented (:mod:`pixelwise.data.photometric`) and warped by a random
homography (points warped with it, points leaving the valid region dropped), as in the
SuperPoint reference's ``magic-point_shapes.yaml``. Random draws happen in the order
shape, homography, photometric, so switching augmentation on or off never changes the shape,
and switching photometric augmentation never changes the homography.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from pixelwise.data.photometric import photometric_augment
from pixelwise.data.shape_primitives import (
    DRAW_FUNCTIONS,
    PRIMITIVE_WEIGHTS,
    PRIMITIVES,
    ShapeCanvas,
    draw_background,
)

__all__ = [
    "PRIMITIVES",
    "PRIMITIVE_WEIGHTS",
    "SPLITS",
    "HOMOGRAPHY_PARAMS",
    "SyntheticShapes",
    "sample_homography_np",
    "warp_image_and_points",
]

SPLITS: dict[str, int] = {"train": 0, "val": 1, "test": 2}

# Homographic augmentation of the reference's magic-point_shapes.yaml.
HOMOGRAPHY_PARAMS: dict[str, Any] = {
    "translation": True,
    "rotation": True,
    "scaling": True,
    "perspective": True,
    "scaling_amplitude": 0.2,
    "perspective_amplitude_x": 0.2,
    "perspective_amplitude_y": 0.2,
    "patch_ratio": 0.8,
    "max_angle": 1.57,
    "allow_artifacts": True,
    "translation_overflow": 0.05,
}


def _truncated_normal(rng: np.random.Generator, mean: float, std: float, size: int) -> list[float]:
    """``size`` draws of Normal(mean, std), those beyond 2 std redrawn (tf.truncated_normal)."""
    out = []
    while len(out) < size:
        out += [z for z in rng.standard_normal(2 * size).tolist() if abs(z) <= 2.0]
    return [mean + std * z for z in out[:size]]


def sample_homography_np(
    rng: np.random.Generator,
    shape: tuple[int, int],
    perspective: bool = True,
    scaling: bool = True,
    rotation: bool = True,
    translation: bool = True,
    n_scales: int = 5,
    n_angles: int = 25,
    scaling_amplitude: float = 0.1,
    perspective_amplitude_x: float = 0.1,
    perspective_amplitude_y: float = 0.1,
    patch_ratio: float = 0.5,
    max_angle: float = math.pi / 2,
    allow_artifacts: bool = False,
    translation_overflow: float = 0.0,
) -> np.ndarray:
    """A random homography [3, 3] (float64) mapping pixels (x, y) of an image of ``shape`` (H, W) to the warped image.

    Semantics of the SuperPoint reference ``sample_homography`` (defaults are its defaults),
    returned in the project convention: a centred patch of side ``patch_ratio`` (unit-square
    coordinates; ``u`` is pixel ``u * W - 0.5``) is perturbed in perspective (truncated normal,
    std amplitude/2), scaled by one of ``n_scales`` truncated-normal scales, translated and
    rotated by one of ``n_angles`` angles in [-max_angle, max_angle]; without
    ``allow_artifacts`` only candidates keeping the patch inside the image are drawn (scale 1,
    angle 0 as fallbacks), with it any sampled candidate. ``H`` maps the patch onto the
    whole output, so warping with it gives ``B(H p) = A(p)``. Numpy twin of
    ``pixelwise.geometry.homography.sample_homography`` for the data workers.
    """
    height, width = shape
    # Corners TL, BL, BR, TR as (x, y) in unit-square coordinates. Plain floats: with four
    # points numpy's per-call overhead would dominate.
    unit = [(0.0, 0.0), (0.0, 1.0), (1.0, 1.0), (1.0, 0.0)]
    margin = (1 - patch_ratio) / 2
    patch = [(margin + patch_ratio * x, margin + patch_ratio * y) for x, y in unit]

    def inside(corners: list[tuple[float, float]]) -> bool:
        return all(0.0 <= x < 1.0 and 0.0 <= y < 1.0 for x, y in corners)

    def pick(
        candidate: Callable[[int], list[tuple[float, float]]], count: int
    ) -> list[tuple[float, float]]:
        # Candidate 0 is the identity fallback: drawn only when no other one keeps the patch inside.
        if allow_artifacts:
            return candidate(1 + int(rng.integers(count - 1)))
        kept = [c for c in (candidate(i) for i in range(1, count)) if inside(c)]
        return ([patch] + kept)[int(rng.integers(len(kept) + 1))]

    def center_of(corners: list[tuple[float, float]]) -> tuple[float, float]:
        return sum(x for x, _ in corners) / 4, sum(y for _, y in corners) / 4

    if perspective:
        amp_x, amp_y = perspective_amplitude_x, perspective_amplitude_y
        if not allow_artifacts:
            amp_x, amp_y = min(amp_x, margin), min(amp_y, margin)
        z_y, z_left, z_right = _truncated_normal(rng, 0.0, 1.0, 3)
        d_y, d_left, d_right = z_y * amp_y / 2, z_left * amp_x / 2, z_right * amp_x / 2
        shifts = [(d_left, d_y), (d_left, -d_y), (d_right, d_y), (d_right, -d_y)]
        patch = [(x + dx, y + dy) for (x, y), (dx, dy) in zip(patch, shifts, strict=True)]

    if scaling:
        scales = [1.0, *_truncated_normal(rng, 1.0, scaling_amplitude / 2, n_scales)]
        cx, cy = center_of(patch)
        patch = pick(
            lambda i: [(cx + (x - cx) * scales[i], cy + (y - cy) * scales[i]) for x, y in patch],
            n_scales + 1,
        )

    if translation:
        t_min = [min(x for x, _ in patch), min(y for _, y in patch)]
        t_max = [min(1 - x for x, _ in patch), min(1 - y for _, y in patch)]
        if allow_artifacts:
            t_min = [t + translation_overflow for t in t_min]
            t_max = [t + translation_overflow for t in t_max]
        # low + (high - low) * u, not rng.uniform: a patch larger than the image gives high < low.
        u = rng.random(2).tolist()
        tx = -t_min[0] + (t_min[0] + t_max[0]) * u[0]
        ty = -t_min[1] + (t_min[1] + t_max[1]) * u[1]
        patch = [(x + tx, y + ty) for x, y in patch]

    if rotation:
        step = 2 * max_angle / (n_angles - 1) if n_angles > 1 else 0.0
        angles = [0.0] + [-max_angle + i * step for i in range(n_angles)]  # linspace(-max, max, n)
        cx, cy = center_of(patch)

        def rotated(i: int) -> list[tuple[float, float]]:
            c, s = math.cos(angles[i]), math.sin(angles[i])
            # Row vector times [[cos, -sin], [sin, cos]], as the reference multiplies.
            return [
                (cx + (x - cx) * c + (y - cy) * s, cy - (x - cx) * s + (y - cy) * c)
                for x, y in patch
            ]

        patch = pick(rotated, n_angles + 1)

    src = np.array([(x * width - 0.5, y * height - 0.5) for x, y in patch], np.float32)
    dst = np.array([(x * width - 0.5, y * height - 0.5) for x, y in unit], np.float32)
    return cv2.getPerspectiveTransform(src, dst).astype(np.float64)


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
    mask; ``supersample`` the drawing resolution factor.
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
        params = dict(HOMOGRAPHY_PARAMS)
        for key, value in (homography_params or {}).items():
            if key not in HOMOGRAPHY_PARAMS and key not in ("n_scales", "n_angles"):
                raise ValueError(
                    f"homography_params: unknown key {key!r}; expected keys from "
                    f"{sorted([*HOMOGRAPHY_PARAMS, 'n_scales', 'n_angles'])}"
                )
            params[key] = value
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

    def __len__(self) -> int:
        return self.length

    def _rng(self, index: int) -> np.random.Generator:
        if -self.length <= index < 0:
            index += self.length
        if not 0 <= index < self.length:
            raise IndexError(
                f"index {index} out of range for SyntheticShapes of length {self.length}"
            )
        return np.random.default_rng(
            np.random.SeedSequence([self.seed, SPLITS[self.split], int(index)])
        )

    def _choose(self, rng: np.random.Generator) -> str:
        # The first draw of an item's stream picks its primitive (so primitive_of is cheap).
        return self.primitives[int(np.searchsorted(self._cdf, rng.random(), side="right"))]

    def primitive_of(self, index: int) -> str:
        """Name of the primitive drawn for item ``index`` (without rendering it)."""
        return self._choose(self._rng(index))

    def generate(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
        """Item ``index`` as numpy: image float32 [H,W], keypoints float64 [N,2] (x, y), valid bool [H,W], primitive."""
        rng = self._rng(index)
        primitive = self._choose(rng)
        height, width = self.size
        canvas = ShapeCanvas(draw_background(rng, height, width), factor=self.supersample)
        points = DRAW_FUNCTIONS[primitive](canvas, rng)
        image = canvas.render()
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
            f"homographic={self.homographic}, add_noise={self.add_noise})"
        )
