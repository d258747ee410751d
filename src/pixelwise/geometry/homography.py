"""Homographies: random sampling, warping of points and images, valid-region masks.

Convention (DESIGN.md): a homography ``H`` (3x3) maps homogeneous pixel coordinates
``(x, y, 1)`` of image A to image B, pixel centres at integer coordinates, and
``warp_images(a, H)`` returns the image B with ``B(H p) = A(p)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = [
    "sample_homography",
    "warp_points",
    "warp_images",
    "warp_images_with_mask",
    "warp_valid_mask",
]

# Truncated normal as in tf.truncated_normal: values beyond 2 standard deviations are redrawn.
_TRUNCATION = 2.0


def _check_homography(homography: torch.Tensor, name: str = "homography") -> None:
    if not isinstance(homography, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of shape [3, 3] or [B, 3, 3], got {type(homography)}"
        )
    if homography.dim() not in (2, 3) or tuple(homography.shape[-2:]) != (3, 3):
        raise ValueError(
            f"{name} must have shape [3, 3] or [B, 3, 3], got {list(homography.shape)}"
        )


def _check_shape(shape: tuple[int, int], name: str = "shape") -> tuple[int, int]:
    try:
        height, width = (int(s) for s in shape)
    except (TypeError, ValueError):
        raise ValueError(
            f"{name} must be a pair (height, width) of positive ints, got {shape!r}"
        ) from None
    if height <= 0 or width <= 0:
        raise ValueError(f"{name} must be a pair (height, width) of positive ints, got {shape!r}")
    return height, width


def _truncated_normal(
    size: tuple[int, ...],
    mean: float,
    std: float,
    generator: torch.Generator | None,
    device: torch.device,
) -> torch.Tensor:
    """Normal(mean, std) truncated to mean +- 2 std, by inverse-CDF sampling (float64)."""
    if std <= 0:
        return torch.full(size, float(mean), dtype=torch.float64, device=device)
    lo = 0.5 * math.erfc(_TRUNCATION / math.sqrt(2.0))  # Phi(-2)
    u = torch.rand(size, generator=generator, dtype=torch.float64, device=device)
    u = lo + (1.0 - 2.0 * lo) * u
    return mean + std * torch.special.ndtri(u)


def _pick_valid(valid: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Index [B] of a uniformly random True entry per row of ``valid`` [B, K] (each row has one)."""
    keys = torch.rand(valid.shape, generator=generator, dtype=torch.float64, device=valid.device)
    keys = torch.where(valid, keys, torch.full_like(keys, -1.0))
    return keys.argmax(dim=1)


def _inside_unit_square(points: torch.Tensor) -> torch.Tensor:
    """[..., 4, 2] -> [...] True iff all four corners lie in [0, 1)."""
    return ((points >= 0.0) & (points < 1.0)).all(dim=-1).all(dim=-1)


