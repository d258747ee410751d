"""KITTI semantic/instance segmentation 2015 (data_semantics), with the Cityscapes label ids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pixelwise.data.cityscapes import CityscapesLabelled
from pixelwise.data.cityscapes_labels import (
    LABELID_HAS_INSTANCES,
    LABELID_TO_TRAINID,
    trainid_to_labelid,
)
from pixelwise.data.label_io import (
    DatasetLayoutError,
    Transform,
    map_ids,
    number_instances,
    require,
    write_label_png,
)

KITTI_SPLITS = ("train", "val", "trainval")
INSTANCE_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")

KITTI_TREE = """\
<root>/training/
├── image_2/<name>.png     RGB
├── semantic/<name>.png    uint8 Cityscapes label ids
└── instance/<name>.png    uint16: label id * 256 + instance number (0 = no instance)"""


def write_kitti_prediction(path: str | Path, pred: torch.Tensor | np.ndarray) -> Path:
    """Write trainIds [H, W] as a KITTI `semantic` PNG (Cityscapes label ids), the benchmark's format."""
    return write_label_png(path, trainid_to_labelid(pred))


def kitti_instances(raw: np.ndarray, path: Path) -> np.ndarray:
    """KITTI instance PNG [H, W] (label id * 256 + number) -> ids 1..K int32 [H, W] for evaluated instance classes."""
    raw = raw.astype(np.int64, copy=False)
    number = raw & 0xFF
    label_ids = raw >> 8
    table = np.where(LABELID_TO_TRAINID >= 0, 0, -1)
    map_ids(label_ids[number > 0], table, path, "instance label id (value // 256)")
    has = (number > 0) & LABELID_HAS_INSTANCES[np.minimum(label_ids, 255)]
    return number_instances(raw, has)


def kitti_split(names: list[str], split: str, val_fraction: float, seed: int) -> list[str]:
    """Deterministic train/val partition of sorted names: a seeded permutation, the last round(n * val_fraction) are val."""
    names = sorted(names)
    if split == "trainval":
        return names
    order = np.random.default_rng(seed).permutation(len(names))
    n_val = int(round(len(names) * val_fraction))
    chosen = order[len(names) - n_val :] if split == "val" else order[: len(names) - n_val]
    return [names[i] for i in sorted(chosen)]


class KITTISemantics(CityscapesLabelled):
    """KITTI semantics: image float32 [3,H,W], mask long [H,W] (the 19 Cityscapes trainIds, 255 = ignore),
    instances long [H,W] (1..K on Cityscapes instance classes), path str.

    KITTI has no official validation set: `val` is a fixed `val_fraction` of `training/`
    chosen by `split_seed`, `train` the rest, `trainval` all of it.
    """

    # KITTI publishes no mean instance sizes: the Cityscapes table (inherited) is the convention.
    label_what = "semantic"
    instance_what = "16-bit instance"
    instance_modes = INSTANCE_MODES

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        transform: Transform | None = None,
        val_fraction: float = 0.2,
        split_seed: int = 0,
    ) -> None:
        name = "KITTISemantics"
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(
                f"{name}: val_fraction={val_fraction} is invalid; expected a number in (0, 1)"
            )
        self._open_root(name, root, split, KITTI_SPLITS, transform, KITTI_TREE)
        base = require(self.root / "training", name, self.root, KITTI_TREE)
        dirs = {
            d: require(base / d, name, self.root, KITTI_TREE)
            for d in ("image_2", "semantic", "instance")
        }
        listed = {d: {p.name for p in path.glob("*.png")} for d, path in dirs.items()}
        if not listed["image_2"]:
            raise DatasetLayoutError(
                f"{name}: no *.png under {dirs['image_2']}.\n"
                f"Expected this layout under data.root={self.root}:\n{KITTI_TREE}"
            )
        for d in ("semantic", "instance"):
            for file in sorted(listed["image_2"] - listed[d]):
                raise DatasetLayoutError(
                    f"{name}: image {dirs['image_2'] / file} has no {d} label; expected {dirs[d] / file}"
                )
            for file in sorted(listed[d] - listed["image_2"]):
                raise DatasetLayoutError(
                    f"{name}: {d} label {dirs[d] / file} has no image; expected {dirs['image_2'] / file}"
                )
        names = kitti_split(list(listed["image_2"]), split, val_fraction, split_seed)
        if not names:
            raise ValueError(
                f"{name}: split={split!r} is empty: {len(listed['image_2'])} images in "
                f"{dirs['image_2']} with val_fraction={val_fraction}"
            )
        self.items = [
            (dirs["image_2"] / f, dirs["semantic"] / f, dirs["instance"] / f) for f in names
        ]

    def decode_instances(self, raw: np.ndarray, path: Path) -> np.ndarray:
        """KITTI instance PNG (label id * 256 + number) -> instance ids; see :func:`kitti_instances`."""
        return kitti_instances(raw, path)
