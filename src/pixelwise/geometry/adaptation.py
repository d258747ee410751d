"""Averaging a detector's heatmaps over transforms of each image: random homographies (homographic
adaptation) or the sub-cell shifts of a detector on a cell grid (shift averaging)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from pixelwise.geometry.homography import (
    SAMPLER_PARAMS,
    sample_homography,
    warp_images,
    warp_images_with_mask,
)

__all__ = [
    "ADAPTATION_HOMOGRAPHY",
    "aggregate_warped_heatmaps",
    "check_num_homographies",
    "check_shift_step",
    "homographic_adaptation",
    "shift_averaged_heatmap",
]

Detector = Callable[[torch.Tensor], torch.Tensor]

_AGGREGATIONS = ("mean", "max")

# The homographies of the export (rpautrat magic-point_coco_export.yaml
# homography_adaptation.homographies): sample_homography's keyword arguments. The same values as
# conf/task/homographic_adaptation.yaml's task.homography (a test checks that they agree).
ADAPTATION_HOMOGRAPHY: dict[str, object] = {
    "translation": True,
    "rotation": True,
    "scaling": True,
    "perspective": True,
    "scaling_amplitude": 0.2,
    "perspective_amplitude_x": 0.2,
    "perspective_amplitude_y": 0.2,
    "patch_ratio": 0.85,
    "max_angle": 1.5708,
    "allow_artifacts": True,
}


def _check_images(images: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        got = list(images.shape) if isinstance(images, torch.Tensor) else type(images)
        raise ValueError(
            f"images must be a tensor of shape [B, C, H, W] (C = 1 for detectors), got {got}"
        )


def _run_detector(detector: Detector, batch: torch.Tensor) -> torch.Tensor:
    heat = detector(batch)
    expected = (batch.shape[0], 1, batch.shape[2], batch.shape[3])
    if not isinstance(heat, torch.Tensor) or tuple(heat.shape) != expected:
        got = list(heat.shape) if isinstance(heat, torch.Tensor) else type(heat)
        raise ValueError(
            f"detector must map images [b, C, h, w] to a heatmap [b, 1, h, w]: for input {list(batch.shape)} "
            f"expected {list(expected)}, got {got}"
        )
    return heat


def aggregate_warped_heatmaps(
    detector: Detector,
    images: torch.Tensor,
    homographies: torch.Tensor,
    chunk_size: int | None = None,
    valid_border_margin: int = 3,
    aggregation: str = "mean",
    identity: torch.Tensor | None = None,
) -> torch.Tensor:
    """Aggregate detector heatmaps over given warps: images [B,C,H,W], H [B,N,3,3] -> heatmap [B,1,H,W].

    The unwarped image always contributes (its heatmap everywhere, weight 1); each of the
    N homographies ``H`` (A -> warped, project convention) contributes, at pixel p of the
    image, the heatmap of the warped image at ``H p`` if that pixel of the warped image is
    valid (comes from inside the image, eroded by a disk of radius ``valid_border_margin``
    so responses to the artificial black border are ignored). Warping back is bilinear, so
    the mask is warped back alongside the masked heatmap and serves as a (fractional at
    the mask's edge) per-pixel count: ``"mean"`` returns sum of masked heatmaps / count;
    ``"max"`` the maximum over contributing homographies of the warped-back heatmap.

    At most ``chunk_size`` warped images (default: all B*N) go through ``detector`` at
    once, which bounds memory; results do not depend on it. Runs under
    ``torch.no_grad()`` (the result is a target, not a differentiable output); put the
    detector in eval mode yourself. ``identity``: the detector's heatmap of ``images``
    [B,1,H,W] when the caller already has it (it is then not computed again).
    """
    _check_images(images)
    if aggregation not in _AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {_AGGREGATIONS}, got {aggregation!r}")
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"chunk_size must be a positive int or None, got {chunk_size!r}")
    if valid_border_margin < 0:
        raise ValueError(f"valid_border_margin must be >= 0, got {valid_border_margin!r}")
    batch, _, height, width = images.shape
    if (
        not isinstance(homographies, torch.Tensor)
        or homographies.dim() != 4
        or tuple(homographies.shape[2:]) != (3, 3)
        or homographies.shape[0] != batch
    ):
        got = (
            list(homographies.shape)
            if isinstance(homographies, torch.Tensor)
            else type(homographies)
        )
        raise ValueError(f"homographies must have shape [B={batch}, N, 3, 3], got {got}")
    n = homographies.shape[1]

    with torch.no_grad():
        total = n * batch
        step = chunk_size or max(total, batch)
        # The identity: the plain detector output, in chunks too.
        if identity is None:
            heat0 = torch.cat(
                [_run_detector(detector, images[i : i + step]) for i in range(0, batch, step)]
            )
        elif tuple(identity.shape) != (batch, 1, height, width):
            raise ValueError(
                f"identity must be the detector's heatmap of the images, [{batch}, 1, {height}, "
                f"{width}], got {list(identity.shape)}"
            )
        else:
            heat0 = identity
        acc = heat0.clone()
        count = torch.ones_like(heat0)
        if n == 0:
            return acc

        flat_h = homographies.reshape(total, 3, 3).to(device=images.device)
        flat_inv = torch.linalg.inv(flat_h.double()).to(images.dtype)
        owner = torch.arange(batch, device=images.device).repeat_interleave(n)
        for start in range(0, total, step):
            sel = slice(start, min(start + step, total))
            idx = owner[sel]
            warped, valid = warp_images_with_mask(
                images[idx], flat_h[sel], border_margin=valid_border_margin
            )
            heat = _run_detector(detector, warped)
            mask = valid[:, None].to(heat.dtype)
            # Warp masked heatmap and mask back together: one grid for both.
            back = warp_images(torch.cat([heat * mask, mask], dim=1), flat_inv[sel])
            num, den = back[:, :1], back[:, 1:]
            if aggregation == "mean":
                acc.index_add_(0, idx, num)
                count.index_add_(0, idx, den)
            else:
                # num / den is the warped-back heatmap renormalised over its valid taps.
                value = torch.where(
                    den > 1e-6, num / den.clamp_min(1e-6), torch.full_like(num, -torch.inf)
                )
                flat_value = value.reshape(value.shape[0], -1)
                acc.view(batch, -1).scatter_reduce_(
                    0, idx[:, None].expand_as(flat_value), flat_value, "amax", include_self=True
                )
        return acc / count if aggregation == "mean" else acc


def homographic_adaptation(
    detector: Detector,
    images: torch.Tensor,
    num_homographies: int = 100,
    chunk_size: int | None = None,
    valid_border_margin: int = 3,
    aggregation: str = "mean",
    generator: torch.Generator | None = None,
    identity: torch.Tensor | None = None,
    **homography_params: object,
) -> torch.Tensor:
    """Homographic adaptation of ``detector`` ([b,1,h,w] -> heatmap [b,1,h,w]) on images [B,1,H,W] -> [B,1,H,W].

    ``num_homographies`` counts the identity (the first "homography" of each image), so
    ``num_homographies - 1`` homographies per image are drawn by ``sample_homography``
    with ``homography_params`` (its keyword arguments) and ``generator``; see
    ``aggregate_warped_heatmaps`` for masking, aggregation, chunking, ``no_grad`` and
    ``identity``. :data:`ADAPTATION_HOMOGRAPHY` holds the export's parameters (rpautrat's).
    """
    _check_images(images)
    check_num_homographies(num_homographies, "homographic_adaptation: num_homographies")
    unknown = sorted(set(homography_params) - set(SAMPLER_PARAMS))
    if unknown:
        raise ValueError(
            f"unknown homography parameter(s) {unknown} for homographic_adaptation; "
            f"sample_homography accepts {list(SAMPLER_PARAMS)}"
        )
    batch, _, height, width = images.shape
    n = num_homographies - 1
    if n > 0:
        sampled = sample_homography(
            batch * n,
            (height, width),
            generator=generator,
            device=images.device,
            **homography_params,
        ).reshape(batch, n, 3, 3)
    else:
        sampled = torch.empty(batch, 0, 3, 3, device=images.device)
    return aggregate_warped_heatmaps(
        detector,
        images,
        sampled,
        chunk_size=chunk_size,
        valid_border_margin=valid_border_margin,
        aggregation=aggregation,
        identity=identity,
    )


def check_num_homographies(count: object, name: str) -> int:
    """``count`` if it is an int >= 1 (it counts the identity); else a ``ValueError`` naming ``name``."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(
            f"{name}={count!r}: expected an int >= 1 (it counts the identity; 1 = the image "
            "alone, no adaptation)"
        )
    return count


