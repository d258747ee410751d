"""Keypoints <-> 8x8 cell classes: labels, heatmaps, soft cell targets, padding to the cell grid.

Convention (DESIGN.md): a detector has 65 logits per 8x8 cell; channel ``dy * 8 + dx`` is the
pixel ``(x0 + dx, y0 + dy)`` of the cell whose top-left pixel is ``(x0, y0)`` (the order of
``pixel_shuffle``) and channel 64 is the "no interest point" dustbin.

Sizes not divisible by 8: images are padded at the bottom and right (so pixel coordinates do not
move) to ``ceil(H / 8) * 8`` x ``ceil(W / 8) * 8``; every function here works on that padded cell
grid ``Hc = ceil(H / 8)``, ``Wc = ceil(W / 8)``, and :func:`crop_to_size` cuts a full-resolution
map back to ``H x W``. ``SuperPointNet.forward`` pads the same way, so its logits, these labels
and :func:`logits_to_heatmap` all live on the same padded grid.

A keypoint ``(x, y)`` belongs to the pixel ``(floor(x + 0.5), floor(y + 0.5))`` (pixel centres at
integer coordinates, a pixel spans ``[i - 0.5, i + 0.5)``); this is the rounding rpautrat's
SuperPoint uses to build its ``keypoint_map``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from pixelwise.geometry.keypoints import check_gray_batch

__all__ = [
    "CELL",
    "DUSTBIN",
    "IGNORE_INDEX",
    "pad_to_multiple",
    "crop_to_size",
    "keypoints_to_cell_labels",
    "logits_to_heatmap",
    "heatmap_to_cell_distribution",
]

CELL = 8
DUSTBIN = CELL * CELL  # class 64: no interest point in the cell
IGNORE_INDEX = 255


def pad_to_multiple(
    images: torch.Tensor, multiple: int = CELL, mode: str = "replicate", value: float = 0.0
) -> torch.Tensor:
    """Pad [B,C,H,W] at the bottom/right to [B,C,ceil(H/m)*m,ceil(W/m)*m]; no copy if already a multiple.

    ``mode`` is ``"replicate"`` (no artificial edge for a detector to fire on) or ``"constant"``
    (filled with ``value``; used for heatmaps and masks).
    """
    if images.dim() != 4:
        raise ValueError(
            f"pad_to_multiple: expected images [B, C, H, W], got shape {list(images.shape)}"
        )
    if multiple < 1:
        raise ValueError(f"pad_to_multiple: multiple must be >= 1, got {multiple}")
    if mode not in ("replicate", "constant"):
        raise ValueError(f"pad_to_multiple: mode must be 'replicate' or 'constant', got {mode!r}")
    h, w = images.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return images
    if mode == "constant":
        return F.pad(images, (0, pw, 0, ph), mode="constant", value=value)
    # replicate padding is not implemented for bool/integer tensors; those are masks, pad as float.
    if not images.is_floating_point():
        return F.pad(images.float(), (0, pw, 0, ph), mode="replicate").to(images.dtype)
    return F.pad(images, (0, pw, 0, ph), mode="replicate")


def crop_to_size(maps: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Crop [..., H', W'] to the top-left [..., H, W] (undoes :func:`pad_to_multiple`)."""
    h, w = int(size[0]), int(size[1])
    if maps.shape[-2] < h or maps.shape[-1] < w:
        raise ValueError(
            f"crop_to_size: cannot crop a map of size {list(maps.shape[-2:])} to the larger size {[h, w]}"
        )
    return maps[..., :h, :w]


def _as_keypoint_list(keypoints: torch.Tensor | Sequence[torch.Tensor]) -> list[torch.Tensor]:
    if isinstance(keypoints, torch.Tensor):
        if keypoints.dim() == 2:
            keypoints = [keypoints]
        elif keypoints.dim() == 3:
            keypoints = list(keypoints.unbind(0))
        else:
            raise ValueError(
                "keypoints must be a [N, 2] tensor, a [B, N, 2] tensor or a list of [N, 2] tensors, "
                f"got a tensor of shape {list(keypoints.shape)}"
            )
    out = []
    for i, k in enumerate(keypoints):
        if not isinstance(k, torch.Tensor):
            raise TypeError(
                f"keypoints[{i}] must be a torch.Tensor [N, 2] of (x, y), got {type(k).__name__}"
            )
        if k.dim() != 2 or k.shape[1] != 2:
            # An empty list of points is often built as torch.zeros(0) or zeros(0, 0): accept it.
            if k.numel() == 0:
                k = k.reshape(0, 2)
            else:
                raise ValueError(
                    f"keypoints[{i}] must have shape [N, 2] (x, y), got {list(k.shape)}"
                )
        out.append(k)
    return out


