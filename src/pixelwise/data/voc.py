"""Pascal VOC 2012 segmentation, read from its own VOCdevkit layout."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from pixelwise.data.info import DatasetInfo
from pixelwise.data.label_io import (
    DatasetLayoutError,
    Transform,
    check_same_size,
    check_transform,
    map_ids,
    read_index_png,
    read_rgb,
    require,
    segmentation_item,
    to_numpy_labels,
    write_label_png,
)

VOC_CLASS_NAMES: tuple[str, ...] = (
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)
VOC_SPLITS = ("train", "val", "trainval")
VOC_IGNORE_INDEX = 255

VOC_TREE = """\
<root>/VOCdevkit/VOC2012/
├── JPEGImages/<id>.jpg
├── SegmentationClass/<id>.png      palette PNG: 0..20 classes, 255 = void
├── SegmentationObject/<id>.png     (optional) palette PNG: 1..N objects, 255 = void
└── ImageSets/Segmentation/{train,val,trainval}.txt   one <id> per line"""


def voc_colormap(n: int = 256) -> np.ndarray:
    """The VOC devkit colour map uint8 [n, 3] (bits of the index spread over R, G, B; 255 -> (224, 224, 192))."""
    cmap = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        cmap[i] = (r, g, b)
    return cmap


VOC_COLORMAP = voc_colormap()
VOC_PALETTE: np.ndarray = VOC_COLORMAP[: len(VOC_CLASS_NAMES)].copy()  # [21, 3]

# SegmentationClass values -> class ids: 0..20 themselves, 255 void kept as ignore, others unknown.
_VOC_ID_TABLE = np.full(256, -1, dtype=np.int64)
_VOC_ID_TABLE[: len(VOC_CLASS_NAMES)] = np.arange(len(VOC_CLASS_NAMES))
_VOC_ID_TABLE[VOC_IGNORE_INDEX] = VOC_IGNORE_INDEX


def write_voc_prediction(path: str | Path, pred: torch.Tensor | np.ndarray) -> Path:
    """Write class ids [H, W] (0..20, 255 = void) as a VOC palette PNG, the format of SegmentationClass."""
    ids = to_numpy_labels(pred)
    bad = ((ids < 0) | (ids >= len(VOC_CLASS_NAMES))) & (ids != VOC_IGNORE_INDEX)
    if bad.any():
        raise ValueError(
            f"{path}: prediction value {int(ids[bad][0])} is not a VOC class id "
            f"(expected 0..{len(VOC_CLASS_NAMES) - 1} or {VOC_IGNORE_INDEX})"
        )
    return write_label_png(path, ids.astype(np.uint8), VOC_COLORMAP)


class VOCSegmentation(Dataset):
    """Pascal VOC 2012 segmentation: image float32 [3,H,W], mask long [H,W] (21 classes, 255 = void),
    instances long [H,W] (SegmentationObject ids, 0 = none), path str.

    `instances`: None uses SegmentationObject when that folder exists (then every listed id
    must have its file), False always gives zeros, True requires the folder.
    """

    num_classes: int = len(VOC_CLASS_NAMES)
    class_names: tuple[str, ...] = VOC_CLASS_NAMES
    ignore_index: int = VOC_IGNORE_INDEX
    palette: np.ndarray = VOC_PALETTE
    instance_classes: tuple[int, ...] = tuple(range(1, len(VOC_CLASS_NAMES)))
    class_to_category: tuple[int, ...] | None = None
    category_names: tuple[str, ...] | None = None
    # What DataModule.info reads (the config's data.* keys win where they are set).
    info = DatasetInfo(
        num_classes=len(VOC_CLASS_NAMES),
        class_names=VOC_CLASS_NAMES,
        ignore_index=VOC_IGNORE_INDEX,
        palette=VOC_PALETTE,
        instance_classes=tuple(range(1, len(VOC_CLASS_NAMES))),
    )

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        transform: Transform | None = None,
        instances: bool | None = None,
    ) -> None:
        if split not in VOC_SPLITS:
            raise ValueError(
                f"VOCSegmentation: split={split!r} is invalid; expected one of {list(VOC_SPLITS)}"
            )
        check_transform(transform, "VOCSegmentation")
        self.root = Path(root)
        self.split = split
        self.transform = transform
        name = "VOCSegmentation"
        require(self.root, name, self.root, VOC_TREE)
        base = require(self.root / "VOCdevkit" / "VOC2012", name, self.root, VOC_TREE)
        image_dir = require(base / "JPEGImages", name, self.root, VOC_TREE)
        class_dir = require(base / "SegmentationClass", name, self.root, VOC_TREE)
        list_file = require(
            base / "ImageSets" / "Segmentation" / f"{split}.txt", name, self.root, VOC_TREE, "file"
        )
        object_dir = base / "SegmentationObject"
        if instances is True:
            require(object_dir, name, self.root, VOC_TREE)
        self.use_objects = object_dir.is_dir() if instances is None else bool(instances)

        ids = [line.strip() for line in list_file.read_text().splitlines() if line.strip()]
        if not ids:
            raise DatasetLayoutError(
                f"{name}: {list_file} lists no image ids; expected one <id> per line"
            )
        self.items: list[tuple[Path, Path, Path | None]] = []
        for image_id in ids:
            image = image_dir / f"{image_id}.jpg"
            label = class_dir / f"{image_id}.png"
            if not image.is_file():
                raise DatasetLayoutError(
                    f"{name}: id {image_id!r} of {list_file} has no image; expected {image}"
                )
            if not label.is_file():
                raise DatasetLayoutError(f"{name}: image {image} has no label; expected {label}")
            obj = object_dir / f"{image_id}.png" if self.use_objects else None
            if obj is not None and not obj.is_file():
                raise DatasetLayoutError(
                    f"{name}: image {image} has no object label; expected {obj} "
                    "(or pass instances=False to load without instances)"
                )
            self.items.append((image, label, obj))

    def __len__(self) -> int:
        """Number of images in the split."""
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Item `index`: image float32 [3,H,W], mask long [H,W], instances long [H,W], path str."""
        image_path, label_path, object_path = self.items[index]
        image = read_rgb(image_path)
        raw = read_index_png(label_path, ("P", "L"), "class label")
        check_same_size(image_path, image, label_path, raw, "class label")
        mask = map_ids(raw, _VOC_ID_TABLE, label_path, "class label")
        if object_path is not None:
            objects = read_index_png(object_path, ("P", "L"), "object label").astype(np.int32)
            check_same_size(image_path, image, object_path, objects, "object label")
            # 0 = background, 255 = void border: neither is an object.
            instances = np.where((objects > 0) & (objects < 255), objects, 0)
        else:
            instances = np.zeros(mask.shape, dtype=np.int32)
        return segmentation_item(image, mask, instances, image_path, self.transform)

    def save_prediction(self, pred: torch.Tensor | np.ndarray, path: str | Path) -> Path:
        """Write class ids [H, W] as a VOC palette PNG (the SegmentationClass format)."""
        return write_voc_prediction(path, pred)
