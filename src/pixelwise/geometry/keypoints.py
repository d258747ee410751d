"""Keypoints from heatmaps: batched non-maximum suppression and extraction (threshold, border, top-k).

The pipeline of :func:`extract_keypoints` is that of the official SuperPoint demo
(magicleap ``SuperPointFrontend.run``): keep pixels with ``heat >= threshold``, greedy NMS over
them, sort by score, drop points within ``border`` pixels of the image edge; then keep the
``top_k`` best (as SuperGlue's SuperPoint does after border removal).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = [
    "NMS_SHAPES",
    "Extraction",
    "box_iou_offsets",
    "check_gray_batch",
    "MAGICPOINT_EVAL_EXTRACTION",
    "SUPERPOINT_EXTRACTION",
    "extract_keypoints",
    "nms_heatmap",
]


def check_gray_batch(x: torch.Tensor, name: str, what: str = "heat") -> None:
    """Raise unless ``x`` is a float tensor [B, 1, H, W] (a heatmap, gray images); errors name ``name``."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != 1:
        shape = list(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name}: expected {what} [B, 1, H, W], got {shape}")
    if not x.is_floating_point():
        raise TypeError(f"{name}: {what} must be a float tensor, got {x.dtype}")


def _score_ranks(heat: torch.Tensor) -> torch.Tensor:
    """Rank of every pixel by score within its image: [B,1,H,W], best = H*W, ties -> row-major first."""
    b, _, h, w = heat.shape
    flat = heat.reshape(b, h * w)
    order = torch.argsort(flat, dim=1, descending=True, stable=True)
    # float32 holds integers exactly up to 2**24; beyond that use float64 (max_pool needs floats).
    dtype = torch.float32 if h * w < 2**24 else torch.float64
    values = torch.arange(h * w, 0, -1, device=heat.device, dtype=dtype).expand(b, -1)
    ranks = torch.empty((b, h * w), device=heat.device, dtype=dtype).scatter_(1, order, values)
    return ranks.view(b, 1, h, w)


def nms_heatmap(heat: torch.Tensor, radius: int = 4) -> torch.Tensor:
    """Greedy non-maximum suppression of a heatmap [B,1,H,W] -> [B,1,H,W] (score at kept pixels, 0 elsewhere).

    Candidates are the pixels with ``heat > 0`` (threshold first, see :func:`extract_keypoints`).
    The result is exactly that of the official SuperPoint demo's greedy ``nms_fast``: visit the
    candidates from the highest score down; a candidate not yet suppressed is kept and suppresses
    every candidate in the (2r+1) x (2r+1) square around it (``max(|dx|, |dy|) <= radius``).
    Equal scores are visited in row-major order (a stable sort); the demo uses numpy's default,
    unstable sort, so with ties it may keep a different one of the tied pixels.

    Batched, without a Python loop over points: scores are replaced by their ranks (distinct),
    then each round keeps every undecided pixel that is the maximum of the undecided pixels in its
    window and suppresses the undecided pixels around the kept ones. A pixel kept this way has
    every higher-ranked pixel of its window already decided and none of them kept (a kept one
    would have suppressed it), so greedy keeps it too; by induction on rank the rounds reproduce
    greedy. Each round decides at least the best undecided pixel; in practice a few rounds
    (about one per ``radius + 1`` pixels along a monotone ridge).
    """
    check_gray_batch(heat, "nms_heatmap")
    if radius < 0:
        raise ValueError(f"nms_heatmap: radius must be >= 0, got {radius}")
    kept = _greedy_nms_mask(heat, heat > 0, radius)
    return torch.where(kept, heat, torch.zeros_like(heat))


NMS_SHAPES = ("square", "box_iou")


