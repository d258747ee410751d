"""Argument checks shared by the metrics that score image pairs (repeatability, descriptors)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

__all__ = ["check_pair_batch", "pair_shapes"]


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
