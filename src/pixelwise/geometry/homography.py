"""Homographies: random sampling, warping of points and images, valid-region masks.

Convention (DESIGN.md): a homography ``H`` (3x3) maps homogeneous pixel coordinates
``(x, y, 1)`` of image A to image B, pixel centres at integer coordinates, and
``warp_images(a, H)`` returns the image B with ``B(H p) = A(p)``.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.special import ndtri

__all__ = [
    "SAMPLER_PARAMS",
    "check_image_shape",
    "merge_homography_params",
    "sample_homography",
    "sample_homography_np",
    "warp_points",
    "warp_images",
    "warp_images_with_mask",
    "warp_valid_mask",
]

# Truncated normal as in tf.truncated_normal: values beyond 2 standard deviations are redrawn.
_TRUNCATION = 2.0

_PHI_LO = 0.5 * math.erfc(_TRUNCATION / math.sqrt(2.0))  # Phi(-2)
# Unit-square corners TL, BL, BR, TR; the keystone's vertical shifts of a perspective draw.
_UNIT_X = np.array([0.0, 0.0, 1.0, 1.0])
_UNIT_Y = np.array([0.0, 1.0, 1.0, 0.0])
_KEYSTONE_Y = np.array([1.0, -1.0, 1.0, -1.0])
# uniform(size) -> float64 draws in [0, 1) of that shape: a torch generator's or a numpy one's.
_Uniform = Callable[[tuple[int, ...]], np.ndarray]


def _check_homography(homography: torch.Tensor, name: str = "homography") -> None:
    if not isinstance(homography, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of shape [3, 3] or [B, 3, 3], got {type(homography)}"
        )
    if homography.dim() not in (2, 3) or tuple(homography.shape[-2:]) != (3, 3):
        raise ValueError(
            f"{name} must have shape [3, 3] or [B, 3, 3], got {list(homography.shape)}"
        )


def check_image_shape(
    shape: Sequence[int], name: str = "shape", minimum: int = 1
) -> tuple[int, int]:
    """An image size as (height, width) ints, each >= ``minimum``; a ValueError naming ``name`` otherwise."""
    expected = f"{name} must be a pair (height, width) of ints >= {minimum}, got {shape!r}"
    try:
        height, width = (int(s) for s in shape)
    except (TypeError, ValueError):
        raise ValueError(expected) from None
    if height < minimum or width < minimum:
        raise ValueError(expected)
    return height, width


def _truncated_normal(
    uniform: _Uniform, size: tuple[int, ...], mean: float, std: float
) -> np.ndarray:
    """Normal(mean, std) truncated to mean +- 2 std, by inverse-CDF sampling of ``uniform`` draws (float64)."""
    if std <= 0:
        return np.full(size, float(mean))
    u = _PHI_LO + (1.0 - 2.0 * _PHI_LO) * uniform(size)
    return mean + std * ndtri(u)


def _centre(corners: np.ndarray) -> np.ndarray:
    """Mean of the four corners [B, 4] as [B, 1, 1] (against candidates [B, K, 4])."""
    return corners.sum(axis=1)[:, None, None] * 0.25


@functools.lru_cache(maxsize=32)
def _rotations(max_angle: float, n_angles: int) -> tuple[np.ndarray, np.ndarray]:
    """cos, sin [1 + n, 1] of angle 0 (the fallback) and ``n_angles`` angles evenly spaced in [-max_angle, max_angle]."""
    angles = np.concatenate([[0.0], np.linspace(-max_angle, max_angle, n_angles)])
    cos, sin = np.cos(angles)[:, None], np.sin(angles)[:, None]
    cos.flags.writeable = sin.flags.writeable = False
    return cos, sin


def _pick_valid(valid: np.ndarray, uniform: _Uniform) -> np.ndarray:
    """Index [B] of a uniformly random True entry per row of ``valid`` [B, K] (each row has one)."""
    return np.where(valid, uniform(valid.shape), -1.0).argmax(axis=1)


def _inside_unit_square(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Corners xs, ys [..., 4] -> [...] True iff all four lie in [0, 1)."""
    return ((xs >= 0.0) & (xs < 1.0) & (ys >= 0.0) & (ys < 1.0)).all(axis=-1)