def _homography_from_corners(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """Solve the 3x3 homography mapping four points src [B,4,2] onto dst [B,4,2] (float64, h33 = 1)."""
    batch = src.shape[0]
    x, y = src[..., 0], src[..., 1]
    u, v = dst[..., 0], dst[..., 1]
    one, zero = torch.ones_like(x), torch.zeros_like(x)
    rows_u = torch.stack([x, y, one, zero, zero, zero, -x * u, -y * u], dim=-1)
    rows_v = torch.stack([zero, zero, zero, x, y, one, -x * v, -y * v], dim=-1)
    a = torch.stack([rows_u, rows_v], dim=2).reshape(batch, 8, 8)
    b = torch.stack([u, v], dim=2).reshape(batch, 8, 1)
    h = torch.linalg.solve(a, b)[..., 0]
    return torch.cat([h, torch.ones(batch, 1, dtype=h.dtype, device=h.device)], dim=1).reshape(
        batch, 3, 3
    )


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
    makes it reproducible, and the result is moved to ``device``.
    """
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    height, width = _check_shape(shape)
    if not 0.0 < patch_ratio <= 1.0:
        raise ValueError(f"patch_ratio must be in (0, 1], got {patch_ratio!r}")
    if n_scales < 1 or n_angles < 1:
        raise ValueError(
            f"n_scales and n_angles must be >= 1, got n_scales={n_scales!r}, n_angles={n_angles!r}"
        )
    for name, value in (
        ("scaling_amplitude", scaling_amplitude),
        ("perspective_amplitude_x", perspective_amplitude_x),
        ("perspective_amplitude_y", perspective_amplitude_y),
        ("translation_overflow", translation_overflow),
    ):
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value!r}")

    gen_device = generator.device if generator is not None else torch.device("cpu")
    out_device = torch.device(device) if device is not None else gen_device
    b = batch_size
    f64 = dict(dtype=torch.float64, device=gen_device)

    # Corners (x, y) in the order top-left, bottom-left, bottom-right, top-right.
    unit = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, 0.0]], **f64)
    margin = (1.0 - patch_ratio) / 2.0
    patch = (margin + patch_ratio * unit).expand(b, 4, 2).clone()

    if perspective:
        amp_x, amp_y = perspective_amplitude_x, perspective_amplitude_y
        if not allow_artifacts:
            amp_x, amp_y = min(amp_x, margin), min(amp_y, margin)
        disp_y = _truncated_normal((b,), 0.0, amp_y / 2.0, generator, gen_device)
        disp_left = _truncated_normal((b,), 0.0, amp_x / 2.0, generator, gen_device)
        disp_right = _truncated_normal((b,), 0.0, amp_x / 2.0, generator, gen_device)
        # The left edge shifts by disp_left, the right by disp_right; opposite corners of
        # each vertical edge move towards/away from each other (a keystone).
        dx = torch.stack([disp_left, disp_left, disp_right, disp_right], dim=1)
        dy = torch.stack([disp_y, -disp_y, disp_y, -disp_y], dim=1)
        patch = patch + torch.stack([dx, dy], dim=2)

    if scaling:
        sampled = _truncated_normal(
            (b, n_scales), 1.0, scaling_amplitude / 2.0, generator, gen_device
        )
        scales = torch.cat([torch.ones(b, 1, **f64), sampled], dim=1)  # [B, 1 + n]
        center = patch.mean(dim=1, keepdim=True)
        candidates = (patch - center)[:, None] * scales[:, :, None, None] + center[
            :, None
        ]  # [B, 1+n, 4, 2]
        if allow_artifacts:
            valid = torch.ones(b, n_scales + 1, dtype=torch.bool, device=gen_device)
            valid[:, 0] = False
        else:
            valid = _inside_unit_square(candidates)
            valid[:, 0] = True  # the unscaled patch is the fallback
        idx = _pick_valid(valid, generator)
        patch = candidates[torch.arange(b, device=gen_device), idx]

    if translation:
        t_min = patch.amin(dim=1)  # [B, 2]: how far the patch may move towards 0
        t_max = (1.0 - patch).amin(dim=1)  # how far towards 1
        if allow_artifacts:
            t_min = t_min + translation_overflow
            t_max = t_max + translation_overflow
        u = torch.rand(b, 2, generator=generator, **f64)
        patch = patch + (-t_min + u * (t_min + t_max))[:, None, :]

    if rotation:
        angles = torch.linspace(-max_angle, max_angle, n_angles, **f64)
        angles = torch.cat([torch.zeros(1, **f64), angles])  # [1 + n], angle 0 the fallback
        cos, sin = torch.cos(angles), torch.sin(angles)
        rot = torch.stack(
            [torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2
        )  # [1+n, 2, 2]
        # Rotate in pixel units (the reference rotates the unit square, which shears
        # non-square images); then back to normalised units for the inside test.
        aspect = torch.tensor([width - 1, height - 1], **f64)
        center = patch.mean(dim=1, keepdim=True)
        rotated = torch.einsum("kij,bpj->bkpi", rot, (patch - center) * aspect)  # [B, 1+n, 4, 2]
        candidates = rotated / aspect + center[:, None]
        if allow_artifacts:
            valid = torch.ones(b, n_angles + 1, dtype=torch.bool, device=gen_device)
            valid[:, 0] = False
        else:
            valid = _inside_unit_square(candidates)
            valid[:, 0] = True
        idx = _pick_valid(valid, generator)
        patch = candidates[torch.arange(b, device=gen_device), idx]

    # Normalised 0 and 1 are the outermost pixel centres, so a patch "inside the image"
    # is sampled bilinearly from image pixels only (no padding at B's border).
    size = torch.tensor([width - 1, height - 1], **f64)
    patch_px = patch * size  # the patch in A
    frame_px = unit.expand(b, 4, 2) * size  # the whole of B
    homography = _homography_from_corners(patch_px, frame_px)
    return homography.to(device=out_device, dtype=torch.float32)


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
    out_shape = _check_shape(out_shape if out_shape is not None else in_shape, "out_shape")
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
    height, width = _check_shape(shape)
    if min(height, width) < 2:
        raise ValueError(f"shape must be at least 2x2 pixels, got {shape!r}")
    _check_homography(homography)
    if border_margin < 0:
        raise ValueError(f"border_margin must be >= 0, got {border_margin!r}")
    out_shape = _check_shape(out_shape if out_shape is not None else shape, "out_shape")
    if homography.dim() == 2:
        homography = homography[None]
    if not homography.is_floating_point():
        homography = homography.float()
    grid = _sampling_grid(homography, (height, width), out_shape)
    return _erode(_valid_from_grid(grid, (height, width)), int(border_margin))
