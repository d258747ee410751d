"""What the metrics that score image pairs (repeatability, descriptors) share: argument checks and a base."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torchmetrics import Metric

__all__ = [
    "PairMetric",
    "check_pair_batch",
    "check_pair_features",
    "check_pairs",
    "check_point_options",
    "pair_shapes",
]


def check_pair_batch(
    owner: str, homography: torch.Tensor, lists: Mapping[str, Sequence]
) -> torch.Tensor:
    """H [3,3] or [B,3,3] (a -> b) -> [B,3,3], after checking every per-image list has B entries.

    ``owner`` names the metric in the error messages.
    """
    if homography.dim() == 2:
        homography = homography[None]
    if homography.dim() != 3 or tuple(homography.shape[1:]) != (3, 3):
        raise ValueError(
            f"{owner}: homography must have shape [B, 3, 3], got {list(homography.shape)}"
        )
    batch = homography.shape[0]
    for name, items in lists.items():
        if len(items) != batch:
            raise ValueError(f"{owner}: {name} has {len(items)} entries, homography has B={batch}")
    return homography


def pair_shapes(
    shape: Sequence[int], shape_b: Sequence[int] | None
) -> tuple[tuple[int, int], tuple[int, int]]:
    """Image sizes (H, W) of a and b; b is a's size when ``shape_b`` is None."""
    shape_a = (int(shape[0]), int(shape[1]))
    return shape_a, shape_a if shape_b is None else (int(shape_b[0]), int(shape_b[1]))


def check_point_options(owner: str, distance: float, top_k: int | None) -> None:
    """Raise unless the correctness ``distance`` (pixels) is >= 0 and ``top_k`` is None or >= 1."""
    if distance < 0:
        raise ValueError(f"{owner}: distance must be >= 0, got {distance!r}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"{owner}: top_k must be a positive int or None, got {top_k!r}")


def check_pair_features(owner: str, lists: Mapping[str, Sequence[torch.Tensor]]) -> None:
    """Raise unless every pair has keypoints_a/_b [N,2] (x, y) with scores [N] and, when ``lists``
    holds descriptors_a/_b, descriptors [N,D] of one D on both sides (checked before any update)."""
    with_descriptors = "descriptors_a" in lists
    for i in range(len(lists["keypoints_a"])):
        for side in ("a", "b"):
            kp = lists[f"keypoints_{side}"][i]
            sc = lists[f"scores_{side}"][i]
            shapes = [kp.shape, sc.shape]
            ok = kp.dim() == 2 and kp.shape[1] == 2 and sc.shape == (kp.shape[0],)
            expected = f"keypoints_{side} must be [N, 2] (x, y) with scores_{side} [N]"
            if with_descriptors:
                desc = lists[f"descriptors_{side}"][i]
                shapes.append(desc.shape)
                ok = ok and desc.dim() == 2 and desc.shape[0] == kp.shape[0]
                expected += f" and descriptors_{side} [N, D]"
            if not ok:
                raise ValueError(
                    f"{owner}: pair {i}: {expected}, got {', '.join(str(list(s)) for s in shapes)}"
                )
        if with_descriptors:
            d_a, d_b = lists["descriptors_a"][i].shape[1], lists["descriptors_b"][i].shape[1]
            if d_a != d_b:
                raise ValueError(
                    f"{owner}: pair {i}: descriptor dimensions differ ({d_a} vs {d_b})"
                )


def check_pairs(
    owner: str,
    homography: torch.Tensor,
    lists: Mapping[str, Sequence[torch.Tensor]],
    shape: Sequence[int],
    shape_b: Sequence[int] | None,
) -> tuple[torch.Tensor, tuple[int, int], tuple[int, int]]:
    """A batch of pairs checked as a whole -> (H [B,3,3], (H, W) of a, (H, W) of b).

    :func:`check_pair_batch` (one entry per pair in every list), then
    :func:`check_pair_features` (per-pair shapes), then :func:`pair_shapes`; ``owner`` names the
    metric in the error messages.
    """
    homography = check_pair_batch(owner, homography, lists)
    check_pair_features(owner, lists)
    shape_a, shape_b = pair_shapes(shape, shape_b)
    return homography, shape_a, shape_b


class PairMetric(Metric):
    """Base of the metrics over image pairs related by a known homography (Repeatability, DescriptorMetrics).

    Holds the checked ``distance`` (pixels within which two points correspond) and ``top_k``
    (best-scored points kept per image), and the DDP-summed ``pairs`` counter its subclass's
    ``compute`` averages over; :meth:`checked_pairs` checks one ``update``'s batch. Error
    messages name the subclass.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, distance: float, top_k: int | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        check_point_options(type(self).__name__, distance, top_k)
        self.distance = float(distance)
        self.top_k = top_k
        self.add_state("pairs", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def checked_pairs(
        self,
        homography: torch.Tensor,
        lists: Mapping[str, Sequence[torch.Tensor]],
        shape: Sequence[int],
        shape_b: Sequence[int] | None,
    ) -> tuple[torch.Tensor, tuple[int, int], tuple[int, int]]:
        """:func:`check_pairs` of one ``update``: -> (H [B,3,3], (H, W) of a, (H, W) of b)."""
        return check_pairs(type(self).__name__, homography, lists, shape, shape_b)