def _quad_to_frame(xs: np.ndarray, ys: np.ndarray, width: int, height: int) -> np.ndarray:
    """[B, 3, 3] (float64, h33 = 1): the homography mapping the quad xs, ys [B, 4] (TL, BL, BR, TR; unit-square units) onto the frame, in pixels.

    Closed form: ``Q`` maps the unit square onto the quad (Heckbert's square-to-quad), its
    adjugate maps the quad back, and ``S = diag(W - 1, H - 1, 1)`` turns unit-square units
    into pixels, so ``H ~ S adj(Q) S^-1``.
    """
    x0, x3, x2, x1 = xs[:, 0], xs[:, 1], xs[:, 2], xs[:, 3]  # (0,0), (0,1), (1,1), (1,0)
    y0, y3, y2, y1 = ys[:, 0], ys[:, 1], ys[:, 2], ys[:, 3]
    sx, sy = x0 - x1 + x2 - x3, y0 - y1 + y2 - y3
    dx1, dx2, dy1, dy2 = x1 - x2, x3 - x2, y1 - y2, y3 - y2
    den = dx1 * dy2 - dx2 * dy1
    g, h = (sx * dy2 - dx2 * sy) / den, (dx1 * sy - sx * dy1) / den
    a, b, c = x1 - x0 + g * x1, x3 - x0 + h * x3, x0
    d, e, f = y1 - y0 + g * y1, y3 - y0 + h * y3, y0
    adj = np.stack(
        [e - f * h, c * h - b, b * f - c * e, f * g - d, a - c * g, c * d - a * f,
         d * h - e * g, b * g - a * h, a * e - b * d],
        axis=-1,
    ).reshape(-1, 3, 3)  # fmt: skip
    scale = np.array([width - 1.0, height - 1.0, 1.0])
    homography = adj * scale[:, None] / scale[None, :]
    return homography / homography[:, 2:3, 2:3]


def _check_sampler_args(
    batch_size: int,
    shape: tuple[int, int],
    patch_ratio: float,
    n_scales: int,
    n_angles: int,
    **amplitudes: float,
) -> tuple[int, int]:
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    height, width = check_image_shape(shape)
    if not 0.0 < patch_ratio <= 1.0:
        raise ValueError(f"patch_ratio must be in (0, 1], got {patch_ratio!r}")
    if n_scales < 1 or n_angles < 1:
        raise ValueError(
            f"n_scales and n_angles must be >= 1, got n_scales={n_scales!r}, n_angles={n_angles!r}"
        )
    for name, value in amplitudes.items():
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value!r}")
    return height, width


