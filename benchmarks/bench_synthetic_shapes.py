"""Synthetic Shapes generation speed: pixelwise (render at target size, 4x supersampled) vs the reference approach.

The baseline re-implements, in this file, how the SuperPoint reference (rpautrat/SuperPoint,
``synthetic_dataset.py`` + ``magic-point_shapes.yaml``) makes an image: thresholded-noise
background with 100 blobs and a 150-500 px box blur at 960x1280, the primitive drawn there
with integer coordinates (multiple polygons filled with 3000-blob textures), Gaussian blur
21x21, ``cv2.resize`` INTER_LINEAR to 120x160. Both pipelines then get the same photometric
and homographic augmentation (the reference applies it at 120x160 too), so "with aug" ratios
compare complete items. One thread (cv2 and torch); times are CPU time of this process, which
other processes on the machine disturb less than wall time.

Usage: ``.venv/bin/python benchmarks/bench_synthetic_shapes.py [--quick]``
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_line  # noqa: E402

from pixelwise.data.photometric import photometric_augment  # noqa: E402
from pixelwise.data.synthetic_shapes import (  # noqa: E402
    HOMOGRAPHY_PARAMS,
    PRIMITIVE_WEIGHTS,
    PRIMITIVES,
    SyntheticShapes,
    warp_image_and_points,
)
from pixelwise.geometry.homography import sample_homography_np  # noqa: E402

FULL = (960, 1280)
TARGET = (120, 160)


# ---- baseline: the reference generator, re-implemented ------------------------------------
def _color(rng: np.random.Generator, bg: int) -> int:
    c = int(rng.integers(256))
    return (c + 128) % 256 if abs(c - bg) < 30 else c


def _different_color(rng: np.random.Generator, prev: list[int]) -> int:
    c, count = int(rng.integers(256)), 0
    while any(abs(p - c) < 50 for p in prev) and count < 20:
        c, count = int(rng.integers(256)), count + 1
    return c


def ref_background(rng: np.random.Generator) -> np.ndarray:
    """Thresholded uniform noise, 100 contrasting discs, 150-500 px box blur (960x1280)."""
    img = np.empty(FULL, np.uint8)
    img[:] = rng.integers(0, 255, FULL, dtype=np.uint8)
    cv2.threshold(img, int(rng.integers(256)), 255, cv2.THRESH_BINARY, img)
    bg = int(img.mean())
    dim = max(FULL)
    for _ in range(100):
        cv2.circle(
            img,
            (int(rng.integers(FULL[1])), int(rng.integers(FULL[0]))),
            int(rng.integers(int(dim * 0.02), int(dim * 0.031))),
            _color(rng, bg),
            -1,
        )
    k = int(rng.integers(150, 500))
    cv2.blur(img, (k, k), img)
    return img


def _ccw(a, b, c):  # noqa: ANN001, ANN202
    return (c[..., 1] - a[..., 1]) * (b[..., 0] - a[..., 0]) > (b[..., 1] - a[..., 1]) * (
        c[..., 0] - a[..., 0]
    )


def _intersect(a, b, c, d) -> bool:  # noqa: ANN001
    return bool(np.any((_ccw(a, c, d) != _ccw(b, c, d)) & (_ccw(a, b, c) != _ccw(a, b, d))))


def _keep_inside(points: np.ndarray) -> np.ndarray:
    p = np.asarray(points).reshape(-1, 2)
    return p[(p[:, 0] >= 0) & (p[:, 0] < FULL[1]) & (p[:, 1] >= 0) & (p[:, 1] < FULL[0])]


def _polygon(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    n = int(rng.integers(3, 8))
    min_dim = min(img.shape)
    rad = max(rng.random() * min_dim / 2, min_dim / 10)
    x, y = int(rng.integers(rad, img.shape[1] - rad)), int(rng.integers(rad, img.shape[0] - rad))
    sl = np.linspace(0, 2 * math.pi, n + 1)
    ang = [sl[i] + rng.random() * (sl[i + 1] - sl[i]) for i in range(n)]
    pts = np.array(
        [
            [
                int(x + max(rng.random(), 0.4) * rad * math.cos(a)),
                int(y + max(rng.random(), 0.4) * rad * math.sin(a)),
            ]
            for a in ang
        ]
    )
    pts = pts[[np.linalg.norm(pts[i - 1] - pts[i]) > 0.01 for i in range(len(pts))]]
    if len(pts) >= 3:
        m = len(pts)
        angles = []
        for i in range(m):
            v1, v2 = pts[i - 1] - pts[i], pts[(i + 1) % m] - pts[i]
            cosv = np.dot(v1, v2) / (np.linalg.norm(v1) * np.linalg.norm(v2))
            angles.append(np.arccos(np.clip(cosv, -1, 1)))
        pts = pts[np.array(angles) < 2 * math.pi / 3]
    return pts, (x, y), rad


def ref_draw_lines(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    bg, min_dim = int(img.mean()), min(img.shape)
    segs, pts = np.empty((0, 4)), []
    for _ in range(int(rng.integers(1, 10))):
        s = np.array([rng.integers(img.shape[1]), rng.integers(img.shape[0]), rng.integers(img.shape[1]),
                      rng.integers(img.shape[0])])  # fmt: skip
        if _intersect(segs[:, 0:2], segs[:, 2:4], s[None, 0:2], s[None, 2:4]):
            continue
        segs = np.concatenate([segs, s[None]])
        th = int(rng.integers(int(min_dim * 0.01), int(min_dim * 0.02)))
        cv2.line(img, (int(s[0]), int(s[1])), (int(s[2]), int(s[3])), _color(rng, bg), th)
        pts += [s[0:2], s[2:4]]
    return np.array(pts).reshape(-1, 2)


def ref_draw_polygon(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    while True:
        pts, _, _ = _polygon(rng, img)
        if len(pts) >= 3:
            break
    cv2.fillPoly(img, [pts.reshape(-1, 1, 2).astype(np.int32)], _color(rng, int(img.mean())))
    return pts


def _custom_background(rng: np.random.Generator, shape: tuple[int, int], bg: int) -> np.ndarray:
    img = np.full(shape, _color(rng, bg), np.uint8)
    for _ in range(3000):
        cv2.circle(img, (int(rng.integers(shape[1])), int(rng.integers(shape[0]))), int(rng.integers(20)),
                   _color(rng, bg), -1)  # fmt: skip
    k = int(rng.integers(50, 100))
    cv2.blur(img, (k, k), img)
    return img


def ref_draw_multiple_polygons(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    bg = int(img.mean())
    segs, centers, rads, pts_all = np.empty((0, 4)), [], [], []
    for _ in range(30):
        pts, c, rad = _polygon(rng, img)
        if len(pts) < 3:
            continue
        new = np.concatenate([pts, np.roll(pts, -1, axis=0)], axis=1).astype(float)
        nested = any(
            np.linalg.norm(np.subtract(c, ci)) + min(rad, ri) < max(rad, ri)
            for ci, ri in zip(centers, rads)
        )
        if nested or _intersect(
            segs[:, None, 0:2], segs[:, None, 2:4], new[None, :, 0:2], new[None, :, 2:4]
        ):
            continue
        centers.append(c)
        rads.append(rad)
        segs = np.concatenate([segs, new])
        mask = np.zeros(img.shape, np.uint8)
        tex = _custom_background(rng, img.shape, bg)
        cv2.fillPoly(mask, [pts.reshape(-1, 1, 2).astype(np.int32)], 255)
        locs = np.where(mask != 0)
        img[locs] = tex[locs]
        pts_all.append(pts)
    return np.concatenate(pts_all) if pts_all else np.empty((0, 2))


def ref_draw_ellipses(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    bg, min_dim = int(img.mean()), min(img.shape) / 4
    centers, rads = np.empty((0, 2)), np.empty((0,))
    for _ in range(20):
        ax, ay = (
            int(max(rng.random() * min_dim, min_dim / 5)),
            int(max(rng.random() * min_dim, min_dim / 5)),
        )
        r = max(ax, ay)
        c = np.array([rng.integers(r, img.shape[1] - r), rng.integers(r, img.shape[0] - r)])
        if np.any(r > np.linalg.norm(centers - c, axis=1) - rads):
            continue
        centers, rads = np.concatenate([centers, c[None]]), np.append(rads, r)
        cv2.ellipse(
            img, (int(c[0]), int(c[1])), (ax, ay), rng.random() * 90, 0, 360, _color(rng, bg), -1
        )
    return np.empty((0, 2))


def ref_draw_star(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n, min_dim = int(rng.integers(3, 6)), min(img.shape)
    th = int(rng.integers(int(min_dim * 0.01), int(min_dim * 0.02)))
    rad = max(rng.random() * min_dim / 2, min_dim / 5)
    x, y = int(rng.integers(rad, img.shape[1] - rad)), int(rng.integers(rad, img.shape[0] - rad))
    sl = np.linspace(0, 2 * math.pi, n + 1)
    ang = [sl[i] + rng.random() * (sl[i + 1] - sl[i]) for i in range(n)]
    tips = [[int(x + max(rng.random(), 0.3) * rad * math.cos(a)), int(y + max(rng.random(), 0.3) * rad * math.sin(a))]
            for a in ang]  # fmt: skip
    bg = int(img.mean())
    for t in tips:
        cv2.line(img, (x, y), (t[0], t[1]), _color(rng, bg), th)
    return np.array([[x, y]] + tips)


def _board_warp(rng: np.random.Generator, shape: tuple[int, int], params: tuple[float, float]):  # noqa: ANN202
    alpha = max(shape) * (params[0] + rng.random() * params[1])
    c = np.float32(shape) // 2
    s = min(shape) // 3
    p1 = np.float32([c + s, [c[0] + s, c[1] - s], c - s, [c[0] - s, c[1] + s]])
    aff = cv2.getAffineTransform(
        p1[:3], (p1 + rng.uniform(-alpha, alpha, p1.shape)).astype(np.float32)[:3]
    )
    per = cv2.getPerspectiveTransform(
        p1, (p1 + rng.uniform(-alpha / 2, alpha / 2, p1.shape)).astype(np.float32)
    )

    def apply(points: np.ndarray) -> np.ndarray:
        p = points @ aff[:, :2].T + aff[:, 2]
        q = p @ per[:2, :2].T + per[:2, 2]
        return (q / (p @ per[2, :2] + per[2, 2])[:, None]).astype(int)

    return apply


def ref_draw_checkerboard(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    bg = int(img.mean())
    rows, cols = int(rng.integers(3, 7)), int(rng.integers(3, 7))
    s = min((img.shape[1] - 1) // cols, (img.shape[0] - 1) // rows)
    gx, gy = np.meshgrid(np.arange(cols + 1), np.arange(rows + 1))
    w = _board_warp(rng, img.shape, (0.05, 0.15))(
        s * np.stack([gx.ravel(), gy.ravel()], 1).astype(float)
    )
    colors = []
    for i in range(rows):
        for j in range(cols):
            nb = ([colors[(i - 1) * cols + j]] if i else []) + ([colors[-1]] if j else [])
            col = _color(rng, bg) if not nb else _different_color(rng, nb)
            colors.append(col)
            k = i * (cols + 1) + j
            cv2.fillConvexPoly(img, w[[k, k + 1, k + cols + 2, k + cols + 1]].astype(np.int32), col)
    min_dim = min(img.shape)
    th = int(rng.integers(int(min_dim * 0.01), int(min_dim * 0.015)))
    for _ in range(int(rng.integers(2, rows + 2))):
        r, a, b = (
            int(rng.integers(rows + 1)),
            int(rng.integers(cols + 1)),
            int(rng.integers(cols + 1)),
        )
        p, q = w[r * (cols + 1) + a], w[r * (cols + 1) + b]
        cv2.line(img, (int(p[0]), int(p[1])), (int(q[0]), int(q[1])), _color(rng, bg), th)
    for _ in range(int(rng.integers(2, cols + 2))):
        c, a, b = (
            int(rng.integers(cols + 1)),
            int(rng.integers(rows + 1)),
            int(rng.integers(rows + 1)),
        )
        p, q = w[a * (cols + 1) + c], w[b * (cols + 1) + c]
        cv2.line(img, (int(p[0]), int(p[1])), (int(q[0]), int(q[1])), _color(rng, bg), th)
    return _keep_inside(w)


def ref_draw_stripes(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    bg, min_dim = int(img.mean()), min(img.shape)
    bh, bw = int(img.shape[0] * (1 + rng.random())), int(img.shape[1] * (1 + rng.random()))
    n = int(rng.integers(5, 13))
    xs = np.unique(np.concatenate([bw * rng.random(n - 1), [0, bw - 1]]).astype(int))
    xs = xs[np.diff(np.append(xs, bw + min_dim * 0.04)) >= min_dim * 0.04]
    n = len(xs) - 1
    pts = np.concatenate(
        [np.stack([xs, np.zeros_like(xs)], 1), np.stack([xs, np.full_like(xs, bh - 1)], 1)]
    )
    w = _board_warp(rng, img.shape, (0.1, 0.1))(pts.astype(float))
    col = _color(rng, bg)
    for i in range(n):
        col = (col + 128 + int(rng.integers(-30, 30))) % 256
        cv2.fillConvexPoly(img, w[[i, i + 1, i + n + 2, i + n + 1]].astype(np.int32), col)
    th = int(rng.integers(int(min_dim * 0.01), int(min_dim * 0.015)))
    for _ in range(int(rng.integers(2, 5))):
        r = int(rng.choice([0, n + 1]))
        p, q = w[r + int(rng.integers(n + 1))], w[r + int(rng.integers(n + 1))]
        cv2.line(img, (int(p[0]), int(p[1])), (int(q[0]), int(q[1])), _color(rng, bg), th)
    for _ in range(int(rng.integers(2, n + 2))):
        c = int(rng.integers(n + 1))
        p, q = w[c], w[c + n + 1]
        cv2.line(img, (int(p[0]), int(p[1])), (int(q[0]), int(q[1])), _color(rng, bg), th)
    return _keep_inside(w)


def ref_draw_cube(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    bg, min_dim = int(img.mean()), min(img.shape)
    lx, ly, lz = min_dim * 0.2 + rng.random(3) * 2 * min_dim / 3
    bits = np.array([[(i >> k) & 1 for k in range(3)] for i in range(8)], float)
    a = rng.random(3) * 3 * math.pi / 10 + math.pi / 10
    c, s = np.cos(a), np.sin(a)
    r1 = np.array([[c[0], -s[0], 0], [s[0], c[0], 0], [0, 0, 1]])
    r2 = np.array([[1, 0, 0], [0, c[1], -s[1]], [0, s[1], c[1]]])
    r3 = np.array([[c[2], 0, -s[2]], [0, 1, 0], [s[2], 0, c[2]]])
    sc = np.diag(0.4 + rng.random(3) * 0.6)
    h, w = img.shape
    t = np.array(
        [w * 0.5 + rng.integers(-w * 0.2, w * 0.2), h * 0.5 + rng.integers(-h * 0.2, h * 0.2), 0]
    )
    cube = (t + (bits * [lx, ly, lz]) @ (sc @ r1 @ r2 @ r3).T)[:, :2].astype(int)
    faces = np.array([[7, 3, 1, 5], [7, 5, 4, 6], [7, 6, 2, 3]])
    col = _color(rng, bg)
    for f in faces:
        cv2.fillPoly(img, [cube[f].reshape(-1, 1, 2).astype(np.int32)], col)
    th = int(rng.integers(int(min_dim * 0.003), int(min_dim * 0.015)))
    for f in faces:
        for j in range(4):
            p, q = cube[f[j]], cube[f[(j + 1) % 4]]
            cv2.line(
                img,
                (int(p[0]), int(p[1])),
                (int(q[0]), int(q[1])),
                (col + 128 + int(rng.integers(-64, 64))) % 256,
                th,
            )
    return _keep_inside(cube[1:])


def ref_gaussian_noise(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    img[:] = rng.integers(0, 255, img.shape, dtype=np.uint8)
    return np.empty((0, 2))


REFERENCE = {
    "draw_lines": ref_draw_lines,
    "draw_polygon": ref_draw_polygon,
    "draw_multiple_polygons": ref_draw_multiple_polygons,
    "draw_ellipses": ref_draw_ellipses,
    "draw_star": ref_draw_star,
    "draw_checkerboard": ref_draw_checkerboard,
    "draw_stripes": ref_draw_stripes,
    "draw_cube": ref_draw_cube,
    "gaussian_noise": ref_gaussian_noise,
}


def reference_item(
    primitive: str, rng: np.random.Generator, augment: bool
) -> tuple[np.ndarray, np.ndarray]:
    """One baseline item: render at 960x1280, blur 21x21, resize to 120x160 (+ the same augmentation)."""
    img = ref_background(rng)
    pts = REFERENCE[primitive](img, rng).astype(np.float64)
    img = cv2.GaussianBlur(img, (21, 21), 0)
    pts = pts * (TARGET[0] / FULL[0])
    img = cv2.resize(img, TARGET[::-1], interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255.0
    if augment:
        homography = sample_homography_np(rng, TARGET, **HOMOGRAPHY_PARAMS)
        img = photometric_augment(img, rng)
        img, pts, _ = warp_image_and_points(img, pts, homography, 3)
    return img, pts


# ---- measurement --------------------------------------------------------------------------
def _per_image(fn, n: int) -> float:  # noqa: ANN001
    """CPU seconds per call of fn(i) over n calls (best of 2 runs, to damp machine noise)."""
    best = math.inf
    for _ in range(2):
        t0 = time.process_time()
        for i in range(n):
            fn(i)
        best = min(best, (time.process_time() - t0) / n)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer images (< 60 s)")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    n_ref, n_ours = (3, 40) if args.quick else (15, 300)
    # Few baseline multiple-polygon images: each takes ~0.2 s.
    n_ref_slow = 2 if args.quick else 6

    rows = []
    weights = np.array([PRIMITIVE_WEIGHTS[p] for p in PRIMITIVES])
    weights = weights / weights.sum()
    totals = {"ref": 0.0, "ref_aug": 0.0, "ours": 0.0, "ours_aug": 0.0}
    for prim, wgt in zip(PRIMITIVES, weights):
        nr = n_ref_slow if prim == "draw_multiple_polygons" else n_ref
        t_ref = _per_image(lambda i, p=prim: reference_item(p, np.random.default_rng(i), False), nr)
        t_ref_aug = _per_image(
            lambda i, p=prim: reference_item(p, np.random.default_rng(i), True), nr
        )
        plain = SyntheticShapes(
            length=10**6, primitives=[prim], photometric=False, homographic=False
        )
        full = SyntheticShapes(length=10**6, primitives=[prim])
        t_ours = _per_image(lambda i, d=plain: d[i], n_ours)
        t_ours_aug = _per_image(lambda i, d=full: d[i], n_ours)
        rows.append((prim, wgt, t_ref, t_ours, t_ref_aug, t_ours_aug))
        for key, t in zip(totals, (t_ref, t_ref_aug, t_ours, t_ours_aug)):
            totals[key] += wgt * t

    # The real dataset with the reference mix, item by item (torch tensors included).
    mix = SyntheticShapes(length=10**6)
    t_mix = _per_image(lambda i: mix[i], n_ours * 3)

    print("## Synthetic Shapes generation, 120x160, one thread (images/s of CPU time)\n")
    print(
        "| primitive | mix weight | reference render (re-implemented here, measured in this run) | ours render | ratio "
        "| reference + aug (measured in this run) | ours + aug | ratio |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for prim, wgt, t_ref, t_ours, t_ref_aug, t_ours_aug in rows:
        print(
            f"| {prim} | {wgt:.3f} | {1 / t_ref:.1f} | {1 / t_ours:.0f} | {t_ref / t_ours:.1f}x "
            f"| {1 / t_ref_aug:.1f} | {1 / t_ours_aug:.0f} | {t_ref_aug / t_ours_aug:.1f}x |"
        )
    print(
        f"| **mix (weighted)** | 1 | {1 / totals['ref']:.1f} | {1 / totals['ours']:.0f} | "
        f"**{totals['ref'] / totals['ours']:.1f}x** | {1 / totals['ref_aug']:.1f} | {1 / totals['ours_aug']:.0f} | "
        f"**{totals['ref_aug'] / totals['ours_aug']:.1f}x** |"
    )
    print(
        f"\nSyntheticShapes(...)[i] with the reference mix and augmentation: {1 / t_mix:.0f} images/s"
    )
    print(
        f"images per primitive: reference {n_ref} ({n_ref_slow} for multiple polygons), ours {n_ours}"
    )
    print(machine_line())


if __name__ == "__main__":
    main()
