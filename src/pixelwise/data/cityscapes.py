"""Cityscapes fine annotations (gtFine), read from the dataset's own layout; labelIds -> 19 trainIds."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from pixelwise.data.cityscapes_labels import (
    CATEGORY_NAMES,
    CITYSCAPES_MEAN_INSTANCE_SIZE,
    CLASS_NAMES,
    CLASS_TO_CATEGORY,
    IGNORE_INDEX,
    INSTANCE_CLASSES,
    LABELID_HAS_INSTANCES,
    LABELID_TO_TRAINID,
    NUM_CLASSES,
    PALETTE,
    trainid_to_labelid,
)
from pixelwise.data.info import DatasetInfo
from pixelwise.data.label_io import (
    DatasetLayoutError,
    Transform,
    check_same_size,
    check_transform,
    map_ids,
    number_instances,
    read_index_png,
    read_rgb,
    require,
    segmentation_item,
    write_label_png,
)

CITYSCAPES_SPLITS = ("train", "val", "test")
LABEL_MODES = ("L", "P")
INSTANCE_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N")

CITYSCAPES_TREE = """\
<root>/
├── leftImg8bit/{split}/{city}/{city}_{seq}_{frame}_leftImg8bit.png
└── gtFine/{split}/{city}/{city}_{seq}_{frame}_gtFine_labelIds.png
                          {city}_{seq}_{frame}_gtFine_instanceIds.png"""

_IMAGE_SUFFIX = "_leftImg8bit.png"
_LABEL_SUFFIX = "_gtFine_labelIds.png"
_INSTANCE_SUFFIX = "_gtFine_instanceIds.png"


def write_cityscapes_prediction(path: str | Path, pred: torch.Tensor | np.ndarray) -> Path:
    """Write trainIds [H, W] as a Cityscapes labelIds PNG (what the official evaluation reads)."""
    return write_label_png(path, trainid_to_labelid(pred))


def cityscapes_instances(raw: np.ndarray, path: Path) -> np.ndarray:
    """instanceIds [H, W] -> instance ids 1..K int32 [H, W] for evaluated instance classes, 0 elsewhere.

    Values >= 1000 are instances of label id value // 1000; smaller values are plain label ids.
    """
    raw = raw.astype(np.int64, copy=False)
    is_instance = raw >= 1000
    label_ids = raw[is_instance] // 1000
    table = np.where(LABELID_TO_TRAINID >= 0, 0, -1)
    map_ids(label_ids, table, path, "instance label id (value // 1000)")
    has = np.zeros(raw.shape, dtype=bool)
    has[is_instance] = LABELID_HAS_INSTANCES[label_ids]
    return number_instances(raw, has)


class CityscapesLabelled(Dataset):
    """Base of the datasets labelled in Cityscapes label ids (Cityscapes, KITTI): label facts and items.

    Subclasses fill ``self.items`` with (image, label ids PNG, instance PNG) paths and say how
    their instance PNG encodes instances (:meth:`decode_instances`) and what their files are
    called in error messages (``label_what``, ``instance_what``).
    """

    num_classes: int = NUM_CLASSES
    class_names: tuple[str, ...] = CLASS_NAMES
    ignore_index: int = IGNORE_INDEX
    palette: np.ndarray = PALETTE
    instance_classes: tuple[int, ...] = INSTANCE_CLASSES
    class_to_category: tuple[int, ...] = CLASS_TO_CATEGORY
    category_names: tuple[str, ...] = CATEGORY_NAMES
    mean_instance_size: dict[int, float] = CITYSCAPES_MEAN_INSTANCE_SIZE
    label_what: str = "labelIds"
    instance_what: str = "instanceIds"
    instance_modes: tuple[str, ...] = INSTANCE_MODES

    items: list[tuple[Path, Path, Path]]
    transform: Transform | None

    @property
    def info(self) -> DatasetInfo:
        """The label facts above (each a ``DatasetInfo`` field of the same name), as ``DataModule.info`` reads them."""
        facts = (
            "num_classes",
            "class_names",
            "ignore_index",
            "palette",
            "instance_classes",
            "class_to_category",
            "category_names",
            "mean_instance_size",
        )
        return DatasetInfo(**{name: getattr(self, name) for name in facts})

    def decode_instances(self, raw: np.ndarray, path: Path) -> np.ndarray:
        """The instance PNG's values [H, W] -> ids 1..K int32 [H, W] on evaluated instance classes."""
        raise NotImplementedError

    def _open_root(
        self,
        name: str,
        root: str | Path,
        split: str,
        splits: Sequence[str],
        transform: Transform | None,
        tree: str,
    ) -> Path:
        """Check `split` (one of `splits`) and `transform`, keep root, split and transform; return
        the root, which must exist (else a DatasetLayoutError showing the expected `tree`)."""
        if split not in splits:
            raise ValueError(f"{name}: split={split!r} is invalid; expected one of {list(splits)}")
        check_transform(transform, name)
        self.root = Path(root)
        self.split = split
        self.transform = transform
        return require(self.root, name, self.root, tree)

    def __len__(self) -> int:
        """Number of images in the split."""
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Item `index`: image float32 [3,H,W], mask long [H,W], instances long [H,W], path str."""
        image_path, label_path, inst_path = self.items[index]
        image = read_rgb(image_path)
        label_ids = read_index_png(label_path, LABEL_MODES, self.label_what)
        check_same_size(image_path, image, label_path, label_ids, f"{self.label_what} map")
        mask = map_ids(label_ids, LABELID_TO_TRAINID, label_path, "label id")
        raw = read_index_png(inst_path, self.instance_modes, self.instance_what)
        check_same_size(image_path, image, inst_path, raw, "instance map")
        instances = self.decode_instances(raw, inst_path)
        return segmentation_item(image, mask, instances, image_path, self.transform)

    def save_prediction(self, pred: torch.Tensor | np.ndarray, path: str | Path) -> Path:
        """Write trainIds [H, W] as a label-ids PNG (what the official evaluation tools read)."""
        return write_label_png(path, trainid_to_labelid(pred))


class Cityscapes(CityscapesLabelled):
    """Cityscapes gtFine: image float32 [3,H,W], mask long [H,W] (19 trainIds, 255 = ignore),
    instances long [H,W] (1..K on person/rider/car/truck/bus/train/motorcycle/bicycle), path str."""

    def __init__(
        self, root: str | Path, split: str = "train", transform: Transform | None = None
    ) -> None:
        name = "Cityscapes"
        self._open_root(name, root, split, CITYSCAPES_SPLITS, transform, CITYSCAPES_TREE)
        image_dir = require(self.root / "leftImg8bit" / split, name, self.root, CITYSCAPES_TREE)
        label_dir = require(self.root / "gtFine" / split, name, self.root, CITYSCAPES_TREE)

        images = sorted(image_dir.glob(f"*/*{_IMAGE_SUFFIX}"))
        if not images:
            raise DatasetLayoutError(
                f"{name}: no *{_IMAGE_SUFFIX} under {image_dir}/<city>/.\n"
                f"Expected this layout under data.root={self.root}:\n{CITYSCAPES_TREE}"
            )
        self.items: list[tuple[Path, Path, Path]] = []
        for image in images:
            stem = image.name[: -len(_IMAGE_SUFFIX)]
            city = image.parent.name
            label = label_dir / city / f"{stem}{_LABEL_SUFFIX}"
            inst = label_dir / city / f"{stem}{_INSTANCE_SUFFIX}"
            for path, what in ((label, "labelIds"), (inst, "instanceIds")):
                if not path.is_file():
                    raise DatasetLayoutError(
                        f"{name}: image {image} has no {what} file; expected {path}"
                    )
            self.items.append((image, label, inst))
        # The reverse: a label without its image is a broken download, not something to skip.
        for label in sorted(label_dir.glob(f"*/*{_LABEL_SUFFIX}")):
            stem = label.name[: -len(_LABEL_SUFFIX)]
            image = image_dir / label.parent.name / f"{stem}{_IMAGE_SUFFIX}"
            if not image.is_file():
                raise DatasetLayoutError(f"{name}: label {label} has no image; expected {image}")

    def decode_instances(self, raw: np.ndarray, path: Path) -> np.ndarray:
        """instanceIds (label id * 1000 + number) -> instance ids; see :func:`cityscapes_instances`."""
        return cityscapes_instances(raw, path)