def _sample(
    uniform: _Uniform,
    batch_size: int,
    shape: tuple[int, int],
    perspective: bool,
    scaling: bool,
    rotation: bool,
    translation: bool,
    n_scales: int,
    n_angles: int,
    scaling_amplitude: float,
    perspective_amplitude_x: float,
    perspective_amplitude_y: float,
    patch_ratio: float,
    max_angle: float,
    allow_artifacts: bool,
    translation_overflow: float,
) -> np.ndarray:
    """The sampler of both paths: homographies [B, 3, 3] (float64) from ``uniform(size)`` draws in [0, 1)."""
    height, width = _check_sampler_args(
        batch_size,
        shape,
        patch_ratio,
        n_scales,
        n_angles,
        scaling_amplitude=scaling_amplitude,
        perspective_amplitude_x=perspective_amplitude_x,
        perspective_amplitude_y=perspective_amplitude_y,
        translation_overflow=translation_overflow,
    )
    b = batch_size
    rows = np.arange(b)
    # Corners TL, BL, BR, TR in unit-square coordinates: xs, ys [B, 4].
    margin = (1.0 - patch_ratio) / 2.0
    xs = np.tile(margin + patch_ratio * _UNIT_X, (b, 1))
    ys = np.tile(margin + patch_ratio * _UNIT_Y, (b, 1))

    if perspective:
        amp_x, amp_y = perspective_amplitude_x, perspective_amplitude_y
        if not allow_artifacts:
            amp_x, amp_y = min(amp_x, margin), min(amp_y, margin)
        disp_y = _truncated_normal(uniform, (b,), 0.0, amp_y / 2.0)
        disp_left = _truncated_normal(uniform, (b,), 0.0, amp_x / 2.0)
        disp_right = _truncated_normal(uniform, (b,), 0.0, amp_x / 2.0)
        # The left edge shifts by disp_left, the right by disp_right; opposite corners of
        # each vertical edge move towards/away from each other (a keystone).
        xs[:, :2] += disp_left[:, None]
        xs[:, 2:] += disp_right[:, None]
        ys += disp_y[:, None] * _KEYSTONE_Y

    if scaling:
        sampled = _truncated_normal(uniform, (b, n_scales), 1.0, scaling_amplitude / 2.0)
        scales = np.concatenate([np.ones((b, 1)), sampled], axis=1)[:, :, None]  # [B, 1 + n, 1]
        cx, cy = _centre(xs), _centre(ys)
        cand_x = (xs[:, None] - cx) * scales + cx  # [B, 1 + n, 4]
        cand_y = (ys[:, None] - cy) * scales + cy
        if allow_artifacts:
            valid = np.ones((b, n_scales + 1), dtype=bool)
            valid[:, 0] = False
        else:
            valid = _inside_unit_square(cand_x, cand_y)
            valid[:, 0] = True  # the unscaled patch is the fallback
        idx = _pick_valid(valid, uniform)
        xs, ys = cand_x[rows, idx], cand_y[rows, idx]

    if translation:
        # How far the patch may move towards 0 and towards 1.
        tx_min, ty_min = xs.min(axis=1), ys.min(axis=1)
        tx_max, ty_max = 1.0 - xs.max(axis=1), 1.0 - ys.max(axis=1)
        if allow_artifacts:
            tx_min, ty_min = tx_min + translation_overflow, ty_min + translation_overflow
            tx_max, ty_max = tx_max + translation_overflow, ty_max + translation_overflow
        u = uniform((b, 2))
        xs = xs + (-tx_min + u[:, 0] * (tx_min + tx_max))[:, None]
        ys = ys + (-ty_min + u[:, 1] * (ty_min + ty_max))[:, None]

    if rotation:
        # [1 + n] angles, angle 0 the fallback, as columns against [B, 1, 4] corners.
        cos, sin = _rotations(float(max_angle), int(n_angles))
        # Rotate in pixel units (the reference rotates the unit square, which shears
        # non-square images); then back to unit-square units for the inside test.
        cx, cy = _centre(xs), _centre(ys)
        dx = (xs[:, None] - cx) * (width - 1.0)
        dy = (ys[:, None] - cy) * (height - 1.0)
        cand_x = (cos * dx - sin * dy) / (width - 1.0) + cx  # [B, 1 + n, 4]
        cand_y = (sin * dx + cos * dy) / (height - 1.0) + cy
        if allow_artifacts:
            valid = np.ones((b, n_angles + 1), dtype=bool)
            valid[:, 0] = False
        else:
            valid = _inside_unit_square(cand_x, cand_y)
            valid[:, 0] = True
        idx = _pick_valid(valid, uniform)
        xs, ys = cand_x[rows, idx], cand_y[rows, idx]

    # Unit-square 0 and 1 are the outermost pixel centres, so a patch "inside the image"
    # is sampled bilinearly from image pixels only (no padding at B's border).
    return _quad_to_frame(xs, ys, width, height)


