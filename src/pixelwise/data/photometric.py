"""Photometric augmentation of grey images float32 [H, W] in [0, 1], numpy + OpenCV.

The six operations and their default ranges are those of the SuperPoint reference
(rpautrat/SuperPoint ``photometric_augmentation.py`` with the ``magic-point_shapes.yaml``
parameters), with grey levels divided by 255. Every function draws its randomness from the
``numpy.random.Generator`` it is given, so results are reproducible; spatial sizes are in
pixels of the image they are applied to (the reference config is for 120x160).
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

__all__ = [
    "PHOTOMETRIC_OPS",
    "NOISE_OPS",
    "random_brightness",
    "random_contrast",
    "additive_gaussian_noise",
    "additive_speckle_noise",
    "additive_shade",
    "motion_blur",
    "photometric_augment",
]


def random_brightness(
    image: np.ndarray, rng: np.random.Generator, max_abs_change: float = 75 / 255
) -> np.ndarray:
    """Add one uniform offset in [-max_abs_change, max_abs_change] and clip to [0, 1]: [H,W] -> [H,W]."""
    out = image + np.float32(rng.uniform(-max_abs_change, max_abs_change))
    return np.clip(out, 0.0, 1.0, out=out)


def random_contrast(
    image: np.ndarray, rng: np.random.Generator, strength_range: tuple[float, float] = (0.3, 1.8)
) -> np.ndarray:
    """Scale deviations from the image mean by a uniform factor in ``strength_range``, clip: [H,W] -> [H,W]."""
    factor = float(rng.uniform(*strength_range))
    mean = cv2.mean(image)[0]
    # (x - mean) * factor + mean as one affine pass.
    out = image * np.float32(factor) + np.float32(mean * (1.0 - factor))
    return np.clip(out, 0.0, 1.0, out=out)


def additive_gaussian_noise(
    image: np.ndarray, rng: np.random.Generator, stddev_range: tuple[float, float] = (0.0, 15 / 255)
) -> np.ndarray:
    """Add N(0, s^2) per pixel with s uniform in ``stddev_range``, clip: [H,W] -> [H,W]."""
    std = float(rng.uniform(*stddev_range))
    noise = np.empty(image.shape, np.float32)
    # OpenCV's normal generator is ~4x faster than numpy's; seeded from rng to stay reproducible.
    cv2.setRNGSeed(int(rng.integers(1, 2**31 - 1)))
    cv2.randn(noise, 0.0, std)
    noise += image
    return np.clip(noise, 0.0, 1.0, out=noise)


def additive_speckle_noise(
    image: np.ndarray, rng: np.random.Generator, prob_range: tuple[float, float] = (0.0, 0.0035)
) -> np.ndarray:
    """Set a fraction p (uniform in ``prob_range``) of pixels to 0 and as many to 1: [H,W] -> [H,W].

    The reference thresholds one uniform draw per pixel; we draw the binomial counts and the
    positions, which has the same distribution up to (rare) repeated positions and is cheaper.
    """
    prob = rng.uniform(*prob_range)
    out = image.astype(np.float32, copy=True)
    flat = out.reshape(-1)
    n_black, n_white = rng.binomial(flat.size, prob, size=2)
    flat[rng.integers(flat.size, size=n_black)] = 0.0
    flat[rng.integers(flat.size, size=n_white)] = 1.0
    return out


def additive_shade(
    image: np.ndarray,
    rng: np.random.Generator,
    nb_ellipses: int = 20,
    transparency_range: tuple[float, float] = (-0.5, 0.8),
    kernel_size_range: tuple[int, int] = (50, 100),
) -> np.ndarray:
    """Darken/brighten by a heavily blurred mask of random ellipses: image * (1 - t * mask): [H,W] -> [H,W].

    The mask is blurred by a Gaussian of kernel size k in ``kernel_size_range`` (sigma of
    OpenCV's default for k, >= 7.8 px), so it has no detail finer than a few pixels: we draw
    and blur it at a quarter of the resolution and upsample it bilinearly, 16x cheaper.
    """
    h, w = image.shape
    min_dim = min(h, w) / 4
    down = 4 if min(h, w) >= 32 else 1
    sh, sw = -(-h // down), -(-w // down)
    mask = np.zeros((sh, sw), np.uint8)
    u = rng.random((nb_ellipses, 5))  # ax, ay, x, y, angle
    axes = np.maximum(u[:, :2] * min_dim, min_dim / 5)
    max_rad = axes.max(axis=1)
    centers = np.stack(
        [max_rad + u[:, 2] * (w - 2 * max_rad), max_rad + u[:, 3] * (h - 2 * max_rad)], axis=1
    )
    # Pixel x of the full image lies at (x + 0.5) / down - 0.5 in the small one; 4 fractional bits.
    centers_fixed = np.round(((centers + 0.5) / down - 0.5) * 16).astype(np.int64).tolist()
    axes_fixed = np.round(axes / down * 16).astype(np.int64).tolist()
    for c, a, angle in zip(centers_fixed, axes_fixed, (u[:, 4] * 90).tolist(), strict=True):
        cv2.ellipse(mask, tuple(c), tuple(a), angle, 0, 360, 255, -1, cv2.LINE_8, 4)
    transparency = np.float32(rng.uniform(*transparency_range))
    kernel_size = int(rng.integers(*kernel_size_range))
    if kernel_size % 2 == 0:
        kernel_size += 1
    sigma = 0.3 * ((kernel_size - 1) * 0.5 - 1) + 0.8  # OpenCV's sigma for this kernel size
    # Blur the 0/255 mask, then fold 1 - t * mask / 255 into one affine conversion.
    small = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), sigma / down)
    if down > 1:
        small = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    factor = small * np.float32(-transparency / 255.0)
    factor += np.float32(1.0)
    factor *= image
    return np.clip(factor, 0.0, 1.0, out=factor)


def motion_blur(
    image: np.ndarray, rng: np.random.Generator, max_kernel_size: int = 7
) -> np.ndarray:
    """Blur along a horizontal, vertical or diagonal line, odd kernel size <= max_kernel_size: [H,W] -> [H,W]."""
    mode = int(rng.integers(4))  # horizontal, vertical, diagonal down, diagonal up
    ksize = int(rng.integers(0, (max_kernel_size + 1) // 2)) * 2 + 1
    if ksize == 1:
        return image
    center = (ksize - 1) // 2
    kernel = np.zeros((ksize, ksize), np.float32)
    if mode == 0:
        kernel[center, :] = 1.0
    elif mode == 1:
        kernel[:, center] = 1.0
    elif mode == 2:
        kernel = np.eye(ksize, dtype=np.float32)
    else:
        kernel = np.flip(np.eye(ksize, dtype=np.float32), 0)
    var = ksize * ksize / 16.0
    grid = np.arange(ksize)[:, None].repeat(ksize, axis=1)
    gaussian = np.exp(-((grid - center) ** 2 + (grid.T - center) ** 2) / (2.0 * var))
    kernel = kernel * gaussian.astype(np.float32)
    kernel /= kernel.sum()
    return cv2.filter2D(image, -1, kernel)


PHOTOMETRIC_OPS: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "random_brightness": random_brightness,
    "random_contrast": random_contrast,
    "additive_speckle_noise": additive_speckle_noise,
    "additive_gaussian_noise": additive_gaussian_noise,
    "additive_shade": additive_shade,
    "motion_blur": motion_blur,
}
NOISE_OPS: frozenset[str] = frozenset({"additive_gaussian_noise", "additive_speckle_noise"})


def photometric_augment(
    image: np.ndarray,
    rng: np.random.Generator,
    photometric: bool = True,
    add_noise: bool | None = None,
    random_order: bool = True,
) -> np.ndarray:
    """Apply the reference's photometric operations in random order: float32 [H,W] -> [H,W] in [0, 1].

    ``photometric`` switches all six on; ``add_noise`` overrides the two noise operations
    (Gaussian and speckle): ``True`` applies them even when ``photometric`` is off, ``False``
    never applies them, ``None`` follows ``photometric``. The random order is drawn first
    (over all six) so the draws do not depend on which are switched off.
    """
    names = list(PHOTOMETRIC_OPS)
    order = rng.permutation(len(names)) if random_order else np.arange(len(names))
    for k in order:
        name = names[k]
        on = (
            (add_noise if add_noise is not None else photometric)
            if name in NOISE_OPS
            else photometric
        )
        if on:
            image = PHOTOMETRIC_OPS[name](image, rng)
    return image
