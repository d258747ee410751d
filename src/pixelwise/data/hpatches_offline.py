"""A small HPatches-format set from real photographs (scikit-image), warped by known homographies.

``write_hpatches_fixture(root)`` writes ``root/hpatches-sequences-release/{i_*,v_*}/{1..6}.ppm`` and
``H_1_2 .. H_1_6`` exactly like the release:

- ``i_<photo>``: a fixed camera under changing light. Image 1 is the photograph; images 2..6
  apply a gamma, gain, colour tint and a smooth illumination ramp growing with k, plus sensor
  noise; the homographies are the identity.
- ``v_<photo>``: viewpoint changes. Image 1 is the centre of a larger canvas made from the
  photograph, so that other views show real content beyond image 1's frame (as in HPatches);
  image k is the canvas seen through a homography whose corner displacement and rotation grow
  with k, rendered at a size that differs a little from image 1's (as some HPatches
  sequences do); ``H_1_k`` maps image-1 pixels (x, y) to image-k pixels, pixel centres at integers.

Everything is deterministic for a given seed. No network: the photographs ship with scikit-image.
``PHOTO_SPLITS`` follows :data:`pixelwise.data.sample_images.SPLITS`: ``val`` for recipe choice,
``test`` for the README's final SuperPoint / ORB / SIFT table, scored once::

    python -m pixelwise.data.hpatches_offline DIR --photos test --illumination 8 --viewpoint 16 --difficulty 3

matplotlib's and scikit-learn's sample photographs are reserved for evaluation outside the
project and are not offered here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import skimage.data
import torch
from PIL import Image

from pixelwise.data.sample_images import (
    SAMPLE_IMAGES,
    TEST_IMAGES,
    TRAIN_IMAGES,
    VAL_IMAGES,
)
from pixelwise.geometry.homography import warp_images

# Photographs with texture first (the tests use the first four). Not skimage's "clock": too
# smooth for ORB to find a single corner.
PHOTOS = (
    "astronaut",
    "coffee",
    "camera",
    "chelsea",
    "rocket",
    "motorcycle",
    "coins",
    "immunohistochemistry",
    "hubble_deep_field",
    "gravel",
    "page",
    "brick",
)


def _photo_split(names: tuple[str, ...]) -> tuple[str, ...]:
    # The stereo pair is one scene: its left view stands for it here.
    return tuple(dict.fromkeys("motorcycle" if n.startswith("motorcycle") else n for n in names))


PHOTO_SPLITS: dict[str, tuple[str, ...]] = {
    "train": _photo_split(TRAIN_IMAGES),
    "val": _photo_split(VAL_IMAGES),
    "test": _photo_split(TEST_IMAGES),
    "all": PHOTOS,
}


def photo(name: str) -> np.ndarray:
    """A scikit-image photograph as uint8 [H, W, 3] RGB ("motorcycle": the stereo pair's left view)."""
    if name == "motorcycle":
        image = skimage.data.stereo_motorcycle()[0]
    elif name not in SAMPLE_IMAGES:
        raise ValueError(
            f"unknown photograph {name!r}: expected 'motorcycle' or one of {list(SAMPLE_IMAGES)}"
        )
    else:
        image = getattr(skimage.data, name)()
    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return np.ascontiguousarray(image[..., :3])


def _warp(canvas: np.ndarray, homography: np.ndarray, out_shape: tuple[int, int]) -> np.ndarray:
    """uint8 canvas [H, W, 3] seen through H (canvas -> output pixels) -> float [h, w, 3] in [0, 255]."""
    t = torch.from_numpy(canvas).permute(2, 0, 1)[None].double()
    warped = warp_images(t, torch.from_numpy(homography), out_shape=out_shape)
    return warped[0].permute(1, 2, 0).numpy()


def _save(path: Path, image: np.ndarray, rng: np.random.Generator, noise: float) -> None:
    image = image + rng.normal(0.0, noise, image.shape)
    Image.fromarray(np.clip(image, 0, 255).round().astype(np.uint8)).save(path)


def _write_h(path: Path, homography: np.ndarray) -> None:
    np.savetxt(path, homography / homography[2, 2], fmt="%.12g")


def _viewpoint_homography(
    shape: tuple[int, int],
    out_shape: tuple[int, int],
    k: int,
    rng: np.random.Generator,
    difficulty: float,
) -> np.ndarray:
    """H [3,3] from image-1 pixels (shape) to image-k pixels (out_shape): a view change growing with k and difficulty."""
    h, w = shape
    hk, wk = out_shape
    corners = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], dtype=np.float64)
    target = corners * [(wk - 1) / (w - 1), (hk - 1) / (h - 1)]
    centre = target.mean(axis=0)
    d = difficulty
    # in-plane rotation grows slowly with difficulty; zoom and perspective carry it
    angle = math.radians(rng.uniform(2.0, 5.0) * (k - 1) * math.sqrt(d)) * rng.choice([-1.0, 1.0])
    zoom = math.exp(rng.uniform(-0.1, 0.35) * (k - 1) / 5 * d)
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    target = (target - centre) @ rot.T * zoom + centre
    amplitude = 0.03 * (k - 1) * d * min(hk, wk)
    target = target + rng.uniform(-amplitude, amplitude, size=(4, 2))
    return cv2.getPerspectiveTransform(
        corners.astype(np.float32), target.astype(np.float32)
    ).astype(np.float64)