def sample_homography(
    batch_size: int,
    shape: tuple[int, int],
    perspective: bool = True,
    scaling: bool = True,
    rotation: bool = True,
    translation: bool = True,
    n_scales: int = 5,
    n_angles: int = 25,
    scaling_amplitude: float = 0.2,
    perspective_amplitude_x: float = 0.2,
    perspective_amplitude_y: float = 0.2,
    patch_ratio: float = 0.85,
    max_angle: float = math.pi,
    allow_artifacts: bool = False,
    translation_overflow: float = 0.0,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Random homographies [B, 3, 3] (float32) mapping pixels of an image A of ``shape`` (H, W) to a warped image B.

    Semantics of the SuperPoint reference (rpautrat ``sample_homography``), in normalised
    coordinates where the image is the unit square: a centred square patch of side
    ``patch_ratio`` is perturbed by a perspective displacement (truncated normal, std
    ``amplitude / 2``, cut at 2 std; amplitudes clipped to the margin unless
    ``allow_artifacts``), scaled about its centre by one of ``n_scales`` truncated-normal
    scales (mean 1, std ``scaling_amplitude / 2``), translated uniformly (keeping the patch
    inside the image, or overflowing by ``translation_overflow`` if ``allow_artifacts``) and
    rotated about its centre by one of ``n_angles`` angles evenly spaced in
    [-max_angle, max_angle]. One deliberate difference: the rotation is rigid in pixels
    (the reference rotates in normalised coordinates, which stretches a rotated patch of
    a non-square image by the aspect ratio). Without ``allow_artifacts`` only candidates
    keeping all four corners inside the image are drawn from (scale 1 and angle 0 are the fallbacks); with
    it, any sampled candidate is drawn (the reference's index range there drops the last
    candidate and may keep the fallback, an off-by-one we do not reproduce).

    The reference returns the map from the warped image to the original (the inverse
    convention of ``tf.contrib.image.transform``). We return its inverse, the project
    convention: ``H`` maps the patch in A onto the whole of B, so ``warp_images(a, H)``
    shows the patch filling the frame and ``B(H p) = A(p)``. Normalised coordinate ``u``
    becomes pixel ``u * (W - 1)`` (normalised 0 and 1 are the outer pixel centres, so
    without artifacts ``warp_valid_mask`` is all True; the reference maps them to the
    image edges). The
    sampling is vectorised over the batch; ``generator`` (a CPU ``torch.Generator``)
    makes it reproducible, and the result is moved to ``device``. The arithmetic runs in
    float64 numpy on the CPU, shared with :func:`sample_homography_np` (the path of data
    workers, which draws from a numpy generator instead).
    """
    # The sampler's keywords as given, forwarded whole (SAMPLER_PARAMS is this signature's list).
    sampler_args = {name: value for name, value in locals().items() if name in SAMPLER_PARAMS}
    gen_device = generator.device if generator is not None else torch.device("cpu")
    out_device = torch.device(device) if device is not None else gen_device

    def uniform(size: tuple[int, ...]) -> np.ndarray:
        draws = torch.rand(size, generator=generator, dtype=torch.float64, device=gen_device)
        return draws.cpu().numpy()

    homography = _sample(uniform, batch_size, shape, **sampler_args)
    return torch.from_numpy(homography).to(device=out_device, dtype=torch.float32)


# The sampler's parameters (keywords of sample_homography besides batch, shape and RNG) and defaults.
SAMPLER_PARAMS: dict[str, Any] = {
    name: p.default
    for name, p in inspect.signature(sample_homography).parameters.items()
    if name not in ("batch_size", "shape", "generator", "device")
}


def merge_homography_params(
    base: Mapping[str, Any], overrides: Mapping[str, Any] | None, key: str
) -> dict[str, Any]:
    """``base`` updated by ``overrides`` (a config's sampler parameters); a key the sampler lacks is a ValueError naming ``key``."""
    unknown = sorted(set(base) - set(SAMPLER_PARAMS)) + sorted(
        set(overrides or {}) - set(SAMPLER_PARAMS)
    )
    if unknown:
        raise ValueError(
            f"{key}.{unknown[0]} is unknown; expected keys from {sorted(SAMPLER_PARAMS)} "
            "(the parameters of pixelwise.geometry.homography.sample_homography)"
        )
    return {**base, **(overrides or {})}


def sample_homography_np(
    rng: np.random.Generator, shape: tuple[int, int], **params: Any
) -> np.ndarray:
    """One random homography [3, 3] (float64) for an image of ``shape`` (H, W): the numpy path of :func:`sample_homography`.

    The same function with the same parameters and defaults (``params``: any of
    :data:`SAMPLER_PARAMS`), the same pixel convention (normalised ``u`` is pixel
    ``u * (W - 1)``, pixel centres at integers) and the same order of draws, taken from
    ``rng.random`` instead of a torch generator: about 10x cheaper for one matrix, which
    matters in data workers. Fed the same uniform draws, both paths return the same matrix.
    """
    merged = merge_homography_params(SAMPLER_PARAMS, params, "sample_homography_np")
    return _sample(rng.random, 1, shape, **merged)[0]


def warp_points(points: torch.Tensor, homography: torch.Tensor) -> torch.Tensor:
    """Apply H to (x, y) points: points [N,2] or [B,N,2], H [3,3] or [B,3,3] -> [N,2] or [B,N,2]."""
    if not isinstance(points, torch.Tensor):
        raise TypeError(
            f"points must be a torch.Tensor of shape [N, 2] or [B, N, 2], got {type(points)}"
        )
    if points.dim() not in (2, 3) or points.shape[-1] != 2:
        raise ValueError(
            f"points must have shape [N, 2] or [B, N, 2] with (x, y) last, got {list(points.shape)}"
        )
    _check_homography(homography)
    if points.dim() == 3 and homography.dim() == 3 and points.shape[0] != homography.shape[0]:
        raise ValueError(
            f"points [B, N, 2] and homography [B, 3, 3] must share B, got {list(points.shape)} "
            f"and {list(homography.shape)}"
        )
    homography = homography.to(points.dtype)
    # x' = (h00 x + h01 y + h02) / (h20 x + h21 y + h22), written so both inputs broadcast.
    lin = homography[..., :, :2]  # [(B,) 3, 2]
    trans = homography[..., :, 2]  # [(B,) 3]
    if homography.dim() == 3:
        projected = torch.matmul(points, lin.transpose(-1, -2)) + trans[:, None, :]  # [B, N, 3]
    else:
        projected = torch.matmul(points, lin.transpose(-1, -2)) + trans  # [(B,) N, 3]
    return projected[..., :2] / projected[..., 2:3]


def _sampling_grid(
    homography: torch.Tensor, in_shape: tuple[int, int], out_shape: tuple[int, int]
) -> torch.Tensor:
    """grid_sample grid [B,H',W',2]: for each pixel p of B, H^-1 p in A, normalised for align_corners=True."""
    in_h, in_w = in_shape
    out_h, out_w = out_shape
    dtype = (
        homography.dtype if homography.dtype in (torch.float32, torch.float64) else torch.float32
    )
    # Invert in float64 (near-singular matrices lose digits in float32), fold the
    # normalisation x -> 2x/(W-1) - 1 into the matrix, then evaluate row by row.
    norm = torch.tensor(
        [[2.0 / (in_w - 1), 0.0, -1.0], [0.0, 2.0 / (in_h - 1), -1.0], [0.0, 0.0, 1.0]],
        dtype=torch.float64,
        device=homography.device,
    )
    g = (norm @ torch.linalg.inv(homography.double())).to(dtype)
    g = g.reshape(-1, 9, 1, 1)
    xs = torch.arange(out_w, dtype=dtype, device=homography.device).view(1, 1, out_w)
    ys = torch.arange(out_h, dtype=dtype, device=homography.device).view(1, out_h, 1)
    inv_w = torch.reciprocal(g[:, 6] * xs + (g[:, 7] * ys + g[:, 8]))
    grid = torch.empty(g.shape[0], out_h, out_w, 2, dtype=dtype, device=homography.device)
    torch.add(g[:, 0] * xs, g[:, 1] * ys + g[:, 2], out=grid[..., 0])
    torch.add(g[:, 3] * xs, g[:, 4] * ys + g[:, 5], out=grid[..., 1])
    grid.mul_(inv_w[..., None])
    # A pixel whose preimage is at infinity samples nothing (far outside, not NaN).
    return torch.nan_to_num_(grid, nan=-4.0, posinf=-4.0, neginf=-4.0)


def _valid_from_grid(grid: torch.Tensor, in_shape: tuple[int, int]) -> torch.Tensor:
    """[B,H',W'] bool: every bilinear tap of each grid sample lies in A (0 <= x <= W - 1, same for y)."""
    in_h, in_w = in_shape
    # 1e-3 px of slack (in normalised units) absorbs float error on exact pixel positions.
    tol_x, tol_y = 2e-3 / (in_w - 1), 2e-3 / (in_h - 1)
    gx, gy = grid[..., 0], grid[..., 1]
    return (gx.abs() <= 1.0 + tol_x) & (gy.abs() <= 1.0 + tol_y)


def _erode(valid: torch.Tensor, radius: int) -> torch.Tensor:
    """Erode bool masks [B,H,W] by a disk of ``radius`` (pixels with dx^2 + dy^2 <= r^2), outside = True."""
    if radius <= 0:
        return valid
    r = radius
    padded = F.pad(valid, (r, r, r, r), value=True)
    height, width = valid.shape[-2:]
    # The disk is a stack of horizontal runs: erode horizontally once per half-width
    # (incrementally), then AND the rows shifted vertically. O(r) boolean ops, no conv.
    half_widths = [math.isqrt(r * r - dy * dy) for dy in range(-r, r + 1)]
    horizontal = {}
    run = padded[:, :, r : r + width].clone()
    horizontal[0] = run.clone()
    for k in range(1, max(half_widths) + 1):
        run &= padded[:, :, r + k : r + k + width]
        run &= padded[:, :, r - k : r - k + width]
        horizontal[k] = run.clone()
    out = torch.ones_like(valid)
    for dy, half in zip(range(-r, r + 1), half_widths, strict=True):
        out &= horizontal[half][:, r + dy : r + dy + height]
    return out


def _prepare_warp(
    images: torch.Tensor, homography: torch.Tensor, out_shape: tuple[int, int] | None
) -> tuple[torch.Tensor, tuple[int, int], tuple[int, int]]:
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        got = list(images.shape) if isinstance(images, torch.Tensor) else type(images)
        raise ValueError(f"images must be a tensor of shape [B, C, H, W], got {got}")
    _check_homography(homography)
    if homography.dim() == 2:
        homography = homography.expand(images.shape[0], 3, 3)
    if homography.shape[0] != images.shape[0]:
        raise ValueError(
            f"homography [B, 3, 3] must have one matrix per image: images has B={images.shape[0]}, "
            f"homography has {homography.shape[0]}"
        )
    in_shape = (images.shape[-2], images.shape[-1])
    if min(in_shape) < 2:
        raise ValueError(f"images must be at least 2x2 pixels to be warped, got H, W = {in_shape}")
    out_shape = check_image_shape(out_shape if out_shape is not None else in_shape, "out_shape")
    return homography, in_shape, out_shape


def warp_images(
    images: torch.Tensor,
    homography: torch.Tensor,
    out_shape: tuple[int, int] | None = None,
    mode: str = "bilinear",
    padding_mode: str = "zeros",
) -> torch.Tensor:
    """Warp images [B,C,H,W] by H [B,3,3] or [3,3] (A -> B pixels) into [B,C,H',W'] with B(H p) = A(p).

    Same result as ``kornia.geometry.transform.warp_perspective(images, H, out_shape,
    align_corners=True)`` (source->destination pixel matrix, pixel centres at integers),
    computed with our own sampling grid, which is several times faster on the CPU.
    ``mode``/``padding_mode`` are those of ``torch.nn.functional.grid_sample``.
    """
    homography, in_shape, out_shape = _prepare_warp(images, homography, out_shape)
    grid = _sampling_grid(homography.to(images.dtype), in_shape, out_shape)
    return F.grid_sample(images, grid, mode=mode, padding_mode=padding_mode, align_corners=True)


def warp_images_with_mask(
    images: torch.Tensor,
    homography: torch.Tensor,
    border_margin: int = 0,
    out_shape: tuple[int, int] | None = None,
    mode: str = "bilinear",
) -> tuple[torch.Tensor, torch.Tensor]:
    """``warp_images`` (zero padding) and ``warp_valid_mask`` in one pass: ([B,C,H',W'], bool [B,H',W'])."""
    homography, in_shape, out_shape = _prepare_warp(images, homography, out_shape)
    grid = _sampling_grid(homography.to(images.dtype), in_shape, out_shape)
    warped = F.grid_sample(images, grid, mode=mode, padding_mode="zeros", align_corners=True)
    return warped, _erode(_valid_from_grid(grid, in_shape), int(border_margin))


def warp_valid_mask(
    shape: tuple[int, int],
    homography: torch.Tensor,
    border_margin: int = 0,
    out_shape: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Pixels of B [B,H',W'] (bool) whose preimage under H [B,3,3] or [3,3] lies in A of ``shape`` (H, W).

    A pixel p of B is valid when ``H^-1 p`` lies in [0, W-1] x [0, H-1], i.e. its bilinear
    sample uses pixels of A only (where a bilinearly warped all-ones image is exactly 1;
    the reference warps ones with nearest interpolation, which also keeps a half-pixel band
    of partly padded samples). Because valid pixels are exact, the frame of B needs no
    erosion: beyond it a detector sees its own padding, as on any image. With
    ``border_margin = r > 0`` the mask is eroded by a disk of radius r (pixels with
    dx^2 + dy^2 <= r^2) so that pixels within r of the invalid (padded) region are
    dropped; B's own frame is not an invalid region, so the identity keeps every pixel.
    ``out_shape`` defaults to ``shape``.
    """
    height, width = check_image_shape(shape)
    if min(height, width) < 2:
        raise ValueError(f"shape must be at least 2x2 pixels, got {shape!r}")
    _check_homography(homography)
    if border_margin < 0:
        raise ValueError(f"border_margin must be >= 0, got {border_margin!r}")
    out_shape = check_image_shape(out_shape if out_shape is not None else shape, "out_shape")
    if homography.dim() == 2:
        homography = homography[None]
    if not homography.is_floating_point():
        homography = homography.float()
    grid = _sampling_grid(homography, (height, width), out_shape)
    return _erode(_valid_from_grid(grid, (height, width)), int(border_margin))
