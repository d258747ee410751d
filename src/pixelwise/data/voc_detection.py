"""VOCDetection: Pascal VOC 2007 / 2012 boxes read from the VOCdevkit's own XML annotations.

Layout (``root`` is the folder holding ``VOCdevkit/``, or ``VOCdevkit/`` itself)::

    VOCdevkit/VOC2007/JPEGImages/<id>.jpg
    VOCdevkit/VOC2007/Annotations/<id>.xml
    VOCdevkit/VOC2007/ImageSets/Main/{train,val,trainval,test}.txt     one <id> per line

Boxes: VOC's ``<bndbox>`` holds 1-based, inclusive pixel indices — the box ``xmin=1, xmax=3``
covers the first three pixel columns. In our boxes (COCO's, torchvision's) column ``c`` (0-based)
spans ``[c, c + 1)``, so those columns are ``[0, 3)``: ``x1 = xmin - 1``, ``x2 = xmax`` (the
same for y); width ``xmax - xmin + 1``, as the VOC devkit counts it. ``difficult`` objects are
kept as ``iscrowd`` (ignored in training, "ignore" in COCO evaluation; VOC's own AP ignores
them too) unless ``keep_difficult=False`` drops them.

``image_id`` is the digits of the id (``000005`` -> 5, ``2008_000008`` -> 2008000008), unique
across VOC2007 and VOC2012, so ``year: [2007, 2012]`` (the usual "07+12" training set) works.
Labels 0..19 are the 20 classes in the devkit's order; category ids 1..20 in COCO-format files.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pixelwise.data.detection_items import (
    DetectionDataset,
    check_box_transform,
    check_size,
    detection_item,
    transform_and_letterbox,
)
from pixelwise.data.label_io import DatasetLayoutError, Transform, read_rgb
from pixelwise.errors import DataFormatError

__all__ = ["VOC_DETECTION_CLASSES", "VOC_DETECTION_TREE", "VOCDetection", "VOCFormatError"]

VOC_DETECTION_CLASSES: tuple[str, ...] = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)  # fmt: skip
VOC_DETECTION_SPLITS = ("train", "val", "trainval", "test")
VOC_DETECTION_TREE = """\
<root>/VOCdevkit/VOC<year>/
├── JPEGImages/<id>.jpg
├── Annotations/<id>.xml          <size>, <object><name>, <difficult>, <bndbox> (1-based, inclusive)
└── ImageSets/Main/{train,val,trainval,test}.txt   one <id> per line"""
_LABEL = {name: k for k, name in enumerate(VOC_DETECTION_CLASSES)}


class VOCFormatError(DataFormatError):
    """An annotation XML is not what the VOC format says (names file, object, value)."""


def _image_id(voc_id: str, fallback: int) -> int:
    digits = voc_id.replace("_", "")
    return int(digits) if digits.isdigit() else fallback


def parse_voc_xml(path: Path) -> dict[str, Any]:
    """One VOC annotation file -> {"size": (H, W), "boxes" float32 [N,4] xyxy (our convention),
    "labels" int64 [N], "difficult" bool [N]}; errors name the file, the object and the value."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise VOCFormatError(f"{path}: not valid XML ({err})") from None

    def number(node: ET.Element | None, tag: str, where: str) -> float:
        child = node.find(tag) if node is not None else None
        try:
            return float(child.text)  # type: ignore[union-attr, arg-type]
        except (AttributeError, TypeError, ValueError):
            text = None if child is None else child.text
            raise VOCFormatError(
                f"{path}: {where} <{tag}> is {text!r}; expected a number"
            ) from None

    size = root.find("size")
    w, h = number(size, "width", "<size>"), number(size, "height", "<size>")
    boxes, labels, difficult = [], [], []
    for k, obj in enumerate(root.findall("object")):
        name = (obj.findtext("name") or "").strip()
        where = f"object {k} ({name!r})"
        if name not in _LABEL:
            raise VOCFormatError(
                f"{path}: {where} has class name {name!r}; expected one of the 20 VOC classes "
                f"{list(VOC_DETECTION_CLASSES)}"
            )
        box = obj.find("bndbox")
        if box is None:
            raise VOCFormatError(f"{path}: {where} has no <bndbox>")
        xmin, ymin, xmax, ymax = (number(box, t, where) for t in ("xmin", "ymin", "xmax", "ymax"))
        # 1-based inclusive; 0 (seen in a few files) is read as the first pixel.
        if not (0 <= xmin <= xmax <= w and 0 <= ymin <= ymax <= h):
            raise VOCFormatError(
                f"{path}: {where} has bndbox xmin={xmin:g} ymin={ymin:g} xmax={xmax:g} "
                f"ymax={ymax:g}; expected 1 <= xmin <= xmax <= width={w:g} and "
                f"1 <= ymin <= ymax <= height={h:g} (1-based, inclusive pixel indices)"
            )
        boxes.append([max(xmin - 1, 0.0), max(ymin - 1, 0.0), xmax, ymax])
        labels.append(_LABEL[name])
        difficult.append(
            bool(int(number(obj, "difficult", where)))
            if obj.find("difficult") is not None
            else False
        )
    return {
        "size": (int(h), int(w)),
        "boxes": np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
        "labels": np.asarray(labels, dtype=np.int64),
        "difficult": np.asarray(difficult, dtype=bool),
    }