def keypoints_to_cell_labels(
    keypoints: torch.Tensor | Sequence[torch.Tensor],
    shape: Sequence[int],
    valid_mask: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Keypoints (list of [N,2] (x,y), or [N,2]) -> long [B, ceil(H/8), ceil(W/8)] cell classes in 0..64 or 255.

    - class ``dy * 8 + dx`` for the point's pixel inside its cell, ``64`` for a cell without points;
    - several points in one cell: one of them, chosen uniformly at random with ``generator``
      (``None``: torch's global RNG, seeded by ``torch.manual_seed`` / ``seed_everything``);
    - points whose pixel (``floor(x + 0.5), floor(y + 0.5)``) lies outside ``[0, W) x [0, H)``,
      and non-finite points, are dropped (documented, not an error: warped points leave the image);
    - ``valid_mask`` (bool [H,W] or [B,H,W], True = valid): a cell containing any invalid pixel is
      ``255`` (ignored by the loss). Padding pixels added to reach a multiple of 8 count as valid.
    """
    kps = _as_keypoint_list(keypoints)
    if len(shape) != 2 or int(shape[0]) < 1 or int(shape[1]) < 1:
        raise ValueError(
            f"keypoints_to_cell_labels: shape must be (H, W) with positive sizes, got {tuple(shape)}"
        )
    h, w = int(shape[0]), int(shape[1])
    hc, wc = math.ceil(h / CELL), math.ceil(w / CELL)
    b = len(kps)
    if b == 0:
        raise ValueError(
            "keypoints_to_cell_labels: got an empty batch (a list of zero keypoint tensors)"
        )
    device = kps[0].device

    labels = torch.full((b * hc * wc,), DUSTBIN, dtype=torch.long, device=device)
    pts = torch.cat([k.to(device=device, dtype=torch.float64) for k in kps], 0)
    batch_idx = torch.cat(
        [torch.full((len(k),), i, dtype=torch.long, device=device) for i, k in enumerate(kps)]
    )
    if len(pts):
        px = torch.floor(pts[:, 0] + 0.5)
        py = torch.floor(pts[:, 1] + 0.5)
        inside = (
            torch.isfinite(px) & torch.isfinite(py) & (px >= 0) & (px < w) & (py >= 0) & (py < h)
        )
        px, py, batch_idx = px[inside].long(), py[inside].long(), batch_idx[inside]
        if len(px):
            cell = (batch_idx * hc + py // CELL) * wc + px // CELL
            cls = (py % CELL) * CELL + px % CELL
            # A random priority per point; the first point of each cell in priority order wins.
            prio = torch.rand(
                len(px), generator=generator, device=generator.device if generator else "cpu"
            )
            order = torch.argsort(prio.to(device))
            cell, cls = cell[order], cls[order]
            rank = torch.arange(len(cell), device=device)
            first = torch.full((b * hc * wc,), len(cell), dtype=torch.long, device=device)
            first = first.scatter_reduce(0, cell, rank, reduce="amin")
            winner = rank == first[cell]
            labels[cell[winner]] = cls[winner]
    labels = labels.view(b, hc, wc)

    if valid_mask is not None:
        if valid_mask.dim() == 2:
            valid_mask = valid_mask.unsqueeze(0).expand(b, -1, -1)
        if (
            valid_mask.dim() != 3
            or tuple(valid_mask.shape[-2:]) != (h, w)
            or valid_mask.shape[0] != b
        ):
            raise ValueError(
                f"keypoints_to_cell_labels: valid_mask must be [H, W] or [B, H, W] = {[b, h, w]}, "
                f"got {list(valid_mask.shape)}"
            )
        invalid = (~valid_mask.bool()).float().unsqueeze(1).to(device)
        invalid = pad_to_multiple(invalid, CELL, mode="constant", value=0.0)
        invalid_cell = F.max_pool2d(invalid, CELL, CELL).squeeze(1) > 0
        labels = labels.masked_fill(invalid_cell, IGNORE_INDEX)
    return labels


def _check_logits(logits: torch.Tensor, name: str) -> None:
    if logits.dim() != 4 or logits.shape[1] != DUSTBIN + 1:
        raise ValueError(
            f"{name}: expected detector logits [B, 65, Hc, Wc], got shape {list(logits.shape)}"
        )


def logits_to_heatmap(
    logits: torch.Tensor, image_size: Sequence[int] | None = None
) -> torch.Tensor:
    """Detector logits [B,65,Hc,Wc] -> point probability [B,1,8Hc,8Wc] (softmax, drop dustbin, depth-to-space).

    With ``image_size=(H, W)`` the heatmap is cropped to [B,1,H,W] (undoing the net's padding).
    """
    _check_logits(logits, "logits_to_heatmap")
    prob = torch.softmax(logits, dim=1)[:, :DUSTBIN]
    heat = F.pixel_shuffle(prob, CELL)
    return crop_to_size(heat, image_size) if image_size is not None else heat


def heatmap_to_cell_distribution(heat: torch.Tensor) -> torch.Tensor:
    """Heatmap [B,1,H,W] -> per-cell distribution [B,65,ceil(H/8),ceil(W/8)] (soft cell targets).

    ``pixel_unshuffle`` puts the 64 pixel probabilities of a cell on channels 0..63; the dustbin is
    ``max(0, 1 - sum of the 64)``; the 65 values are then divided by their sum, which changes
    nothing when the 64 sum to at most 1 (a heatmap from :func:`logits_to_heatmap` is mapped back
    to exactly the softmax it came from) and spreads the mass proportionally otherwise (several
    strong points in a cell, e.g. an aggregated homographic-adaptation heatmap). A cell of all
    zeros is a pure dustbin. Negative values are an error. Padding to a multiple of 8 is zeros.
    """
    check_gray_batch(heat, "heatmap_to_cell_distribution")
    if (heat < 0).any():
        raise ValueError(
            f"heatmap_to_cell_distribution: heat must be >= 0 (probabilities), min is {heat.min().item():.4g}"
        )
    heat = pad_to_multiple(heat, CELL, mode="constant", value=0.0)
    cells = F.pixel_unshuffle(heat, CELL)
    dustbin = (1.0 - cells.sum(1, keepdim=True)).clamp_min(0.0)
    dist = torch.cat([cells, dustbin], 1)
    return dist / dist.sum(1, keepdim=True)