def box_iou_offsets(size: int, iou: float = 0.1) -> list[tuple[int, int]]:
    """Offsets (dx, dy) at which two ``size`` x ``size`` boxes overlap with IoU > ``iou``.

    rpautrat's ``box_nms(prob, size, iou=0.1)`` puts a ``size``-sided box on every candidate and
    runs greedy box NMS: a candidate is suppressed by a better one at such an offset. For
    ``size = 4`` that is the 7x7 square without the 12 cells at (+-3, +-2), (+-2, +-3) and
    (+-3, +-3): 37 cells, a smaller footprint than the demo's 9x9 square of radius 4.
    """
    out = []
    for dy in range(-size, size + 1):
        for dx in range(-size, size + 1):
            inter = max(size - abs(dx), 0) * max(size - abs(dy), 0)
            if inter / (2 * size * size - inter) > iou:
                out.append((dx, dy))
    return out


def _footprint_max(x: torch.Tensor, offsets: list[tuple[int, int]], reach: int) -> torch.Tensor:
    """Max of ``x`` [B,1,H,W] over the given (dx, dy) offsets (zero outside the image)."""
    h, w = x.shape[-2:]
    padded = F.pad(x, (reach, reach, reach, reach))
    out = torch.zeros_like(x)
    for dx, dy in offsets:
        out = torch.maximum(
            out, padded[..., reach + dy : reach + dy + h, reach + dx : reach + dx + w]
        )
    return out


def _greedy_nms_mask(
    heat: torch.Tensor, candidate: torch.Tensor, radius: int, shape: str = "square"
) -> torch.Tensor:
    """Bool [B,1,H,W]: the candidates greedy NMS of ``heat`` keeps (see :func:`nms_heatmap`).

    ``shape="square"``: suppress within ``max(|dx|, |dy|) <= radius``; ``"box_iou"``: within
    :func:`box_iou_offsets` ``(radius)`` (rpautrat's box NMS of box side ``radius``). Both
    footprints are symmetric, which the rounds below need.
    """
    if shape not in NMS_SHAPES:
        raise ValueError(f"nms shape: expected one of {list(NMS_SHAPES)}, got {shape!r}")
    if radius == 0 or heat.numel() == 0:
        return candidate.clone()
    k = 2 * radius + 1
    if shape == "square":

        def window_max(x: torch.Tensor) -> torch.Tensor:
            return F.max_pool2d(x, k, stride=1, padding=radius)

    else:
        offsets = box_iou_offsets(radius)

        def window_max(x: torch.Tensor) -> torch.Tensor:
            return _footprint_max(x, offsets, radius)

    ranks = _score_ranks(heat)
    undecided = candidate.clone()
    kept = torch.zeros_like(candidate)
    zero = torch.zeros((), dtype=ranks.dtype, device=ranks.device)
    while bool(undecided.any()):
        r = torch.where(undecided, ranks, zero)
        new = undecided & (r == window_max(r))
        kept |= new
        suppressed = window_max(new.to(ranks.dtype)) > 0
        undecided &= ~suppressed
    return kept


