"""Synthetic Shapes primitives: random shapes drawn with their ground-truth interest points.

The shapes, their parameter ranges and the primitive mix follow the SuperPoint reference
generator (rpautrat/SuperPoint, ``superpoint/datasets/synthetic_dataset.py`` and the
``magic-point_shapes.yaml`` config). The reference draws every image at 960x1280 with
integer vertices, blurs it (Gaussian, 21x21) and downsizes it to 120x160; here each
primitive samples continuous geometry directly in target pixels (all sizes scaled by
``target / 960x1280``) and draws it on a :class:`ShapeCanvas`, which renders shapes without
anti-aliasing at ``factor``x resolution and area-averages them down (exact box-filter
coverage), then applies a light 3x3 Gaussian so the edge profile matches the reference's.
Smooth content (the blurred-blob background, polygon textures) is generated at the target
resolution directly, where it costs 64x less.

Coordinates are ``(x, y)`` = (column, row) with pixel centres at integers; every primitive
returns its keypoints as float64 ``[N, 2]``, already restricted to the image
(``0 <= x <= W - 1``, ``0 <= y <= H - 1``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

__all__ = [
    "PRIMITIVES",
    "PRIMITIVE_WEIGHTS",
    "BackgroundParams",
    "CheckerboardParams",
    "CubeParams",
    "PolygonsParams",
    "ShapeCanvas",
    "StripesParams",
    "draw_background",
    "draw_lines",
    "draw_polygon",
    "draw_multiple_polygons",
    "draw_ellipses",
    "draw_star",
    "draw_checkerboard",
    "draw_stripes",
    "draw_cube",
    "gaussian_noise",
    "keep_points_inside",
    "seeded_cv2_rng",
]

# Size of the reference generation canvas; absolute pixel sizes of the reference are
# rescaled by ``sqrt(H * W / (960 * 1280))`` (1/8 at 120x160).
_REFERENCE_SIZE = (960, 1280)
_SHIFT = 4  # fractional bits of the fixed-point coordinates handed to cv2 drawing calls
_ONE = 1 << _SHIFT
# Final blur: the reference's image is Gaussian-blurred (sigma 3.5 px at 960x1280, i.e. 0.44
# target px) and point-sampled; our area average already acts like a 1-px box (variance 1/12),
# and this 3x3 kernel adds the missing variance 0.44^2 - 1/12 ~ 0.11 px^2.
_FINAL_BLUR_SIGMA = 0.42
# Standard deviation (grey levels) of the reference's ``gaussian_noise`` images once blurred
# and downsized: uniform noise (std 73.6) through a sigma-3.5 Gaussian leaves ~5.9; we draw
# white noise whose std after our final 3x3 blur (std factor ~0.8) is the same.
_NOISE_STD = 7.4


# -- generation parameters -------------------------------------------------------------
# The ``magic-point_shapes`` generation parameters of the primitives that have several: both
# renderers (this module and :mod:`pixelwise.data.reference_shapes`) take these objects, so
# the reference's values are written once. Sizes are in reference (960x1280) pixels.
@dataclass(frozen=True)
class BackgroundParams:
    """Blurred-blob background: blob count, radii (x max(H, W)) and the box-blur kernel range."""

    nb_blobs: int = 100
    min_rad_ratio: float = 0.02
    max_rad_ratio: float = 0.031
    min_kernel_size: int = 150
    max_kernel_size: int = 500


@dataclass(frozen=True)
class PolygonsParams:
    """``draw_multiple_polygons``: corners per polygon (< max_sides), candidates, texture blur range."""

    max_sides: int = 8
    nb_polygons: int = 30
    kernel_boundaries: tuple[int, int] = (50, 100)


@dataclass(frozen=True)
class CheckerboardParams:
    """``draw_checkerboard``: rows and columns (< max), board distortion ``(p0, p1)``."""

    max_rows: int = 7
    max_cols: int = 7
    transform_params: tuple[float, float] = (0.05, 0.15)


@dataclass(frozen=True)
class StripesParams:
    """``draw_stripes``: stripes (< max_nb_cols), narrowest stripe (x min(H, W)), board distortion."""

    max_nb_cols: int = 13
    min_width_ratio: float = 0.04
    transform_params: tuple[float, float] = (0.1, 0.1)


@dataclass(frozen=True)
class CubeParams:
    """``draw_cube``: smallest side (x min(H, W)), smallest rotation, scale and translation ranges."""

    min_size_ratio: float = 0.2
    min_angle_rot: float = math.pi / 10
    scale_interval: tuple[float, float] = (0.4, 0.6)
    trans_interval: tuple[float, float] = (0.5, 0.2)


class ShapeCanvas:
    """Supersampled uint8 drawing surface of target size (H, W) over a given background.

    Drawing calls are recorded; :meth:`render` replays them without anti-aliasing at
    ``factor``x resolution on two layers, colour and coverage, over the bounding box of what
    was drawn only, area-averages both down and composites them over the background
    (``out = bg * (1 - coverage) + colour``): each output pixel is the coverage-weighted mean
    of the shapes over it (painter's order), and pixels no shape touches keep the background.
    Textured polygons (:meth:`paste_texture`) are composited after the layers, in order.
    Geometry is given in target pixels (x, y), pixel centres at integers.
    """

    def __init__(self, background: np.ndarray, factor: int = 4) -> None:
        if background.dtype != np.uint8 or background.ndim != 2:
            raise ValueError(
                f"background must be a uint8 [H, W] array, got {background.dtype} {background.shape}"
            )
        if int(factor) < 1:
            raise ValueError(f"factor must be a positive int, got {factor!r}")
        self.background = background
        self.height, self.width = background.shape
        self.factor = int(factor)
        self.background_color = int(cv2.mean(background)[0])
        self.scale = math.sqrt(self.height * self.width / (_REFERENCE_SIZE[0] * _REFERENCE_SIZE[1]))
        self.min_dim = min(self.height, self.width)
        self.max_dim = max(self.height, self.width)
        # Recorded drawing: (kind, fixed-point fine-grid int32 data, colour, extra).
        self._ops: list[tuple[str, np.ndarray, int, Any]] = []
        self._textures: list[tuple[np.ndarray, np.ndarray, int, int]] = []
        self._box = [
            math.inf,
            math.inf,
            -math.inf,
            -math.inf,
        ]  # x_min, y_min, x_max, y_max (target px)
        self._final: np.ndarray | None = None

    def _touch(self, x_min: float, y_min: float, x_max: float, y_max: float) -> None:
        box = self._box
        if x_min < box[0]:
            box[0] = x_min
        if y_min < box[1]:
            box[1] = y_min
        if x_max > box[2]:
            box[2] = x_max
        if y_max > box[3]:
            box[3] = y_max

    def _fine(self, points: np.ndarray) -> np.ndarray:
        """Target (x, y) [..., 2] -> float coordinates on the full fine grid (pixel centres aligned)."""
        f = self.factor
        return np.asarray(points, np.float64) * f + (f - 1) / 2

    def _fixed(self, points: np.ndarray) -> np.ndarray:
        """Target (x, y) [..., 2] -> fixed-point int32 coordinates on the full fine grid."""
        return np.round(self._fine(points) * _ONE).astype(np.int32)

    def _fixed_polygon(self, points: np.ndarray) -> np.ndarray:
        """Polygons [..., V, 2] (target px) -> fixed-point fine-grid vertices, shrunk for OpenCV's fill rule.

        OpenCV's non-anti-aliased fill covers every fine pixel whose centre is within half a
        pixel of the polygon along the scanline (vertices are rounded, both ends included):
        the polygon grows by ~0.5 * max(|n_x|, |n_y|) fine px along each edge normal n
        (measured). Moving each edge inwards by that much makes the filled area the polygon's.
        """
        fine = self._fine(points)
        x, y = fine[..., 0], fine[..., 1]
        xn = np.concatenate([x[..., 1:], x[..., :1]], axis=-1)  # edge i runs from vertex i to i + 1
        yn = np.concatenate([y[..., 1:], y[..., :1]], axis=-1)
        dx, dy = xn - x, yn - y
        orient = np.where(np.sum(x * yn - xn * y, axis=-1, keepdims=True) >= 0, 1.0, -1.0)
        scale = orient / (np.sqrt(dx * dx + dy * dy) + 1e-12)
        nx, ny = -dy * scale, dx * scale  # inward unit normals
        delta = 0.5 * np.maximum(np.abs(nx), np.abs(ny))  # inward shift of each edge (fine px)
        # Vertex i sits between edge i - 1 (n1, d1) and edge i (n2, d2); it moves to the
        # intersection of both shifted edges: [n1; n2] v = [d1; d2].
        n1x = np.concatenate([nx[..., -1:], nx[..., :-1]], axis=-1)
        n1y = np.concatenate([ny[..., -1:], ny[..., :-1]], axis=-1)
        d1 = np.concatenate([delta[..., -1:], delta[..., :-1]], axis=-1)
        det = n1x * ny - n1y * nx
        safe = np.abs(det) > 1e-3  # not (nearly) parallel edges
        inv = np.where(safe, 1.0 / np.where(safe, det, 1.0), 0.0)
        half = 0.5 * (d1 + delta) * ~safe
        vx = (d1 * ny - delta * n1y) * inv + half * (n1x + nx)
        vy = (n1x * delta - nx * d1) * inv + half * (n1y + ny)
        # Very sharp spikes would move far: cap the shift at 2 fine px.
        cap = np.minimum(1.0, 2.0 / (np.sqrt(vx * vx + vy * vy) + 1e-12))
        fine[..., 0] += vx * cap
        fine[..., 1] += vy * cap
        return np.round(fine * _ONE).astype(np.int32)

    def fill_polygon(self, points: np.ndarray, color: int) -> None:
        """Fill the polygon with vertices ``points`` [N, 2] (x, y) (any simple polygon)."""
        points = np.asarray(points, np.float64)
        self._ops.append(("poly", self._fixed_polygon(points).reshape(-1, 1, 2), int(color), None))
        lo, hi = points.min(axis=0), points.max(axis=0)
        self._touch(lo[0], lo[1], hi[0], hi[1])

    def fill_convex(self, points: np.ndarray, colors: int | np.ndarray) -> None:
        """Fill convex polygons: ``points`` [V, 2] or [Q, V, 2] (x, y), one colour or [Q] colours."""
        points = np.asarray(points, np.float64)
        if points.ndim == 2:
            points = points[None]
        fixed = self._fixed_polygon(points)
        colors = np.broadcast_to(np.asarray(colors, np.int64), (len(points),)).tolist()
        self._ops.extend(
            ("convex", fixed[i].reshape(-1, 1, 2), colors[i], None) for i in range(len(points))
        )
        lo, hi = points.min(axis=(0, 1)), points.max(axis=(0, 1))
        self._touch(lo[0], lo[1], hi[0], hi[1])

    def segments(
        self,
        starts: np.ndarray,
        ends: np.ndarray,
        width: float | np.ndarray,
        colors: int | np.ndarray,
    ) -> None:
        """Draw segments starts[i]-ends[i] ([S, 2] each), ``width`` target px wide (scalar or [S]), round caps."""
        f = self.factor
        p = np.asarray(starts, np.float64).reshape(-1, 2)
        q = np.asarray(ends, np.float64).reshape(-1, 2)
        half = np.broadcast_to(np.asarray(width, np.float64), (len(p),)) / 2.0
        d = q - p
        length = np.hypot(d[:, 0], d[:, 1])
        normal = np.stack([-d[:, 1], d[:, 0]], axis=1) * (half / np.maximum(length, 1e-9))[:, None]
        body = self._fixed_polygon(
            np.stack([p + normal, q + normal, q - normal, p - normal], axis=1)
        )
        fixed = np.concatenate([body, self._fixed(np.stack([p, q], axis=1))], axis=1)  # [S, 6, 2]
        # Round caps: OpenCV's disc also covers centres up to ~half a fine pixel beyond the radius.
        radius = np.round(np.maximum(half * f - 0.5, 0.0) * _ONE).astype(np.int64).tolist()
        colors = np.broadcast_to(np.asarray(colors, np.int64), (len(p),)).tolist()
        degenerate = (length <= 1e-9).tolist()
        self._ops.extend(
            ("segment", fixed[i][4:] if degenerate[i] else fixed[i], colors[i], radius[i])
            for i in range(len(p))
        )
        pad = half.max(initial=0.0) + 1.0 / f
        lo, hi = np.minimum(p, q).min(axis=0) - pad, np.maximum(p, q).max(axis=0) + pad
        self._touch(lo[0], lo[1], hi[0], hi[1])

    def segment(self, p: np.ndarray, q: np.ndarray, width: float, color: int) -> None:
        """Draw one segment p-q (see :meth:`segments`)."""
        self.segments(np.asarray(p)[None], np.asarray(q)[None], width, color)

    def ellipse(
        self, center: np.ndarray, axes: tuple[float, float], angle_deg: float, color: int
    ) -> None:
        """Fill the ellipse of semi-axes ``axes`` (target px) rotated by ``angle_deg``."""
        f = self.factor
        ax = (
            int(round(max(axes[0] * f - 0.5, 0.0) * _ONE)),
            int(round(max(axes[1] * f - 0.5, 0.0) * _ONE)),
        )
        self._ops.append(("ellipse", self._fixed(center), int(color), (ax, float(angle_deg))))
        r = max(axes)
        self._touch(center[0] - r, center[1] - r, center[0] + r, center[1] + r)

    def paste_texture(self, points: np.ndarray, texture: np.ndarray, tx0: int, ty0: int) -> None:
        """Fill polygon ``points`` [N, 2] with ``texture`` (uint8 [th, tw], its top-left pixel at (tx0, ty0))."""
        self._textures.append((np.asarray(points, np.float64), texture, int(tx0), int(ty0)))

    def set_image(self, image: np.ndarray) -> None:
        """Replace the whole canvas by a target-resolution uint8 image [H, W] (drops earlier drawing)."""
        self._ops.clear()
        self._textures.clear()
        self._box = [math.inf, math.inf, -math.inf, -math.inf]
        self._final = image

    def _downsample(self, layer: np.ndarray, height: int, width: int) -> np.ndarray:
        f = self.factor
        # OpenCV's area resize has a fast path for factor 2 only; 4x = 2x twice, exactly.
        while f % 2 == 0:
            f //= 2
            layer = cv2.resize(layer, (width * f, height * f), interpolation=cv2.INTER_AREA)
        if f > 1:
            layer = cv2.resize(layer, (width, height), interpolation=cv2.INTER_AREA)
        return layer

    def _replay(self, col: np.ndarray, cov: np.ndarray, x0: int, y0: int) -> None:
        f = self.factor
        offset = np.array([x0 * f * _ONE, y0 * f * _ONE], np.int32)
        for kind, fixed, color, extra in self._ops:
            local = fixed - offset
            if kind == "convex":
                cv2.fillConvexPoly(col, local, color, cv2.LINE_8, _SHIFT)
                cv2.fillConvexPoly(cov, local, 255, cv2.LINE_8, _SHIFT)
            elif kind == "poly":
                cv2.fillPoly(col, [local], color, cv2.LINE_8, _SHIFT)
                cv2.fillPoly(cov, [local], 255, cv2.LINE_8, _SHIFT)
            elif kind == "segment":
                if len(local) == 6:
                    body = local[:4].reshape(-1, 1, 2)
                    cv2.fillConvexPoly(col, body, color, cv2.LINE_8, _SHIFT)
                    cv2.fillConvexPoly(cov, body, 255, cv2.LINE_8, _SHIFT)
                for cx, cy in local[-2:].tolist():
                    cv2.circle(col, (cx, cy), extra, color, -1, cv2.LINE_8, _SHIFT)
                    cv2.circle(cov, (cx, cy), extra, 255, -1, cv2.LINE_8, _SHIFT)
            else:  # ellipse
                c = (int(local[0]), int(local[1]))
                axes, angle = extra
                cv2.ellipse(col, c, axes, angle, 0, 360, color, -1, cv2.LINE_8, _SHIFT)
                cv2.ellipse(cov, c, axes, angle, 0, 360, 255, -1, cv2.LINE_8, _SHIFT)

    def _region(
        self, x_min: float, y_min: float, x_max: float, y_max: float
    ) -> tuple[int, int, int, int]:
        """Target-pixel box [x0, x1) x [y0, y1) covering the given extent with a pixel of margin."""
        x0 = max(int(math.floor(x_min)) - 1, 0)
        y0 = max(int(math.floor(y_min)) - 1, 0)
        x1 = min(int(math.ceil(x_max)) + 2, self.width)
        y1 = min(int(math.ceil(y_max)) + 2, self.height)
        return x0, y0, x1, y1

    def render(self) -> np.ndarray:
        """The finished target-size image, float32 [H, W] in [0, 1]."""
        base = self._final if self._final is not None else self.background
        out = base.astype(np.float32)
        f = self.factor
        if self._ops:
            x0, y0, x1, y1 = self._region(*self._box)
            if x1 > x0 and y1 > y0:
                col = np.zeros(((y1 - y0) * f, (x1 - x0) * f), np.uint8)
                cov = np.zeros_like(col)
                self._replay(col, cov, x0, y0)
                col_s = self._downsample(col, y1 - y0, x1 - x0).astype(np.float32)
                cov_s = self._downsample(cov, y1 - y0, x1 - x0).astype(np.float32)
                region = out[y0:y1, x0:x1]
                region *= 1.0 - cov_s * np.float32(1.0 / 255.0)
                region += col_s
        for points, texture, tx0, ty0 in self._textures:
            # Nearest-upsampled texture x fine coverage, area-averaged = texture x coverage.
            lo, hi = points.min(axis=0), points.max(axis=0)
            x0, y0, x1, y1 = self._region(lo[0], lo[1], hi[0], hi[1])
            mask = np.zeros(((y1 - y0) * f, (x1 - x0) * f), np.uint8)
            poly = self._fixed(points - (x0, y0)).reshape(-1, 1, 2)
            cv2.fillPoly(mask, [poly], 255, cv2.LINE_8, _SHIFT)
            alpha = self._downsample(mask, y1 - y0, x1 - x0).astype(np.float32) * np.float32(
                1.0 / 255.0
            )
            tex = texture[y0 - ty0 : y1 - ty0, x0 - tx0 : x1 - tx0].astype(np.float32)
            region = out[y0:y1, x0:x1]
            region += alpha * (tex - region)
        out *= np.float32(1.0 / 255.0)
        return cv2.GaussianBlur(out, (3, 3), _FINAL_BLUR_SIGMA)


def seeded_cv2_rng(rng: np.random.Generator) -> None:
    """Seed OpenCV's (thread-local) RNG from ``rng``, so the next cv2.randn / cv2.randu are reproducible.

    cv2.randn is ~4x faster than numpy's float32 normal draws.
    """
    cv2.setRNGSeed(int(rng.integers(1, 2**31 - 1)))


# -- colours ---------------------------------------------------------------------------
def _random_color(rng: np.random.Generator, background_color: int) -> int:
    """A grey level at least 30 away from ``background_color`` (shifted by 128 otherwise)."""
    color = int(rng.integers(256))
    if abs(color - background_color) < 30:
        color = (color + 128) % 256
    return color


def _different_color(
    rng: np.random.Generator, previous: list[int], min_dist: int = 50, max_count: int = 20
) -> int:
    """A grey level at least ``min_dist`` from every previous colour (gives up after ``max_count`` redraws)."""
    draws = rng.integers(256, size=max_count + 1).tolist()
    for color in draws:
        if all(abs(p - color) >= min_dist for p in previous):
            return color
    return draws[-1]


def _random_colors(
    rng: np.random.Generator, background_color: int, size: int | tuple[int, ...]
) -> np.ndarray:
    """Vectorised :func:`_random_color`."""
    colors = rng.integers(256, size=size)
    close = np.abs(colors - background_color) < 30
    colors[close] = (colors[close] + 128) % 256
    return colors


# -- geometry helpers --------------------------------------------------------------------
def keep_points_inside(points: np.ndarray, height: int, width: int) -> np.ndarray:
    """Points [N, 2] (x, y) with 0 <= x <= W-1 and 0 <= y <= H-1 -> [M, 2] float64."""
    points = np.asarray(points, np.float64).reshape(-1, 2)
    keep = (
        (points[:, 0] >= 0)
        & (points[:, 0] <= width - 1)
        & (points[:, 1] >= 0)
        & (points[:, 1] <= height - 1)
    )
    return points[keep]


def _side_changes(segments: np.ndarray) -> np.ndarray:
    """[S, S] bool: whether the end points of segment m lie on different sides of segment k's line.

    ``segments`` [S, 4] holds (x1, y1, x2, y2). Two segments cross (the reference's
    counter-clockwise test) when ``X[k, m] & X[m, k]``.
    """
    ax, ay, bx, by = (segments[:, i : i + 1] for i in range(4))
    ex, ey = bx - ax, by - ay
    side_start = ex * (segments[None, :, 1] - ay) > ey * (segments[None, :, 0] - ax)
    side_end = ex * (segments[None, :, 3] - ay) > ey * (segments[None, :, 2] - ax)
    return side_start != side_end


def _crossing_matrix(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """[K, M] bool: whether segment k of ``first`` [K, 4] crosses segment m of ``second`` [M, 4]."""
    x = _side_changes(np.concatenate([first, second]))
    k = len(first)
    return x[:k, k:] & x[k:, :k].T


def _corner_angles(points: np.ndarray) -> np.ndarray:
    """Angle (rad) at each vertex of a closed polygon [N, 2] between its two edges."""
    idx = np.arange(len(points))
    prev = points[idx - 1] - points
    nxt = points[(idx + 1) % len(points)] - points
    cos = np.sum(prev * nxt, axis=1) / (
        np.sqrt(np.sum(prev * prev, axis=1) * np.sum(nxt * nxt, axis=1)) + 1e-12
    )
    return np.arccos(np.clip(cos, -1.0, 1.0))


def _random_polygons(
    rng: np.random.Generator, height: int, width: int, count: int, max_sides: int = 8
) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """``count`` random star-shaped polygons: (vertices [N, 2], centre [2], radius) each.

    Each has 3 to max_sides-1 corners at increasing angles around a centre, radius
    max(U * min_dim / 2, min_dim / 10), independent radial factors max(U, 0.4) for x and y
    (as the reference draws them); repeated vertices and then flat corners (angle >= 2pi/3)
    are dropped, so N may end below 3. Vectorised over the polygons.
    """
    min_dim = min(height, width)
    k = max_sides - 1
    num = rng.integers(3, max_sides, size=count)
    u = rng.random((count, 3 + 3 * k))
    rad = np.maximum(u[:, 0] * min_dim / 2, min_dim / 10)
    centers = np.stack(
        [rad + u[:, 1] * (width - 2 * rad), rad + u[:, 2] * (height - 2 * rad)], axis=1
    )
    j = np.arange(k)
    angles = (j + u[:, 3 : 3 + k]) * (2 * math.pi / num)[:, None]
    rx = np.maximum(u[:, 3 + k : 3 + 2 * k], 0.4) * rad[:, None]
    ry = np.maximum(u[:, 3 + 2 * k :], 0.4) * rad[:, None]
    pts = centers[:, None, :] + np.stack(
        [rx * np.cos(angles), ry * np.sin(angles)], axis=2
    )  # [C, k, 2]
    valid = j < num[:, None]
    n = num[:, None]
    prev = np.take_along_axis(pts, ((j - 1) % n)[..., None], axis=1) - pts
    nxt = np.take_along_axis(pts, ((j + 1) % n)[..., None], axis=1) - pts
    prev_sq = np.sum(prev * prev, axis=2)
    repeated = (prev_sq <= 1e-4) & valid
    cos = np.sum(prev * nxt, axis=2) / (np.sqrt(prev_sq * np.sum(nxt * nxt, axis=2)) + 1e-12)
    keep = valid & (np.arccos(np.clip(cos, -1.0, 1.0)) < 2 * math.pi / 3)
    out = []
    for i in range(count):
        if repeated[i].any():  # practically never with continuous coordinates: filter in two steps
            p = pts[i, : num[i]][~repeated[i, : num[i]]]
            if len(p) >= 3:
                p = p[_corner_angles(p) < 2 * math.pi / 3]
        else:
            p = pts[i][keep[i]]
        out.append((p, centers[i], float(rad[i])))
    return out


def _line_width(rng: np.random.Generator, canvas: ShapeCanvas, low: float, high: float) -> float:
    """A line width uniform in [low, high) x min(H, W) target pixels (at least a quarter pixel)."""
    return max(rng.uniform(low, high) * canvas.min_dim, 1.0 / canvas.factor)


# -- background ------------------------------------------------------------------------
def draw_background(
    rng: np.random.Generator, height: int, width: int, params: BackgroundParams | None = None
) -> np.ndarray:
    """Blurred-blob background uint8 [H, W]: a flat grey, ``nb_blobs`` discs of contrasting grey, box blur.

    ``params`` default to the ``magic-point_shapes`` generation parameters. The reference
    starts from thresholded uniform noise that its 150-500 px box blur averages to a flat grey
    (residual std < 1 grey level); we draw that grey directly.
    """
    p = params or BackgroundParams()
    nb_blobs = p.nb_blobs
    scale = math.sqrt(height * width / (_REFERENCE_SIZE[0] * _REFERENCE_SIZE[1]))
    threshold = int(rng.integers(256))
    base = max(0, 254 - threshold)  # mean of uniform 0..254 noise thresholded at `threshold`
    img = np.full((height, width), base, np.uint8)
    dim = max(height, width)
    xs = rng.uniform(0, width, nb_blobs)
    ys = rng.uniform(0, height, nb_blobs)
    radii = rng.uniform(dim * p.min_rad_ratio, dim * p.max_rad_ratio, nb_blobs)
    colors = _random_colors(rng, base, nb_blobs)
    # No anti-aliasing needed: the box blur below is 19+ px wide at 120x160.
    for cx, cy, r, col in zip(
        np.round(xs * _ONE).astype(np.int64).tolist(),
        np.round(ys * _ONE).astype(np.int64).tolist(),
        np.round(np.maximum(radii - 0.5, 0.0) * _ONE)
        .astype(np.int64)
        .tolist(),  # fill covers +0.5 px
        colors.tolist(),
        strict=True,
    ):
        cv2.circle(img, (cx, cy), r, col, -1, cv2.LINE_8, _SHIFT)
    kernel = max(1, int(round(rng.uniform(p.min_kernel_size, p.max_kernel_size) * scale)))
    cv2.blur(img, (kernel, kernel), img)
    return img


def _custom_texture(
    rng: np.random.Generator,
    height: int,
    width: int,
    background_color: int,
    scale: float,
    kernel_boundaries: tuple[int, int] = PolygonsParams.kernel_boundaries,
) -> np.ndarray:
    """Mottled texture uint8 [height, width] to fill a polygon (reference: 3000 random-grey discs, box blur).

    The reference's discs have radii below 20 reference px (< 2.5 target px) and cover ~61% of
    the image; its 50-100 px box blur then leaves a mottled texture. We draw random greys
    (each present with probability 0.61 over a base grey) on a grid of 3-px cells, upsample it
    bilinearly into blobs and blur with the rescaled kernel: at 120x160 its grey-level std
    and mean gradient match the reference's within a few percent (20.2 / 3.8 vs 19.8 / 3.8).
    """
    cell = 3
    gh, gw = -(-height // cell) + 1, -(-width // cell) + 1
    base = _random_color(rng, background_color)
    grid = _random_colors(rng, background_color, (gh, gw)).astype(np.uint8)
    grid[rng.random((gh, gw)) >= 0.61] = base
    tex = cv2.resize(grid, (gw * cell, gh * cell), interpolation=cv2.INTER_LINEAR)[:height, :width]
    kernel = max(1, int(round(rng.uniform(*kernel_boundaries) * scale)))
    return cv2.blur(tex, (kernel, kernel))


# -- primitives ------------------------------------------------------------------------
def draw_lines(canvas: ShapeCanvas, rng: np.random.Generator, nb_lines: int = 10) -> np.ndarray:
    """1 to nb_lines-1 non-crossing segments (1-2% of min(H, W) wide); points: their end points [N, 2].

    Candidates are drawn at once and accepted in order unless they cross an accepted one.
    """
    h, w = canvas.height, canvas.width
    num_lines = int(rng.integers(1, nb_lines))
    segs = rng.random((num_lines, 4)) * [w, h, w, h]
    colors = _random_colors(rng, canvas.background_color, num_lines)
    widths = np.maximum(rng.uniform(0.01, 0.02, num_lines) * canvas.min_dim, 1.0 / canvas.factor)
    crossing = _crossing_matrix(segs, segs)
    kept: list[int] = []
    for i in range(num_lines):
        if not any(crossing[i, j] for j in kept):
            kept.append(i)
    canvas.segments(segs[kept, 0:2], segs[kept, 2:4], widths[kept], colors[kept])
    return keep_points_inside(segs[kept].reshape(-1, 2), h, w)


def draw_polygon(canvas: ShapeCanvas, rng: np.random.Generator, max_sides: int = 8) -> np.ndarray:
    """One filled polygon with 3 to max_sides-1 corners (flat ones dropped); points: its vertices [N, 2]."""
    h, w = canvas.height, canvas.width
    while True:
        points, _, _ = _random_polygons(rng, h, w, 1, max_sides)[0]
        if len(points) >= 3:
            break
    canvas.fill_polygon(points, _random_color(rng, canvas.background_color))
    return keep_points_inside(points, h, w)


def draw_multiple_polygons(
    canvas: ShapeCanvas, rng: np.random.Generator, params: PolygonsParams | None = None
) -> np.ndarray:
    """Up to ``nb_polygons`` non-overlapping textured polygons; points: all their vertices [N, 2].

    Candidates are drawn as in the reference and accepted in order unless an edge crosses an
    edge of an accepted polygon or one's circle holds the other's (the reference's nesting
    test); the conflicts of all candidate pairs are computed at once.
    """
    p = params or PolygonsParams()
    h, w = canvas.height, canvas.width
    candidates = [
        c for c in _random_polygons(rng, h, w, p.nb_polygons, p.max_sides) if len(c[0]) >= 3
    ]
    if not candidates:
        return np.empty((0, 2))
    counts = [len(c[0]) for c in candidates]
    segs = np.concatenate(
        [
            np.concatenate([pts, pts[(np.arange(len(pts)) + 1) % len(pts)]], axis=1)
            for pts, _, _ in candidates
        ]
    )
    x = _side_changes(segs)
    crossing = x & x.T
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    conflict = np.logical_or.reduceat(
        np.logical_or.reduceat(crossing, starts, axis=0), starts, axis=1
    )
    centers = np.array([c[1] for c in candidates])
    rads = np.array([c[2] for c in candidates])
    dist = np.linalg.norm(centers[:, None] - centers[None], axis=2)
    conflict |= dist + np.minimum(rads[:, None], rads[None]) < np.maximum(rads[:, None], rads[None])
    accepted: list[int] = []
    for i in range(len(candidates)):
        if not any(conflict[i, j] for j in accepted):
            accepted.append(i)
    points = []
    for i in accepted:
        pts = candidates[i][0]
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        x0, y0, x1, y1 = canvas._region(lo[0], lo[1], hi[0], hi[1])
        texture = _custom_texture(
            rng, y1 - y0, x1 - x0, canvas.background_color, canvas.scale, p.kernel_boundaries
        )
        canvas.paste_texture(pts, texture, x0, y0)
        points.append(pts)
    return keep_points_inside(np.concatenate(points, axis=0), h, w)


def draw_ellipses(
    canvas: ShapeCanvas, rng: np.random.Generator, nb_ellipses: int = 20
) -> np.ndarray:
    """Up to nb_ellipses non-overlapping filled ellipses; no interest points ([0, 2])."""
    h, w = canvas.height, canvas.width
    min_dim = min(h, w) / 4
    u = rng.random((nb_ellipses, 5))  # ax, ay, x, y, angle
    colors = _random_colors(rng, canvas.background_color, nb_ellipses)
    axes = np.maximum(u[:, :2] * min_dim, min_dim / 5)
    max_rad = axes.max(axis=1)
    centers = np.stack(
        [max_rad + u[:, 2] * (w - 2 * max_rad), max_rad + u[:, 3] * (h - 2 * max_rad)], axis=1
    )
    kept: list[int] = []
    for i in range(nb_ellipses):
        if kept:
            dist = np.linalg.norm(centers[kept] - centers[i], axis=1)
            if np.any(max_rad[i] > dist - max_rad[kept]):
                continue
        kept.append(i)
        canvas.ellipse(centers[i], (axes[i, 0], axes[i, 1]), u[i, 4] * 90, int(colors[i]))
    return np.empty((0, 2))


def draw_star(canvas: ShapeCanvas, rng: np.random.Generator, nb_branches: int = 6) -> np.ndarray:
    """3 to nb_branches-1 segments from a common centre; points: centre and branch tips [N, 2]."""
    h, w = canvas.height, canvas.width
    num_branches = int(rng.integers(3, nb_branches))
    min_dim = canvas.min_dim
    width = _line_width(rng, canvas, 0.01, 0.02)
    rad = max(rng.random() * min_dim / 2, min_dim / 5)
    center = np.array([rng.uniform(rad, w - rad), rng.uniform(rad, h - rad)])
    slices = np.linspace(0, 2 * math.pi, num_branches + 1)
    angles = slices[:-1] + rng.random(num_branches) * (slices[1:] - slices[:-1])
    rx = np.maximum(rng.random(num_branches), 0.3) * rad
    ry = np.maximum(rng.random(num_branches), 0.3) * rad
    tips = center + np.stack([rx * np.cos(angles), ry * np.sin(angles)], axis=1)
    colors = _random_colors(rng, canvas.background_color, num_branches)
    canvas.segments(np.broadcast_to(center, tips.shape), tips, width, colors)
    return keep_points_inside(np.concatenate([center[None], tips], axis=0), h, w)


def _board_transform(
    rng: np.random.Generator, height: int, width: int, transform_params: tuple[float, float]
) -> Callable[[np.ndarray], np.ndarray]:
    """A random affine-then-perspective map of (x, y) points, as the reference distorts boards.

    Four corners of a square around the (row, col)-ordered image centre (the reference's
    convention, kept for the same distribution) are jittered by up to ``alpha`` for the
    affine part and ``alpha / 2`` for the perspective part, ``alpha = max(H, W) * (p0 + U * p1)``.
    """
    alpha = max(height, width) * (transform_params[0] + rng.random() * transform_params[1])
    cy, cx = height // 2, width // 2
    size = min(height, width) / 3
    pts1 = np.array(
        [
            [cy + size, cx + size],
            [cy + size, cx - size],
            [cy - size, cx - size],
            [cy - size, cx + size],
        ],
        np.float32,
    )
    pts2 = (pts1 + rng.uniform(-alpha, alpha, pts1.shape)).astype(np.float32)
    affine = cv2.getAffineTransform(pts1[:3], pts2[:3])
    pts2 = (pts1 + rng.uniform(-alpha / 2, alpha / 2, pts1.shape)).astype(np.float32)
    perspective = cv2.getPerspectiveTransform(pts1, pts2)

    def apply(points: np.ndarray) -> np.ndarray:
        p = points @ affine[:, :2].T + affine[:, 2]
        q = p @ perspective[:2, :2].T + perspective[:2, 2]
        z = p @ perspective[2, :2] + perspective[2, 2]
        return q / z[:, None]

    return apply


def draw_checkerboard(
    canvas: ShapeCanvas, rng: np.random.Generator, params: CheckerboardParams | None = None
) -> np.ndarray:
    """A distorted checkerboard of 3-6 x 3-6 cells with random lines on its grid; points: grid intersections."""
    p = params or CheckerboardParams()
    h, w = canvas.height, canvas.width
    rows = int(rng.integers(3, p.max_rows))
    cols = int(rng.integers(3, p.max_cols))
    s = min((w - 1) / cols, (h - 1) / rows)
    gx, gy = np.meshgrid(np.arange(cols + 1), np.arange(rows + 1))
    grid = s * np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float64)
    warped = _board_transform(rng, h, w, p.transform_params)(grid)

    # Each cell's grey contrasts with its upper and left neighbours (redrawn up to 20 times).
    draws = rng.integers(256, size=(rows * cols, 21)).tolist()
    colors = [_random_color(rng, canvas.background_color)]
    for idx in range(1, rows * cols):
        i, j = divmod(idx, cols)
        neighbours = ([colors[idx - cols]] if i else []) + ([colors[idx - 1]] if j else [])
        colors.append(
            next(
                (c for c in draws[idx] if all(abs(n - c) >= 50 for n in neighbours)), draws[idx][-1]
            )
        )
    k = (np.arange(rows)[:, None] * (cols + 1) + np.arange(cols)[None]).ravel()
    quads = warped[np.stack([k, k + 1, k + cols + 2, k + cols + 1], axis=1)]  # [rows * cols, 4, 2]
    canvas.fill_convex(quads, np.array(colors))

    # Lines along random stretches of grid rows and columns.
    nb_rows = int(rng.integers(2, rows + 2))
    nb_cols = int(rng.integers(2, cols + 2))
    width = _line_width(rng, canvas, 0.01, 0.015)
    r = rng.integers(rows + 1, size=nb_rows)
    c1, c2 = rng.integers(cols + 1, size=(2, nb_rows))
    c = rng.integers(cols + 1, size=nb_cols)
    r1, r2 = rng.integers(rows + 1, size=(2, nb_cols))
    starts = np.concatenate([warped[r * (cols + 1) + c1], warped[r1 * (cols + 1) + c]])
    ends = np.concatenate([warped[r * (cols + 1) + c2], warped[r2 * (cols + 1) + c]])
    canvas.segments(
        starts, ends, width, _random_colors(rng, canvas.background_color, nb_rows + nb_cols)
    )
    return keep_points_inside(warped, h, w)


def draw_stripes(
    canvas: ShapeCanvas, rng: np.random.Generator, params: StripesParams | None = None
) -> np.ndarray:
    """Alternating stripes on a distorted board larger than the image; points: stripe-boundary end points."""
    p = params or StripesParams()
    h, w = canvas.height, canvas.width
    board_h = h * (1 + rng.random())
    board_w = w * (1 + rng.random())
    n = int(rng.integers(5, p.max_nb_cols))
    xs = np.unique(np.concatenate([board_w * rng.random(n - 1), [0.0, board_w - 1]]))
    min_width = canvas.min_dim * p.min_width_ratio
    xs = xs[np.diff(np.append(xs, board_w + min_width)) >= min_width]
    n = len(xs) - 1
    top = np.stack([xs, np.zeros_like(xs)], axis=1)
    bottom = np.stack([xs, np.full_like(xs, board_h - 1)], axis=1)
    warped = _board_transform(rng, h, w, p.transform_params)(np.concatenate([top, bottom], axis=0))

    # Alternating greys: each stripe about 128 levels from the previous one.
    color = _random_color(rng, canvas.background_color)
    colors = (color + np.cumsum(128 + rng.integers(-30, 30, size=n))) % 256
    i = np.arange(n)
    canvas.fill_convex(warped[np.stack([i, i + 1, i + n + 2, i + n + 1], axis=1)], colors)

    # Lines along the top or bottom edge, and along stripe boundaries.
    nb_rows = int(rng.integers(2, 5))
    nb_cols = int(rng.integers(2, n + 2))
    width = _line_width(rng, canvas, 0.01, 0.015)
    row = rng.choice([0, n + 1], size=nb_rows)
    c1, c2 = rng.integers(n + 1, size=(2, nb_rows))
    c = rng.integers(n + 1, size=nb_cols)
    starts = np.concatenate([warped[row + c1], warped[c]])
    ends = np.concatenate([warped[row + c2], warped[c + n + 1]])
    canvas.segments(
        starts, ends, width, _random_colors(rng, canvas.background_color, nb_rows + nb_cols)
    )
    return keep_points_inside(warped, h, w)


def draw_cube(
    canvas: ShapeCanvas, rng: np.random.Generator, params: CubeParams | None = None
) -> np.ndarray:
    """Projection of a rotated box with 3 filled faces and contrasting edges; points: the 7 visible corners."""
    p = params or CubeParams()
    h, w = canvas.height, canvas.width
    min_dim = canvas.min_dim
    min_side = min_dim * p.min_size_ratio
    lx, ly, lz = min_side + rng.random(3) * 2 * min_dim / 3
    # Vertex i has coordinates (bit0 * lx, bit1 * ly, bit2 * lz): neighbours differ by one bit.
    bits = np.array([[(i >> k) & 1 for k in range(3)] for i in range(8)], np.float64)
    cube = bits * np.array([lx, ly, lz])
    a = rng.random(3) * 3 * math.pi / 10 + p.min_angle_rot
    c, s = np.cos(a), np.sin(a)
    rot1 = np.array([[c[0], -s[0], 0], [s[0], c[0], 0], [0, 0, 1]])
    rot2 = np.array([[1, 0, 0], [0, c[1], -s[1]], [0, s[1], c[1]]])
    rot3 = np.array([[c[2], 0, -s[2]], [0, 1, 0], [s[2], 0, c[2]]])
    scale, shift = p.scale_interval, p.trans_interval
    scaling = np.diag(scale[0] + rng.random(3) * scale[1])
    trans = np.array(
        [
            w * shift[0] + rng.uniform(-w * shift[1], w * shift[1]),
            h * shift[0] + rng.uniform(-h * shift[1], h * shift[1]),
            0.0,
        ]
    )
    cube = trans + cube @ (scaling @ rot1 @ rot2 @ rot3).T
    cube = cube[:, :2]  # orthographic projection; corner 0 is hidden by construction, 7 in front
    faces = np.array([[7, 3, 1, 5], [7, 5, 4, 6], [7, 6, 2, 3]])
    col_face = _random_color(rng, canvas.background_color)
    canvas.fill_convex(cube[faces], col_face)  # parallelograms (orthographic projection)
    width = _line_width(rng, canvas, 0.003, 0.015)
    # Every face outlined, each edge in a grey contrasting with the faces.
    edge_colors = (col_face + 128 + rng.integers(-64, 64, size=12)) % 256
    canvas.segments(
        cube[faces.ravel()], cube[np.roll(faces, -1, axis=1).ravel()], width, edge_colors
    )
    return keep_points_inside(cube[1:], h, w)


def gaussian_noise(canvas: ShapeCanvas, rng: np.random.Generator) -> np.ndarray:
    """Replace the image by grey noise (the reference's uniform noise after its blur and resize); no points."""
    noise = np.empty((canvas.height, canvas.width), np.uint8)
    seeded_cv2_rng(rng)
    cv2.randn(noise, 127.5, _NOISE_STD)  # saturating cast to uint8
    canvas.set_image(noise)
    return np.empty((0, 2))


# The primitives by name, in the reference order.
DRAW_FUNCTIONS: dict[str, Callable[[ShapeCanvas, np.random.Generator], np.ndarray]] = {
    "draw_lines": draw_lines,
    "draw_polygon": draw_polygon,
    "draw_multiple_polygons": draw_multiple_polygons,
    "draw_ellipses": draw_ellipses,
    "draw_star": draw_star,
    "draw_checkerboard": draw_checkerboard,
    "draw_stripes": draw_stripes,
    "draw_cube": draw_cube,
    "gaussian_noise": gaussian_noise,
}
PRIMITIVES: tuple[str, ...] = tuple(DRAW_FUNCTIONS)
# The reference mix: every primitive had its own 10000-image training set, truncated for
# ellipses (0.3), stripes (0.2) and noise (0.1).
PRIMITIVE_WEIGHTS: dict[str, float] = {
    name: {"draw_ellipses": 0.3, "draw_stripes": 0.2, "gaussian_noise": 0.1}.get(name, 1.0)
    for name in PRIMITIVES
}