def _illumination(
    image: np.ndarray, k: int, rng: np.random.Generator, difficulty: float
) -> np.ndarray:
    """float [H, W, 3] in [0, 255]: gamma, gain, tint and smooth uneven light, growing with k and difficulty."""
    x = image.astype(np.float64) / 255.0
    strength = (k - 1) / 5.0 * difficulty
    gamma = math.exp(rng.choice([-1.0, 1.0]) * rng.uniform(0.3, 0.7) * strength)
    gain = max(0.25, 1.0 + rng.uniform(-0.6, 0.2) * strength)
    tint = 1.0 + rng.uniform(-0.1, 0.1, size=3) * strength
    h, w = x.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w] / float(max(h, w))
    theta = rng.uniform(0, 2 * math.pi)
    field = math.cos(theta) * (xx - 0.5) + math.sin(theta) * (yy - 0.5)
    for _ in range(3):  # soft light spots and shadows
        cx, cy = rng.uniform(0, w / max(h, w)), rng.uniform(0, h / max(h, w))
        radius = rng.uniform(0.1, 0.3)
        bump = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * radius**2))
        field = field + rng.uniform(-0.6, 0.6) * bump
    shading = np.clip(1.0 + 0.6 * strength * field, 0.15, None)
    out = (x**gamma) * tint[None, None, :] * shading[..., None] * gain
    # auto exposure: a camera would not let the brightest 0.5% of the pixels burn out
    top = np.percentile(out, 99.5)
    if top > 1.0:
        out = out / top
    return np.clip(out, 0, 1) * 255.0


def write_hpatches_fixture(
    root: str | Path,
    n_illumination: int = 2,
    n_viewpoint: int = 2,
    size: tuple[int, int] = (240, 320),
    seed: int = 0,
    vary_size: bool = True,
    difficulty: float = 1.0,
    photos: Sequence[str] = PHOTOS,
) -> Path:
    """Write ``root/hpatches-sequences-release`` with n_illumination i_* and n_viewpoint v_* sequences; return it.

    Image 1 of every sequence is ``size`` (H, W); viewpoint images 2..6 are up to 10% larger or
    smaller when ``vary_size``. ``difficulty`` scales the viewpoint change (zoom and perspective,
    rotation by its square root) and the illumination change of every k (1: moderate; 2: views
    zoomed up to 2x with strong keystones, and light far from the original). Sequences take
    the ``photos`` in order, cycling (names get a numeric suffix when there are more sequences
    than photographs: the same photograph under other random changes).
    """
    release = Path(root) / "hpatches-sequences-release"
    release.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    h, w = size
    kinds = ["i"] * n_illumination + ["v"] * n_viewpoint
    for index, kind in enumerate(kinds):
        name = photos[index % len(photos)]
        suffix = f"_{index // len(photos)}" if index >= len(photos) else ""
        seq = release / f"{kind}_{name}{suffix}"
        seq.mkdir(exist_ok=True)
        source = photo(name)
        if kind == "i":
            base = cv2.resize(source, (w, h), interpolation=cv2.INTER_AREA).astype(np.float64)
            _save(seq / "1.ppm", base, rng, 1.0)
            for k in range(2, 7):
                _save(seq / f"{k}.ppm", _illumination(base, k, rng, difficulty), rng, 2.0)
                _write_h(seq / f"H_1_{k}", np.eye(3))
            continue
        # A canvas twice the image with image 1 at its centre: other views see beyond image 1.
        ch, cw = 2 * h, 2 * w
        interp = cv2.INTER_AREA if ch * cw < source.shape[0] * source.shape[1] else cv2.INTER_LINEAR
        canvas = cv2.resize(source, (cw, ch), interpolation=interp)
        oy, ox = (ch - h) // 2, (cw - w) // 2
        canvas_to_1 = np.array([[1.0, 0.0, -ox], [0.0, 1.0, -oy], [0.0, 0.0, 1.0]])
        _save(seq / "1.ppm", canvas[oy : oy + h, ox : ox + w].astype(np.float64), rng, 1.0)
        for k in range(2, 7):
            scale = rng.uniform(0.9, 1.1) if vary_size else 1.0
            out_shape = (int(round(h * scale)), int(round(w * scale)))
            homography = _viewpoint_homography((h, w), out_shape, k, rng, difficulty)
            view = _warp(canvas, homography @ canvas_to_1, out_shape)
            _save(seq / f"{k}.ppm", view, rng, 1.0)
            _write_h(seq / f"H_1_{k}", homography)
    return release


def main(argv: list[str] | None = None) -> Path:
    """``pixelwise-hpatches-offline ROOT [options]``: write the set, print where; return its path."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="pixelwise-hpatches-offline",
        description="Write an HPatches-format set from offline photographs.",
    )
    parser.add_argument("root", help="the set is written to ROOT/hpatches-sequences-release")
    parser.add_argument(
        "--photos", default="val", help="train | val | test | all | comma-separated names"
    )
    parser.add_argument("--illumination", type=int, default=8, help="number of i_* sequences")
    parser.add_argument("--viewpoint", type=int, default=16, help="number of v_* sequences")
    parser.add_argument("--size", type=int, nargs=2, default=(240, 320), metavar=("H", "W"))
    parser.add_argument("--difficulty", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    names = PHOTO_SPLITS.get(args.photos) or tuple(args.photos.split(","))
    out = write_hpatches_fixture(
        args.root,
        args.illumination,
        args.viewpoint,
        tuple(args.size),
        args.seed,
        difficulty=args.difficulty,
        photos=names,
    )
    print(f"wrote {len(list(out.iterdir()))} sequences to {out}")
    return out


if __name__ == "__main__":
    main()