def extract_keypoints(
    heat: torch.Tensor,
    threshold: float = 0.015,
    nms_radius: int = 4,
    border: int = 4,
    top_k: int | None = None,
    nms_shape: str = "square",
) -> list[dict[str, torch.Tensor]]:
    """Heatmap [B,1,H,W] -> per image {"keypoints": float [N,2] (x, y), "scores": [N]}, best first.

    Keeps pixels with ``heat >= threshold``, runs greedy NMS (``nms_radius=0``: none;
    ``nms_shape`` ``"square"``: :func:`nms_heatmap`'s square of radius ``nms_radius``,
    ``"box_iou"``: rpautrat's ``box_nms`` with box side ``nms_radius``, IoU 0.1),
    drops points with ``x < border``, ``x >= W - border``, ``y < border`` or ``y >= H - border``
    (after NMS, as the official demo), then keeps the ``top_k`` highest scores (``None``: all).
    Equal scores are ordered row-major.
    """
    check_gray_batch(heat, "extract_keypoints")
    if border < 0:
        raise ValueError(f"extract_keypoints: border must be >= 0, got {border}")
    if top_k is not None and top_k < 0:
        raise ValueError(f"extract_keypoints: top_k must be None or >= 0, got {top_k}")
    h, w = heat.shape[-2:]
    if nms_radius < 0:
        raise ValueError(f"extract_keypoints: nms_radius must be >= 0, got {nms_radius}")
    kept = _greedy_nms_mask(heat, heat >= threshold, nms_radius, nms_shape)
    if border > 0:
        inner = torch.zeros_like(kept)
        inner[..., border : max(h - border, border), border : max(w - border, border)] = True
        kept &= inner
    out = []
    for b in range(heat.shape[0]):
        ys, xs = torch.nonzero(kept[b, 0], as_tuple=True)  # row-major order
        scores = heat[b, 0, ys, xs]
        order = torch.argsort(scores, descending=True, stable=True)
        if top_k is not None:
            order = order[:top_k]
        kps = torch.stack([xs[order], ys[order]], 1).to(heat.dtype)
        out.append({"keypoints": kps, "scores": scores[order]})
    return out


@dataclass(frozen=True)
class Extraction:
    """Keypoint extraction settings: ``heat >= threshold``, NMS ``nms_radius``, ``border``, ``top_k`` (None: all), ``nms_shape``.

    The one place the defaults live; every task and the classical baselines extract through
    it (``extraction(heat)`` = :func:`extract_keypoints` with these settings).
    """

    threshold: float = 0.015
    nms_radius: int = 4
    border: int = 4
    top_k: int | None = None
    nms_shape: str = "square"

    @classmethod
    def checked(
        cls,
        threshold: float,
        nms_radius: int,
        border: int,
        top_k: int | None,
        where: str = "task",
        keys: Mapping[str, str] | None = None,
        nms_shape: str = "square",
    ) -> Extraction:
        """Settings from config values; a bad one is an error naming ``<where>.<key>`` (``keys`` renames fields)."""
        names = {"threshold": "detection_threshold", "top_k": "top_k", **(keys or {})}
        if not 0.0 <= float(threshold) <= 1.0:
            raise ValueError(
                f"{where}.{names['threshold']}={threshold}: expected a probability in [0, 1]"
            )
        for key, value in (("nms_radius", nms_radius), ("border", border)):
            if value < 0:
                raise ValueError(f"{where}.{names.get(key, key)}={value}: expected >= 0")
        if top_k is not None and top_k < 1:
            raise ValueError(f"{where}.{names['top_k']}={top_k}: expected null (keep all) or >= 1")
        if nms_shape not in NMS_SHAPES:
            raise ValueError(
                f"{where}.{names.get('nms_shape', 'nms_shape')}={nms_shape!r}: expected one of {list(NMS_SHAPES)}"
            )
        return cls(float(threshold), int(nms_radius), int(border), top_k, nms_shape)

    def __call__(self, heat: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """Heatmap [B,1,H,W] -> per image {"keypoints" [N,2] (x, y), "scores" [N]} (computed in float32)."""
        return extract_keypoints(
            heat.float(),
            threshold=self.threshold,
            nms_radius=self.nms_radius,
            border=self.border,
            top_k=self.top_k,
            nms_shape=self.nms_shape,
        )


# The official SuperPoint demo's settings (SuperPoint features, pseudo-label export, match.py).
SUPERPOINT_EXTRACTION = Extraction(threshold=0.015, nms_radius=4, border=4, top_k=1000)
# rpautrat's magic-point_shapes.yaml evaluation: its box NMS (side 4, IoU 0.1), AP needs the
# low-score detections, no border, no top-k.
MAGICPOINT_EVAL_EXTRACTION = Extraction(
    threshold=0.001, nms_radius=4, border=0, top_k=None, nms_shape="box_iou"
)