def check_shift_step(step: object, name: str, cell: int = 8) -> int:
    """``step`` if it is an int in ``[1, cell]``; else a ``ValueError`` naming ``name`` (a config key, an argument)."""
    if isinstance(step, bool) or not isinstance(step, int) or not 1 <= step <= cell:
        raise ValueError(
            f"{name}={step!r}: expected an int in [1, {cell}] (the heatmap is averaged over "
            f"(ceil({cell} / step))^2 shifted forward passes; {cell}: one pass, no averaging)"
        )
    return step


def shift_averaged_heatmap(
    detector: Detector,
    images: torch.Tensor,
    step: int = 4,
    cell: int = 8,
    unshifted: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean of ``detector``'s heatmaps over the input shifted by ``(sx, sy)``, both in ``range(0, cell, step)``.

    images [B,C,H,W] -> heatmap [B,1,H,W]. Each shifted input is the image with ``sx`` columns and
    ``sy`` rows replicated at its left and top; its heatmap is cropped back to the image's pixels.
    A detector that decides on a ``cell`` x ``cell`` grid (SuperPoint's stride-8 head) sees each
    image content at ``(cell / step)^2`` phases against its grid, so the mean moves with the image
    under integer shifts that are multiples of ``step`` (``step=1``: all of them). ``step=cell``
    is the detector alone. Costs ``(cell / step)^2`` forward passes (rounded up); ``unshifted``,
    the detector's heatmap of ``images`` when the caller has it already, saves one.
    """
    _check_images(images)
    check_shift_step(step, "shift_averaged_heatmap: step", cell)
    height, width = images.shape[-2:]
    offsets = range(0, cell, step)
    total = None
    for sy in offsets:
        for sx in offsets:
            if sx == sy == 0 and unshifted is not None:
                heat = unshifted
            else:
                shifted = F.pad(images, (sx, 0, sy, 0), mode="replicate") if sx or sy else images
                heat = _run_detector(detector, shifted)[..., sy : sy + height, sx : sx + width]
            total = heat if total is None else total + heat
    return total / len(offsets) ** 2
