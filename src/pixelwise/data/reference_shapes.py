"""Synthetic Shapes drawn the way the SuperPoint reference generator draws them.

The reference (rpautrat/SuperPoint, ``superpoint/datasets/synthetic_dataset.py`` with the
``magic-point_shapes.yaml`` generation parameters, and ``synthetic_shapes.py`` for the
preprocessing) draws every image on a large canvas (960x1280) with integer vertices and
OpenCV's non-anti-aliased drawing, then blurs it (Gaussian, 21x21, OpenCV's default sigma 3.5)
and resizes it bilinearly (``cv2.INTER_LINEAR``) to 120x160. This module follows that recipe
step by step - same primitives, same parameter distributions, same drawing calls at the same
canvas size, same blur and resize - with the project's seeded ``numpy.random.Generator`` in
place of the reference's global ``RandomState``. It is the distribution the paper's and the
reference's Synthetic Shapes numbers (MagicPoint mAP 0.979 / 0.971; Harris 0.69 / 0.24,
FAST 0.71 / 0.08) are measured on.

:mod:`pixelwise.data.shape_primitives` is the fast approximation (it draws at the target size
with supersampling, ~5x cheaper); ``SyntheticShapes(renderer="fast")`` selects it.

The canvas is ``generation_factor`` times the target size (8: 960x1280 for 120x160); the
reference's absolute pixel sizes (background box-blur kernels, texture blobs) are rescaled by
``canvas / 960x1280`` so other target sizes keep the same look in target pixels.

Coordinates. The reference keeps its canvas points ``p`` (integers, OpenCV (x, y)) and scales
them by ``s = target / canvas``: its ground truth is ``p * s``. The resize maps canvas pixel
centre ``p`` to target ``(p + 0.5) * s - 0.5`` (pixel centres at integers, DESIGN.md's
convention), which is what :func:`render_reference_shape` returns: 0.4375 px up-left of the
reference's numbers at ``s = 1/8`` (``pixelwise.geometry.conventions`` converts).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np

from pixelwise.data.shape_primitives import (
    PRIMITIVES,
    BackgroundParams,
    CheckerboardParams,
    CubeParams,
    PolygonsParams,
    StripesParams,
    _random_color,
    _random_colors,
)

__all__ = [
    "REFERENCE_CANVAS",
    "REFERENCE_DRAW_FUNCTIONS",
    "generate_reference_background",
    "render_reference_shape",
]

REFERENCE_CANVAS = (960, 1280)  # (H, W) of the reference's generation canvas
_BLUR_SIZE = 21  # reference preprocessing.blur_size for 120x160 output


def _int_range(rng: np.random.Generator, low: float, high: float) -> int:
    """``RandomState.randint(low, high)`` with float bounds as the reference calls it (bounds truncated; never empty)."""
    lo, hi = int(low), int(high)
    return int(rng.integers(lo, max(hi, lo + 1)))


def _different_color(
    rng: np.random.Generator, previous: list[int], min_dist: int = 50, max_count: int = 20
) -> int:
    """A grey at least ``min_dist`` from all ``previous`` greys, giving up after ``max_count`` redraws.

    Unlike ``shape_primitives._different_color`` (which draws all candidates at once), this draws
    lazily as the reference does, so the random stream, and the cached shapes, stay as rendered.
    """
    prev = np.asarray(previous)
    color = int(rng.integers(256))
    count = 0
    while np.any(np.abs(prev - color) < min_dist) and count < max_count:
        count += 1
        color = int(rng.integers(256))
    return color


def _ccw(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    return (c[..., 1] - a[..., 1]) * (b[..., 0] - a[..., 0]) > (b[..., 1] - a[..., 1]) * (
        c[..., 0] - a[..., 0]
    )


def _any_intersection(a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray) -> bool:
    """True if any segment a-b crosses any segment c-d (broadcast; the reference's ``intersect``)."""
    cross = (_ccw(a, c, d) != _ccw(b, c, d)) & (_ccw(a, b, c) != _ccw(a, b, d))
    return bool(np.any(cross))


def _inside(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    points = np.asarray(points).reshape(-1, 2)
    keep = (
        (points[:, 0] >= 0)
        & (points[:, 0] < shape[1])
        & (points[:, 1] >= 0)
        & (points[:, 1] < shape[0])
    )
    return points[keep]


def _line(img: np.ndarray, a: np.ndarray, b: np.ndarray, color: int, thickness: int) -> None:
    """cv2.line between integer points ``a`` and ``b`` (x, y)."""
    cv2.line(img, (int(a[0]), int(a[1])), (int(b[0]), int(b[1])), color, thickness)


def _random_colored_line(
    img: np.ndarray,
    rng: np.random.Generator,
    a: np.ndarray,
    b: np.ndarray,
    background_color: int,
    thickness: int,
) -> None:
    """:func:`_line` from ``a`` to ``b`` in a grey drawn from ``rng`` (:func:`_random_color`)."""
    _line(img, a, b, _random_color(rng, background_color), thickness)


def _scale(img: np.ndarray) -> float:
    return math.sqrt(img.shape[0] * img.shape[1] / (REFERENCE_CANVAS[0] * REFERENCE_CANVAS[1]))


def generate_reference_background(
    rng: np.random.Generator,
    size: tuple[int, int] = REFERENCE_CANVAS,
    params: BackgroundParams | None = None,
) -> np.ndarray:
    """Thresholded uniform noise, discs of contrasting grey, large box blur: uint8 [H, W] canvas."""
    p = params or BackgroundParams()
    nb_blobs = p.nb_blobs
    img = rng.integers(0, 255, size=size, dtype=np.uint8)  # cv.randu(img, 0, 255)
    cv2.threshold(img, int(rng.integers(256)), 255, cv2.THRESH_BINARY, img)
    background_color = int(img.mean())
    dim = max(size)
    xs = rng.integers(0, size[1], nb_blobs).tolist()
    ys = rng.integers(0, size[0], nb_blobs).tolist()
    colors = _random_colors(rng, background_color, nb_blobs).tolist()
    lo, hi = int(dim * p.min_rad_ratio), int(dim * p.max_rad_ratio)
    radii = rng.integers(lo, max(hi, lo + 1), nb_blobs).tolist()
    for x, y, color, radius in zip(xs, ys, colors, radii, strict=True):
        cv2.circle(img, (x, y), radius, color, -1)
    scale = _scale(img)
    kernel = max(1, int(_int_range(rng, p.min_kernel_size, p.max_kernel_size) * scale))
    cv2.blur(img, (kernel, kernel), img)
    return img


def _star_points(
    rng: np.random.Generator, img: np.ndarray, n: int, min_rad: float, min_radial: float
) -> tuple[np.ndarray, float, int, int]:
    """``n`` integer points, one per equal angular slice, at ``max(U, min_radial) * rad`` from a random centre.

    ``rad = max(U * min_dim / 2, min_rad)``; the centre keeps the circle inside the canvas.
    Returns (points int64 [n, 2] (x, y), rad, x, y): how the reference samples polygons and stars.
    """
    min_dim = min(img.shape)
    rad = max(rng.random() * min_dim / 2, min_rad)
    x = _int_range(rng, rad, img.shape[1] - rad)
    y = _int_range(rng, rad, img.shape[0] - rad)
    slices = np.linspace(0, 2 * math.pi, n + 1)
    angles = slices[:-1] + rng.random(n) * np.diff(slices)
    radial = np.maximum(rng.random((n, 2)), min_radial) * rad
    points = np.stack(
        [x + radial[:, 0] * np.cos(angles), y + radial[:, 1] * np.sin(angles)], axis=1
    ).astype(np.int64)  # int() truncation
    return points, rad, x, y


def _polygon_points(
    rng: np.random.Generator, img: np.ndarray, max_sides: int
) -> tuple[np.ndarray, float, int, int]:
    """Random star-shaped polygon as the reference samples it, flat corners and repeats removed."""
    num_corners = int(rng.integers(3, max_sides))
    points, rad, x, y = _star_points(rng, img, num_corners, min(img.shape) / 10, 0.4)
    # Drop repeated vertices, then corners flatter than 120 degrees.
    prev = np.roll(points, 1, axis=0)
    points = points[np.linalg.norm(prev - points, axis=1) > 0.01]
    if len(points):
        u = np.roll(points, 1, axis=0) - points
        v = np.roll(points, -1, axis=0) - points
        with np.errstate(invalid="ignore", divide="ignore"):
            cos = np.sum(u * v, axis=1) / (np.linalg.norm(u, axis=1) * np.linalg.norm(v, axis=1))
            angle = np.arccos(np.clip(cos, -1.0, 1.0))
        points = points[angle < 2 * math.pi / 3]
    return points, rad, x, y


def draw_lines(img: np.ndarray, rng: np.random.Generator, nb_lines: int = 10) -> np.ndarray:
    """Up to ``nb_lines - 1`` non-crossing thick segments; their endpoints."""
    num_lines = int(rng.integers(1, nb_lines))
    segments = np.empty((0, 4), np.int64)
    points = []
    background_color = int(img.mean())
    min_dim = min(img.shape)
    for _ in range(num_lines):
        x1, x2 = (int(v) for v in rng.integers(img.shape[1], size=2))
        y1, y2 = (int(v) for v in rng.integers(img.shape[0], size=2))
        p1, p2 = np.array([x1, y1]), np.array([x2, y2])
        if _any_intersection(segments[:, :2], segments[:, 2:], p1, p2):
            continue
        segments = np.concatenate([segments, [[x1, y1, x2, y2]]])
        color = _random_color(rng, background_color)
        thickness = _int_range(rng, min_dim * 0.01, min_dim * 0.02)
        cv2.line(img, (x1, y1), (x2, y2), color, thickness)
        points += [[x1, y1], [x2, y2]]
    return np.array(points, np.int64).reshape(-1, 2)


def draw_polygon(img: np.ndarray, rng: np.random.Generator, max_sides: int = 8) -> np.ndarray:
    """One filled polygon with 3 to 7 corners; its corners."""
    while True:
        points, *_ = _polygon_points(rng, img, max_sides)
        if len(points) >= 3:
            break
    cv2.fillPoly(
        img, [points.reshape(-1, 1, 2).astype(np.int32)], _random_color(rng, int(img.mean()))
    )
    return points


def _custom_texture(
    rng: np.random.Generator,
    img: np.ndarray,
    background_color: int,
    box: tuple[int, int, int, int],
    kernel_boundaries: tuple[int, int] = PolygonsParams.kernel_boundaries,
    nb_blobs: int = 3000,
) -> tuple[np.ndarray, int, int]:
    """The reference's polygon texture (``generate_custom_background``) over canvas box ``(x0, y0, x1, y1)``.

    The reference draws 3000 small discs of random grey over the whole canvas and box-blurs
    it, then keeps the pixels inside the polygon. Only discs and blur support reaching the
    polygon's box matter, so we draw the texture on that box padded by the blur radius plus
    the largest disc (same draws, same pixels inside the box, up to ~10x cheaper).
    Returns (texture, x0, y0) of the padded region.
    """
    scale = _scale(img)
    h, w = img.shape
    base = _random_color(rng, background_color)
    xs = rng.integers(0, w, nb_blobs)
    ys = rng.integers(0, h, nb_blobs)
    colors = _random_colors(rng, background_color, nb_blobs).tolist()
    radii = (rng.integers(20, size=nb_blobs) * scale).astype(np.int64)
    kernel = max(1, int(int(rng.integers(*kernel_boundaries)) * scale))
    pad = kernel + int(20 * scale) + 1
    x0, y0 = max(box[0] - pad, 0), max(box[1] - pad, 0)
    x1, y1 = min(box[2] + pad, w), min(box[3] + pad, h)
    texture = np.full((y1 - y0, x1 - x0), base, np.uint8)
    near = (xs + radii >= x0) & (xs - radii < x1) & (ys + radii >= y0) & (ys - radii < y1)
    for i in np.flatnonzero(near).tolist():
        cv2.circle(texture, (int(xs[i]) - x0, int(ys[i]) - y0), int(radii[i]), colors[i], -1)
    # An interior crop edge is >= pad from the box, so its border handling never reaches it;
    # at the canvas edges the crop edge is the canvas edge and the reflection is the same.
    cv2.blur(texture, (kernel, kernel), texture)
    return texture, x0, y0


def draw_multiple_polygons(
    img: np.ndarray, rng: np.random.Generator, params: PolygonsParams | None = None
) -> np.ndarray:
    """Up to ``nb_polygons`` textured polygons that neither cross nor nest; their corners."""
    p = params or PolygonsParams()
    segments = np.empty((0, 4), np.float64)
    centers: list[np.ndarray] = []
    rads: list[float] = []
    points = []
    background_color = int(img.mean())
    for _ in range(p.nb_polygons):
        new_points, rad, x, y = _polygon_points(rng, img, p.max_sides)
        if len(new_points) < 3:
            continue
        nxt = np.roll(new_points, -1, axis=0)
        crossing = _any_intersection(
            segments[:, None, :2], segments[:, None, 2:], new_points[None], nxt[None]
        )
        center = np.array([x, y])
        nested = any(
            np.linalg.norm(center - c) + min(rad, r) < max(rad, r)
            for c, r in zip(centers, rads, strict=True)
        )
        if crossing or nested:
            continue
        centers.append(center)
        rads.append(rad)
        segments = np.concatenate([segments, np.concatenate([new_points, nxt], axis=1)])
        lo, hi = new_points.min(axis=0), new_points.max(axis=0)
        texture, tx, ty = _custom_texture(
            rng,
            img,
            background_color,
            (int(lo[0]), int(lo[1]), int(hi[0]) + 1, int(hi[1]) + 1),
            p.kernel_boundaries,
        )
        mask = np.zeros(texture.shape, np.uint8)
        cv2.fillPoly(mask, [(new_points - (tx, ty)).reshape(-1, 1, 2).astype(np.int32)], 255)
        region = img[ty : ty + texture.shape[0], tx : tx + texture.shape[1]]
        np.copyto(region, texture, where=mask.astype(bool))
        points.append(new_points)
    return np.concatenate(points) if points else np.empty((0, 2), np.int64)


def draw_ellipses(img: np.ndarray, rng: np.random.Generator, nb_ellipses: int = 20) -> np.ndarray:
    """Up to 20 non-overlapping filled ellipses; no interest points."""
    centers = np.empty((0, 2))
    rads = np.empty(0)
    min_dim = min(img.shape) / 4
    background_color = int(img.mean())
    for _ in range(nb_ellipses):
        ax = int(max(rng.random() * min_dim, min_dim / 5))
        ay = int(max(rng.random() * min_dim, min_dim / 5))
        max_rad = max(ax, ay)
        x = _int_range(rng, max_rad, img.shape[1] - max_rad)
        y = _int_range(rng, max_rad, img.shape[0] - max_rad)
        if np.any(max_rad > np.hypot(centers[:, 0] - x, centers[:, 1] - y) - rads):
            continue
        centers = np.concatenate([centers, [[x, y]]])
        rads = np.append(rads, max_rad)
        color = _random_color(rng, background_color)
        angle = rng.random() * 90
        cv2.ellipse(img, (x, y), (ax, ay), angle, 0, 360, color, -1)
    return np.empty((0, 2), np.int64)


def draw_star(img: np.ndarray, rng: np.random.Generator, nb_branches: int = 6) -> np.ndarray:
    """3 to 5 thick branches from one centre; the centre and the branch tips."""
    num_branches = int(rng.integers(3, nb_branches))
    min_dim = min(img.shape)
    thickness = _int_range(rng, min_dim * 0.01, min_dim * 0.02)
    tips, _, x, y = _star_points(rng, img, num_branches, min_dim / 5, 0.3)
    points = np.concatenate([[[x, y]], tips])
    background_color = int(img.mean())
    for tip in tips.tolist():
        cv2.line(img, (x, y), (tip[0], tip[1]), _random_color(rng, background_color), thickness)
    return points


def _board_warp(
    rng: np.random.Generator, img: np.ndarray, transform_params: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Random affine and perspective transforms of a board, constrained as the reference does."""
    alpha = max(img.shape) * (transform_params[0] + rng.random() * transform_params[1])
    # The reference builds its square from img.shape, i.e. (H/2, W/2) used as (x, y).
    center = np.float32(img.shape) // 2
    half = min(img.shape) // 3
    pts1 = np.float32(
        [
            center + half,
            [center[0] + half, center[1] - half],
            center - half,
            [center[0] - half, center[1] + half],
        ]
    )
    pts2 = pts1 + rng.uniform(-alpha, alpha, size=pts1.shape).astype(np.float32)
    affine = cv2.getAffineTransform(pts1[:3], pts2[:3])
    pts2 = pts1 + rng.uniform(-alpha / 2, alpha / 2, size=pts1.shape).astype(np.float32)
    perspective = cv2.getPerspectiveTransform(pts1, pts2)
    return affine, perspective


def _warp_points(points: np.ndarray, affine: np.ndarray, perspective: np.ndarray) -> np.ndarray:
    """Affine then perspective, truncated to int as the reference does."""
    p = np.concatenate([points, np.ones((len(points), 1))], axis=1) @ affine.T
    q = np.concatenate([p, np.ones((len(p), 1))], axis=1) @ perspective.T
    return (q[:, :2] / q[:, 2:]).astype(np.int64)


def draw_checkerboard(
    img: np.ndarray, rng: np.random.Generator, params: CheckerboardParams | None = None
) -> np.ndarray:
    """A warped checkerboard with random boundary lines; its inner and outer grid corners in the image."""
    p = params or CheckerboardParams()
    background_color = int(img.mean())
    rows = int(rng.integers(3, p.max_rows))
    cols = int(rng.integers(3, p.max_cols))
    s = min((img.shape[1] - 1) // cols, (img.shape[0] - 1) // rows)
    gx, gy = np.meshgrid(np.arange(cols + 1), np.arange(rows + 1))
    points = s * np.stack([gx.ravel(), gy.ravel()], axis=1)
    affine, perspective = _board_warp(rng, img, p.transform_params)
    warped = _warp_points(points, affine, perspective)

    colors = np.zeros(rows * cols, np.int64)
    for i in range(rows):
        for j in range(cols):
            if i == 0 and j == 0:
                color = _random_color(rng, background_color)
            else:
                neighbours = ([colors[(i - 1) * cols + j]] if i else []) + (
                    [colors[i * cols + j - 1]] if j else []
                )
                color = _different_color(rng, neighbours)
            colors[i * cols + j] = color
            k = i * (cols + 1) + j
            cell = warped[[k, k + 1, k + cols + 2, k + cols + 1]].astype(np.int32)
            cv2.fillConvexPoly(img, cell, color)

    min_dim = min(img.shape)
    nb_rows = int(rng.integers(2, rows + 2))
    nb_cols = int(rng.integers(2, cols + 2))
    thickness = _int_range(rng, min_dim * 0.01, min_dim * 0.015)
    for _ in range(nb_rows):
        r = int(rng.integers(rows + 1))
        c1, c2 = int(rng.integers(cols + 1)), int(rng.integers(cols + 1))
        a, b = warped[r * (cols + 1) + c1], warped[r * (cols + 1) + c2]
        _random_colored_line(img, rng, a, b, background_color, thickness)
    for _ in range(nb_cols):
        c = int(rng.integers(cols + 1))
        r1, r2 = int(rng.integers(rows + 1)), int(rng.integers(rows + 1))
        a, b = warped[r1 * (cols + 1) + c], warped[r2 * (cols + 1) + c]
        _random_colored_line(img, rng, a, b, background_color, thickness)
    return _inside(warped, img.shape)


def draw_stripes(
    img: np.ndarray, rng: np.random.Generator, params: StripesParams | None = None
) -> np.ndarray:
    """Stripes on a warped board larger than the image; the stripe corners in the image."""
    p = params or StripesParams()
    background_color = int(img.mean())
    board = (int(img.shape[0] * (1 + rng.random())), int(img.shape[1] * (1 + rng.random())))
    n = int(rng.integers(5, p.max_nb_cols))
    cols = np.concatenate([board[1] * rng.random(n - 1), [0, board[1] - 1]])
    cols = np.unique(cols.astype(np.int64))
    min_dim = min(img.shape)
    min_width = min_dim * p.min_width_ratio
    gaps = np.concatenate([cols[1:], [board[1] + min_width]]) - cols
    cols = cols[gaps >= min_width]
    n = len(cols) - 1
    points = np.concatenate(
        [
            np.stack([cols, np.zeros_like(cols)], 1),
            np.stack([cols, np.full_like(cols, board[0] - 1)], 1),
        ]
    )
    affine, perspective = _board_warp(rng, img, p.transform_params)
    warped = _warp_points(points, affine, perspective)

    color = _random_color(rng, background_color)
    for i in range(n):
        color = (color + 128 + int(rng.integers(-30, 30))) % 256
        quad = warped[[i, i + 1, i + n + 2, i + n + 1]].astype(np.int32)
        cv2.fillConvexPoly(img, quad, color)

    nb_rows = int(rng.integers(2, 5))
    nb_cols = int(rng.integers(2, n + 2))
    thickness = _int_range(rng, min_dim * 0.01, min_dim * 0.015)
    for _ in range(nb_rows):
        r = int(rng.choice([0, n + 1]))
        c1, c2 = int(rng.integers(n + 1)), int(rng.integers(n + 1))
        a, b = warped[r + c1], warped[r + c2]
        _random_colored_line(img, rng, a, b, background_color, thickness)
    for _ in range(nb_cols):
        c = int(rng.integers(n + 1))
        a, b = warped[c], warped[c + n + 1]
        _random_colored_line(img, rng, a, b, background_color, thickness)
    return _inside(warped, img.shape)


def draw_cube(
    img: np.ndarray, rng: np.random.Generator, params: CubeParams | None = None
) -> np.ndarray:
    """Orthographic view of a random cube, three faces filled and outlined; its 7 visible corners in the image."""
    p = params or CubeParams()
    background_color = int(img.mean())
    h, w = img.shape
    min_dim = min(h, w)
    min_side = min_dim * p.min_size_ratio
    lx, ly, lz = min_side + rng.random(3) * 2 * min_dim / 3
    cube = np.array(
        [
            [0, 0, 0],
            [lx, 0, 0],
            [0, ly, 0],
            [lx, ly, 0],
            [0, 0, lz],
            [lx, 0, lz],
            [0, ly, lz],
            [lx, ly, lz],
        ]
    )
    a = rng.random(3) * 3 * math.pi / 10 + p.min_angle_rot
    rot1 = np.array(
        [[math.cos(a[0]), -math.sin(a[0]), 0], [math.sin(a[0]), math.cos(a[0]), 0], [0, 0, 1]]
    )
    rot2 = np.array(
        [[1, 0, 0], [0, math.cos(a[1]), -math.sin(a[1])], [0, math.sin(a[1]), math.cos(a[1])]]
    )
    rot3 = np.array(
        [[math.cos(a[2]), 0, -math.sin(a[2])], [0, 1, 0], [math.sin(a[2]), 0, math.cos(a[2])]]
    )
    scale, shift = p.scale_interval, p.trans_interval
    scaling = np.diag(scale[0] + rng.random(3) * scale[1])
    trans = np.array(
        [
            w * shift[0] + _int_range(rng, -w * shift[1], w * shift[1]),
            h * shift[0] + _int_range(rng, -h * shift[1], h * shift[1]),
            0.0,
        ]
    )
    cube = (trans + cube @ (scaling @ rot1 @ rot2 @ rot3).T)[:, :2].astype(np.int64)
    faces = np.array([[7, 3, 1, 5], [7, 5, 4, 6], [7, 6, 2, 3]])  # corner 0 hidden, 7 in front
    col_face = _random_color(rng, background_color)
    for face in faces:
        cv2.fillPoly(img, [cube[face].reshape(-1, 1, 2).astype(np.int32)], col_face)
    thickness = _int_range(rng, min_dim * 0.003, min_dim * 0.015)
    for face in faces:
        for j in range(4):
            col_edge = (col_face + 128 + int(rng.integers(-64, 64))) % 256
            start, end = cube[face[j]], cube[face[(j + 1) % 4]]
            _line(img, start, end, col_edge, thickness)
    return _inside(cube[1:], img.shape)


def gaussian_noise(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Uniform grey noise over the whole canvas (the reference's ``gaussian_noise``); no points."""
    img[...] = rng.integers(0, 255, size=img.shape, dtype=np.uint8)
    return np.empty((0, 2), np.int64)


# The same primitives, under the same names and in the same order, as the fast renderer's
# (shape_primitives.PRIMITIVES): each is this module's function of that name.
REFERENCE_DRAW_FUNCTIONS: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    name: globals()[name] for name in PRIMITIVES
}


def render_reference_shape(
    rng: np.random.Generator,
    primitive: str,
    size: tuple[int, int] = (120, 160),
    generation_factor: int = 8,
    blur_size: int = _BLUR_SIZE,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``primitive`` on a ``generation_factor``x canvas, blur, resize to ``size``.

    Returns (image uint8 [H, W], points float64 [N, 2] (x, y) in target pixels, pixel centres
    at integers, clipped to ``[0, W-1] x [0, H-1]``).
    """
    if primitive not in REFERENCE_DRAW_FUNCTIONS:
        raise ValueError(
            f"primitive: expected one of {list(REFERENCE_DRAW_FUNCTIONS)}, got {primitive!r}"
        )
    height, width = size
    canvas = (height * generation_factor, width * generation_factor)
    img = generate_reference_background(rng, canvas)
    points = REFERENCE_DRAW_FUNCTIONS[primitive](img, rng).astype(np.float64).reshape(-1, 2)
    img = cv2.GaussianBlur(img, (blur_size, blur_size), 0)
    img = cv2.resize(img, (width, height), interpolation=cv2.INTER_LINEAR)
    # Canvas pixel centre p -> target (p + 0.5) * s - 0.5 (the resize's own mapping).
    points = (points + 0.5) / generation_factor - 0.5
    points[:, 0] = np.clip(points[:, 0], 0.0, width - 1)
    points[:, 1] = np.clip(points[:, 1], 0.0, height - 1)
    return img, points