class VOCDetection(DetectionDataset):
    """Pascal VOC detection: image float32 [3,H,W], boxes float32 [N,4] xyxy, labels int64 [N]
    (0..19), iscrowd bool [N] (= difficult), area float32 [N] (box area, original pixels),
    image_id, scale, orig_size, name (the VOC id) — see :mod:`pixelwise.data.detection_items`.

    ``size``: int S letterboxes into S x S, (H, W) fits into H x W, None keeps the image size.
    ``transform``: a bbox-aware albumentations Compose applied before the letterbox.
    """

    num_classes: int = len(VOC_DETECTION_CLASSES)
    class_names: tuple[str, ...] = VOC_DETECTION_CLASSES
    category_ids: tuple[int, ...] = tuple(range(1, len(VOC_DETECTION_CLASSES) + 1))

    def __init__(
        self,
        root: str | Path,
        split: str = "trainval",
        year: int | str | Sequence[int | str] = 2007,
        size: int | Sequence[int] | None = 512,
        transform: Transform | None = None,
        keep_difficult: bool = True,
        limit: int | None = None,
    ) -> None:
        name = "VOCDetection"
        if split not in VOC_DETECTION_SPLITS:
            raise ValueError(
                f"{name}: split={split!r} is invalid; expected one of {list(VOC_DETECTION_SPLITS)}"
            )
        years = [str(y) for y in ([year] if isinstance(year, (int, str)) else year)]
        if not years or any(y not in ("2007", "2012") for y in years):
            raise ValueError(
                f"{name}: year={year!r} is invalid; expected 2007, 2012 or a list of them"
            )
        if limit is not None and (
            not isinstance(limit, int) or isinstance(limit, bool) or limit < 1
        ):
            raise ValueError(f"{name}: limit={limit!r} is invalid; expected a positive int or None")
        self.size = check_size(size, name)
        check_box_transform(transform, name)
        self.transform = transform
        self.split = split
        self.root = Path(root)
        devkit = self.root / "VOCdevkit" if (self.root / "VOCdevkit").is_dir() else self.root
        self.records: list[dict[str, Any]] = []
        for y in years:
            tree = VOC_DETECTION_TREE.replace("<year>", y)
            base = devkit / f"VOC{y}"
            parts = (base, base / "JPEGImages", base / "Annotations", base / "ImageSets" / "Main")
            for path in parts:
                if not path.is_dir():
                    raise DatasetLayoutError(
                        f"{name}: {path} is missing (expected a directory).\n"
                        f"Expected this layout under data.root={self.root}:\n{tree}"
                    )
            list_file = base / "ImageSets" / "Main" / f"{split}.txt"
            if not list_file.is_file():
                raise DatasetLayoutError(
                    f"{name}: {list_file} is missing (expected a file).\n"
                    f"Expected this layout under data.root={self.root}:\n{tree}"
                )
            ids = [line.split()[0] for line in list_file.read_text().splitlines() if line.strip()]
            if not ids:
                raise DatasetLayoutError(
                    f"{name}: {list_file} lists no image ids; expected one <id> per line"
                )
            images = set(os.listdir(base / "JPEGImages"))
            for voc_id in ids:
                if limit is not None and len(self.records) == limit:
                    break
                xml = base / "Annotations" / f"{voc_id}.xml"
                if not xml.is_file():
                    raise DatasetLayoutError(
                        f"{name}: id {voc_id!r} of {list_file} has no annotation; expected {xml}"
                    )
                if f"{voc_id}.jpg" not in images:
                    raise DatasetLayoutError(
                        f"{name}: id {voc_id!r} of {list_file} has no image; expected {base / 'JPEGImages' / (voc_id + '.jpg')}"
                    )
                ann = parse_voc_xml(xml)
                if not keep_difficult:
                    keep = ~ann["difficult"]
                    ann = dict(
                        ann,
                        boxes=ann["boxes"][keep],
                        labels=ann["labels"][keep],
                        difficult=ann["difficult"][keep],
                    )
                ann.update(
                    id=voc_id,
                    xml=xml,
                    image=base / "JPEGImages" / f"{voc_id}.jpg",
                    image_id=_image_id(voc_id, len(self.records)),
                )
                self.records.append(ann)

    def __len__(self) -> int:
        """Number of images."""
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Image `index` (list-file order) as a detection item."""
        cv2.setNumThreads(0)
        r = self.records[index]
        image = read_rgb(r["image"])
        h, w = r["size"]
        if image.shape[:2] != (h, w):
            raise VOCFormatError(
                f"{r['image']}: image is {image.shape[1]}x{image.shape[0]} (WxH) but {r['xml']} "
                f"says {w}x{h}"
            )
        boxes, labels, crowd = r["boxes"], r["labels"], r["difficult"]
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        image, boxes, (labels, crowd, area), _, scale = transform_and_letterbox(
            image, boxes, (labels, crowd, area), self.transform, self.size
        )
        return detection_item(
            image, boxes, labels, crowd, area, r["image_id"], scale, (h, w), r["id"]
        )
