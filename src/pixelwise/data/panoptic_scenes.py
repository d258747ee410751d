"""Panoptic datasets: synthetic street scenes and the Cityscapes panoptic format (``createPanopticImgs``).

Every item is a dict: image float32 [3,H,W] in [0,1]; mask long [H,W] (class per pixel, 255 =
void); instances long [H,W] (1..M on the non-crowd thing segments, 0 elsewhere); panoptic long
[H,W] (segment ids, 0 = void); segments long [N,3] (segment id, class index, iscrowd), one row
per segment present in ``panoptic``; image_id str (the panoptic JSON's ``image_id``).
``segments`` varies in length: data configs list it in ``list_keys``.

Things and stuff: a dataset's ``instance_classes`` are its things, every other class is stuff.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from pixelwise.data.cityscapes_labels import (
    CITYSCAPES_LABELS,
    CLASS_NAMES,
    INSTANCE_CLASSES,
    PALETTE,
)
from pixelwise.data.detection_items import boxes_from_instances
from pixelwise.data.info import DatasetInfo
from pixelwise.data.label_io import (
    DatasetLayoutError,
    check_transform,
    image_tensor,
    read_rgb,
    require,
)
from pixelwise.data.scene_render import SCENE_CLASSES, SCENE_PALETTE, THING_CLASSES
from pixelwise.data.synthetic_scenes import SyntheticScenes
from pixelwise.formats.panoptic import (
    PanopticFormatError,
    check_panoptic,
    labels_from_panoptic,
    panoptic_from_labels,
    read_panoptic_png,
    segments_from_info,
)

__all__ = [
    "CITYSCAPES_PANOPTIC_TREE",
    "COCOPanoptic",
    "CityscapesPanoptic",
    "SYNTHETIC_CATEGORY_IDS",
    "SyntheticPanopticScenes",
    "panoptic_item",
]

# Category ids of the synthetic classes in panoptic files: class index + 1 (0 is void in the format).
SYNTHETIC_CATEGORY_IDS: tuple[int, ...] = tuple(range(1, len(SCENE_CLASSES) + 1))
# Cityscapes: the label id of each of the 19 trainIds (the panoptic JSON's category ids).
CITYSCAPES_CATEGORY_IDS: tuple[int, ...] = tuple(
    next(lab.id for lab in CITYSCAPES_LABELS if lab.train_id == t) for t in range(len(CLASS_NAMES))
)

CITYSCAPES_PANOPTIC_TREE = """\
<root>/
├── leftImg8bit/{split}/{city}/{city}_{seq}_{frame}_leftImg8bit.png
└── gtFine/cityscapes_panoptic_{split}.json
    gtFine/cityscapes_panoptic_{split}/{city}_{seq}_{frame}_gtFine_panoptic.png"""


def instance_targets(
    panoptic: np.ndarray, segments: np.ndarray, thing_classes: Sequence[int]
) -> dict[str, torch.Tensor]:
    """The thing segments as detection / instance-segmentation targets (the keys of the detection data).

    boxes float32 [N,4] tight xyxy (pixel c spans [c, c+1]), labels int64 [N] (class indices),
    iscrowd bool [N], area float32 [N] (pixels), masks uint8 [N,H,W]; rows in segment order.
    """
    seg = segments[np.isin(segments[:, 1], np.asarray(list(thing_classes), dtype=np.int64))]
    inst = np.zeros(panoptic.shape, dtype=np.int32)
    for k, sid in enumerate(seg[:, 0]):
        inst[panoptic == sid] = k + 1
    boxes, counts = boxes_from_instances(inst, len(seg))
    masks = (inst[None] == np.arange(1, len(seg) + 1, dtype=np.int32)[:, None, None]).astype(
        np.uint8
    )
    return {
        "boxes": torch.from_numpy(boxes),
        "labels": torch.from_numpy(seg[:, 1].copy()),
        "iscrowd": torch.from_numpy(seg[:, 2] > 0),
        "area": torch.from_numpy(counts.astype(np.float32)),
        "masks": torch.from_numpy(masks),
    }


def panoptic_item(
    image: np.ndarray,
    panoptic: np.ndarray,
    segments: np.ndarray,
    thing_classes: Sequence[int],
    image_id: str,
    transform: Callable[..., dict[str, Any]] | None = None,
    ignore_index: int = 255,
    with_masks: bool = False,
) -> dict[str, Any]:
    """The item dict from image uint8 [H,W,3], panoptic ids [H,W] and segments [N,3].

    The albumentations transform sees ``image`` and ``masks=[panoptic int32]``; segments no
    longer present afterwards are dropped (pad/crop), and mask/instances follow the panoptic map.
    ``with_masks``: also the things as instance targets (:func:`instance_targets`), so
    ``task=instance`` (Mask R-CNN) trains and is scored on the same instances as ``task=panoptic``.
    """
    if transform is not None:
        out = transform(image=image, masks=[panoptic.astype(np.int32)])
        image, panoptic = out["image"], np.asarray(out["masks"][0]).astype(np.int64)
        segments = segments[np.isin(segments[:, 0], np.unique(panoptic))]
    mask, instances = labels_from_panoptic(panoptic, segments, thing_classes, ignore_index)
    item = {
        "image": image_tensor(image),
        "mask": torch.from_numpy(mask),
        "instances": torch.from_numpy(instances),
        "panoptic": torch.from_numpy(np.ascontiguousarray(panoptic, dtype=np.int64)),
        "segments": torch.from_numpy(np.ascontiguousarray(segments, dtype=np.int64)),
        "image_id": image_id,
    }
    if with_masks:
        item.update(instance_targets(np.asarray(panoptic), np.asarray(segments), thing_classes))
    return item


class SyntheticPanopticScenes(SyntheticScenes):
    """Synthetic street scenes as panoptic targets (the keys of the module docstring).

    Things: car, truck, pedestrian (their instances); stuff: unknown (street clutter: a real
    class of the scenes, so stuff, not void), sky, road, sidewalk, building, vegetation. Segment
    ids follow Cityscapes (stuff: category id; things: category id * 1000 + n) with category
    id = class index + 1. Scenes have no crowd regions and no void. ``image_id`` is
    ``synthetic_{split id:06d}_{index:06d}`` (Cityscapes' ``{city}_{seq}_{frame}`` shape).
    """

    thing_classes: tuple[int, ...] = THING_CLASSES
    category_ids: tuple[int, ...] = SYNTHETIC_CATEGORY_IDS

    def __init__(self, *args: Any, with_masks: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.with_masks = bool(with_masks)

    @property
    def info(self) -> DatasetInfo:
        return DatasetInfo(
            num_classes=self.num_classes,
            class_names=self.class_names,
            palette=SCENE_PALETTE,
            instance_classes=self.thing_classes,
            category_ids=self.category_ids,
        )

    def image_id(self, index: int) -> str:
        """The panoptic ``image_id`` of scene ``index``."""
        split_id = {"train": 0, "val": 1, "test": 2}[self.split]
        return f"synthetic_{split_id:06d}_{self._index(index):06d}"

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.render(index)
        image, mask, inst = item["image"], item["mask"], item["instances"]
        if self.transform is not None:
            out = self.transform(image=image, masks=[mask, inst])
            image, (mask, inst) = out["image"], out["masks"]
        pan, segments = panoptic_from_labels(
            np.asarray(mask),
            np.asarray(inst),
            self.thing_classes,
            self.category_ids,
            self.ignore_index,
        )
        return panoptic_item(
            image,
            pan,
            segments,
            self.thing_classes,
            self.image_id(index),
            with_masks=self.with_masks,
        )


class CityscapesPanoptic(Dataset):
    """The Cityscapes panoptic format under ``root`` (see :data:`CITYSCAPES_PANOPTIC_TREE`).

    ``gtFine/cityscapes_panoptic_{split}.json`` lists images (read from
    ``leftImg8bit/{split}/{city}/{image_id}_leftImg8bit.png``, city = the image id's first
    ``_`` field), annotations (``file_name`` of the PNG in ``cityscapes_panoptic_{split}/``,
    ``segments_info``) and categories. ``category_ids`` [K] gives the file's category id of each
    class index (default: Cityscapes' label ids of the 19 trainIds); ``instance_classes`` the
    things (default: Cityscapes'). Every item is checked: PNG ids vs segments_info both ways,
    areas, categories, sizes.
    """

    ignore_index: int = 255
    name: str = "CityscapesPanoptic"
    tree: str = CITYSCAPES_PANOPTIC_TREE

    def __init__(
        self,
        root: str | Path,
        split: str = "val",
        transform: Callable[..., dict[str, Any]] | None = None,
        category_ids: Sequence[int] | None = None,
        class_names: Sequence[str] | None = None,
        instance_classes: Sequence[int] | None = None,
        palette: Any = None,
    ) -> None:
        name = self.name
        check_transform(transform, name)
        self.root = Path(root)
        self.split = split
        self.transform = transform
        require(self.root, name, self.root, self.tree)
        json_path, png_dir, image_dir = self.layout(split)
        self.json_path = require(json_path, name, self.root, self.tree, kind="file")
        self.png_dir = require(png_dir, name, self.root, self.tree)
        image_dir = require(image_dir, name, self.root, self.tree)
        doc = json.loads(self.json_path.read_text())
        for key in ("images", "annotations", "categories"):
            if key not in doc:
                raise PanopticFormatError(
                    f"{self.json_path}: no {key!r} key; expected images, annotations, categories"
                )
        ids, names, things, colours = self.default_classes(doc)
        self.category_ids = tuple(int(c) for c in (category_ids or ids))
        default_names = names if category_ids is None else [str(c) for c in self.category_ids]
        self.class_names = tuple(class_names or default_names)
        self.thing_classes = tuple(
            int(c) for c in (things if instance_classes is None else instance_classes)
        )
        self.palette = (
            np.asarray(palette, dtype=np.uint8)
            if palette is not None
            else (colours if category_ids is None else None)
        )
        if len(self.class_names) != len(self.category_ids):
            raise ValueError(
                f"{name}: {len(self.class_names)} class names for {len(self.category_ids)} category ids"
            )
        self.category_to_class = {c: i for i, c in enumerate(self.category_ids)}
        for cat in doc["categories"]:
            if int(cat["id"]) not in self.category_to_class:
                raise PanopticFormatError(
                    f"{self.json_path}: category id {cat['id']} ({cat.get('name')}) is not in "
                    f"data.category_ids {list(self.category_ids)}"
                )
        images = {im["id"]: im for im in doc["images"]}
        self.items: list[tuple[Path, Path, dict[str, Any], dict[str, Any]]] = []
        for ann in doc["annotations"]:
            image_id = ann["image_id"]
            if image_id not in images:
                raise PanopticFormatError(
                    f"{self.json_path}: annotation {ann.get('file_name')} has image_id {image_id!r} "
                    "that is not in 'images'"
                )
            im = images[image_id]
            image_path = self.image_path(image_dir, image_id, im)
            png = self.png_dir / ann["file_name"]
            for path, what in ((image_path, "image"), (png, "panoptic PNG")):
                if not path.is_file():
                    raise DatasetLayoutError(
                        f"{name}: {what} of image_id {image_id!r} is missing; expected {path}"
                    )
            self.items.append((image_path, png, ann, im))
        if not self.items:
            raise DatasetLayoutError(f"{name}: {self.json_path} has no annotations")

    def layout(self, split: str) -> tuple[Path, Path, Path]:
        """(panoptic JSON, PNG folder, image folder) of a split."""
        gt = self.root / "gtFine"
        return (
            gt / f"cityscapes_panoptic_{split}.json",
            gt / f"cityscapes_panoptic_{split}",
            self.root / "leftImg8bit" / split,
        )

    def image_path(self, image_dir: Path, image_id: Any, im: dict[str, Any]) -> Path:
        """The image of an annotation: ``{city}/{image_id}_leftImg8bit.png`` (city = first ``_`` field).

        createPanopticImgs writes images[].file_name as "*_gtFine_leftImg8bit.png", a name no
        Cityscapes image has: the image is found by its image_id, as the evaluation does.
        """
        return image_dir / str(image_id).split("_")[0] / f"{image_id}_leftImg8bit.png"

    def default_classes(
        self, doc: dict[str, Any]
    ) -> tuple[Sequence[int], Sequence[str], Sequence[int], Any]:
        """(category ids, class names, thing classes, palette) when the config gives none: Cityscapes' 19 classes."""
        return CITYSCAPES_CATEGORY_IDS, CLASS_NAMES, INSTANCE_CLASSES, PALETTE

    @property
    def info(self) -> DatasetInfo:
        return DatasetInfo(
            num_classes=len(self.category_ids),
            class_names=self.class_names,
            palette=self.palette,
            instance_classes=self.thing_classes,
            category_ids=self.category_ids,
        )

    def __len__(self) -> int:
        """Number of annotated images."""
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        image_path, png, ann, im = self.items[index]
        image = read_rgb(image_path)
        pan = read_panoptic_png(png)
        h, w = image.shape[:2]
        if pan.shape != (h, w) or (int(im.get("height", h)), int(im.get("width", w))) != (h, w):
            raise PanopticFormatError(
                f"{png}: panoptic PNG is {pan.shape[1]}x{pan.shape[0]} (WxH), image {image_path} is "
                f"{w}x{h}, JSON says {im.get('width')}x{im.get('height')}; expected all equal"
            )
        where = f"{png} (image_id {ann['image_id']!r})"
        segments = segments_from_info(ann["segments_info"], self.category_to_class, where)
        check_panoptic(pan, ann["segments_info"], where)
        item = panoptic_item(
            image,
            pan,
            segments,
            self.thing_classes,
            str(ann["image_id"]),
            self.transform,
            self.ignore_index,
        )
        item["path"] = str(image_path)
        return item


COCO_PANOPTIC_TREE = """\
<root>/
├── {split}2017/{image file_name}.jpg
└── annotations/panoptic_{split}2017.json
    annotations/panoptic_{split}2017/{image id:012d}.png"""


class COCOPanoptic(CityscapesPanoptic):
    """COCO panoptic (``annotations/panoptic_{split}2017.json`` + PNG folder, images ``{split}2017/``).

    Without ``category_ids`` the classes are the JSON's categories in id order (133 for COCO
    2017: the 80 things first), names and things (``isthing``) from the JSON; the palette from
    the categories' ``color``. Same item keys and checks as :class:`CityscapesPanoptic`.
    """

    name = "COCOPanoptic"
    tree = COCO_PANOPTIC_TREE

    def __init__(
        self, root: str | Path, split: str = "val", year: int = 2017, **kwargs: Any
    ) -> None:
        self.year = year
        super().__init__(root, split, **kwargs)

    def layout(self, split: str) -> tuple[Path, Path, Path]:
        ann = self.root / "annotations"
        return (
            ann / f"panoptic_{split}{self.year}.json",
            ann / f"panoptic_{split}{self.year}",
            self.root / f"{split}{self.year}",
        )

    def image_path(self, image_dir: Path, image_id: Any, im: dict[str, Any]) -> Path:
        return image_dir / im["file_name"]

    def default_classes(
        self, doc: dict[str, Any]
    ) -> tuple[Sequence[int], Sequence[str], Sequence[int], Any]:
        cats = sorted(doc["categories"], key=lambda c: int(c["id"]))
        palette = np.asarray([c.get("color", [0, 0, 0]) for c in cats], dtype=np.uint8)
        return (
            [int(c["id"]) for c in cats],
            [str(c.get("name", c["id"])) for c in cats],
            [i for i, c in enumerate(cats) if int(c.get("isthing", 0))],
            palette,
        )
