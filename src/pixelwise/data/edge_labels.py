"""Training targets from several annotators' edge maps: `each`, `mean` or `consensus`.

- `each`: every annotation is its own target (the seed's sum over ground truths).
- `mean`: one target, the annotators' mean thresholded at `threshold` (a fraction of them).
- `consensus`: as `mean`, but pixels marked by some annotators and fewer than `threshold`
  of them are ignored (weight 0), as RCF does; pixels nobody marked are negatives.

When only the annotators' mean is known (the averaged label PNGs of HED/RCF pair lists),
`each` uses the mean itself as a soft target: the class-balanced cross-entropy is linear in
the target, so with one beta for the image this equals averaging the per-annotator losses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

LABEL_MODES: tuple[str, ...] = ("each", "mean", "consensus")


def check_label_mode(mode: str, threshold: float, where: str = "label_mode") -> None:
    """Raise a ValueError naming `where` for an unknown mode or a threshold outside (0, 1]."""
    if mode not in LABEL_MODES:
        raise ValueError(f"{where}={mode!r}: expected one of {LABEL_MODES}")
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"{where}: label_threshold={threshold} must be in (0, 1]")


def targets_from_mean(
    mean: np.ndarray, mode: str, threshold: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """Annotator mean [H,W] in [0,1] -> (targets, weights), float32 [1,H,W] each."""
    check_label_mode(mode, threshold)
    mean = np.asarray(mean, dtype=np.float32)
    if mode == "each":
        targets = mean
        weights = np.ones_like(mean)
    else:
        # A small tolerance so "2 of 4 annotators" passes a 0.5 threshold despite rounding.
        targets = (mean >= threshold - 1e-6).astype(np.float32)
        weights = np.ones_like(mean)
        if mode == "consensus":
            weights[(mean > 0) & (targets == 0)] = 0.0
    return targets[None], weights[None]


def edge_targets(
    annotations: np.ndarray, mode: str, threshold: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """Annotations bool [K,H,W] -> (targets, weights) float32 [K',H,W]; K' = K for `each`, else 1."""
    check_label_mode(mode, threshold)
    annotations = np.asarray(annotations)
    if annotations.ndim != 3 or annotations.shape[0] == 0:
        raise ValueError(f"edge_targets: expected annotations [K>=1,H,W], got {annotations.shape}")
    if mode == "each":
        targets = annotations.astype(np.float32)
        return targets, np.ones_like(targets)
    return targets_from_mean(annotations.astype(np.float32).mean(axis=0), mode, threshold)


def annotator_mean(annotations: np.ndarray) -> np.ndarray:
    """Annotations [K,H,W] -> fraction of annotators marking each pixel, float32 [H,W]."""
    return np.asarray(annotations, dtype=np.float32).mean(axis=0)


def edge_item(
    image: np.ndarray,
    mode: str,
    threshold: float = 0.5,
    annotations: np.ndarray | None = None,
    mean: np.ndarray | None = None,
    transform: Callable[..., dict[str, Any]] | None = None,
    name: str = "",
) -> dict[str, Any]:
    """The item every edge dataset returns, from uint8 image [H,W,3] and annotations [K,H,W] or a mean [H,W].

    Keys: "image" float32 [3,H,W] in [0,1]; "edges" bool [K,H,W] (what the benchmark
    compares with: the annotations, or the thresholded mean when only the mean is known);
    "targets" / "weights" float32 [K',H,W] from the label mode; "name". The albumentations
    `transform` sees the image and the annotations (or the mean) as `masks`.
    """
    if (annotations is None) == (mean is None):
        raise ValueError("edge_item: give exactly one of annotations [K,H,W] or mean [H,W]")
    masks = (
        np.asarray(annotations, dtype=np.uint8)
        if annotations is not None
        else np.asarray(mean, dtype=np.float32)[None]
    )
    if transform is not None:
        out = transform(image=image, masks=masks)
        image, masks = out["image"], np.asarray(out["masks"])
    if annotations is not None:
        edges = masks.astype(bool)
        targets, weights = edge_targets(edges, mode, threshold)
    else:
        targets, weights = targets_from_mean(masks[0], mode, threshold)
        edges = masks[:1] >= threshold - 1e-6
    # Conversions in numpy, wrapped zero-copy: small torch ops in a worker go through torch's
    # intra-op thread pool, which costs milliseconds on a busy machine.
    image = np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32) * np.float32(1 / 255)
    return {
        "image": torch.from_numpy(image),
        "edges": torch.from_numpy(np.ascontiguousarray(edges)),
        "targets": torch.from_numpy(np.ascontiguousarray(targets, dtype=np.float32)),
        "weights": torch.from_numpy(np.ascontiguousarray(weights, dtype=np.float32)),
        "name": name,
    }


class EdgeDataset(Dataset):
    """Base of the edge datasets: the label mode, its threshold and the transform, checked once,
    and the `edge_item` a subclass's ``__getitem__`` returns through ``item``."""

    def __init__(
        self, label_mode: str, label_threshold: float, transform: Callable[..., Any] | None
    ) -> None:
        check_label_mode(label_mode, label_threshold, "data label_mode")
        self.label_mode = label_mode
        self.label_threshold = label_threshold
        self.transform = transform

    def item(
        self,
        image: np.ndarray,
        name: str,
        annotations: np.ndarray | None = None,
        mean: np.ndarray | None = None,
    ) -> dict[str, Any]:
        """`edge_item` of uint8 image [H,W,3] and annotations [K,H,W] or a mean [H,W], named `name`."""
        return edge_item(
            image,
            self.label_mode,
            self.label_threshold,
            annotations=annotations,
            mean=mean,
            transform=self.transform,
            name=name,
        )
