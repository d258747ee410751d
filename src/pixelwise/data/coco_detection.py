"""COCODetection: MS-COCO instances (boxes, optional masks) read from COCO's own on-disk layout.

Layout under ``root`` (what https://cocodataset.org ships)::

    <root>/annotations/instances_{split}2017.json
    <root>/{split}2017/<file_name of each image in the JSON>

The reader follows the JSON: an image is read from ``{split}2017/<file_name>``, whatever its
extension (the synthetic export writes PNGs). Category ids are mapped to contiguous labels
0..K-1 in sorted category-id order (``category_ids[label]`` maps back). Crowd annotations are kept
with ``iscrowd=True`` (ignored in training, matched as "ignore" by COCO evaluation). Images with
no annotation are dropped for training only (``keep_empty``).

COCO boxes ``[x, y, w, h]`` are converted to ``(x, y, x + w, y + h)``; boxes that overhang the
image by at most ``overhang`` pixels (rounding in the annotations) are clipped, larger ones raise.
"""

from __future__ import annotations

import json
import os
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
from pixelwise.formats.coco import decode_segmentation

__all__ = ["COCO_TREE", "COCODetection", "CocoFormatError"]

COCO_TREE = """\
<root>/
├── annotations/instances_{split}2017.json
└── {split}2017/<file_name>        one image per entry of the JSON's "images\""""


class CocoFormatError(DataFormatError):
    """An annotation file's content is not what COCO's format says (names file, id, value)."""


class COCODetection(DetectionDataset):
    """COCO instances: image float32 [3,H,W], boxes float32 [N,4] xyxy, labels int64 [N] (0..K-1),
    iscrowd bool [N], area float32 [N] (COCO's, original pixels), image_id (COCO's), scale,
    orig_size, name; masks uint8 [N,H,W] with ``with_masks=True``.

    ``size``: an int S letterboxes into S x S (longest side S, zero pad bottom/right), (H, W)
    fits into H x W, None keeps each image's size (batches then need batch_size 1).
    ``transform``: a bbox-aware albumentations Compose applied before the letterbox (``scale``
    is then relative to the transformed image; keep geometric transforms out of eval splits).
    ``min_box_size``: boxes narrower or lower than this (original pixels) become iscrowd.
    ``limit``: the first `limit` images (by image id), for quick runs.
    ``category_ids``: the config's label -> category id list (``data.category_ids``); when given,
    label k is ``category_ids[k]`` and a file category outside it is an error naming the
    overrides to use; None takes the file's categories in sorted id order.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        size: int | Sequence[int] | None = 512,
        transform: Transform | None = None,
        with_masks: bool = False,
        keep_empty: bool | None = None,
        min_box_size: float = 0.0,
        overhang: float = 4.0,
        limit: int | None = None,
        year: int | str = 2017,
        category_ids: Sequence[int] | None = None,
    ) -> None:
        name = "COCODetection"
        self.root = Path(root)
        self.split = str(split)
        self.size = check_size(size, name)
        check_box_transform(transform, name)
        self.transform = transform
        self.with_masks = bool(with_masks)
        if limit is not None and (
            not isinstance(limit, int) or isinstance(limit, bool) or limit < 1
        ):
            raise ValueError(f"{name}: limit={limit!r} is invalid; expected a positive int or None")
        tree = COCO_TREE.replace("{split}", self.split).replace("2017", str(year))
        if not self.root.is_dir():
            raise DatasetLayoutError(
                f"{name}: data.root={self.root} is not a directory.\nExpected this layout:\n{tree}"
            )
        self.ann_file = self.root / "annotations" / f"instances_{self.split}{year}.json"
        self.image_dir = self.root / f"{self.split}{year}"
        for path, kind in ((self.ann_file, "file"), (self.image_dir, "directory")):
            if not (path.is_file() if kind == "file" else path.is_dir()):
                raise DatasetLayoutError(
                    f"{name}: {path} is missing (expected a {kind}).\n"
                    f"Expected this layout under data.root={self.root}:\n{tree}"
                )
        with open(self.ann_file) as f:
            try:
                data = json.load(f)
            except json.JSONDecodeError as err:
                raise CocoFormatError(f"{self.ann_file}: not valid JSON ({err})") from None
        self._expected_ids = None if category_ids is None else [int(c) for c in category_ids]
        self._parse(
            data,
            keep_empty if keep_empty is not None else self.split != "train",
            float(min_box_size),
            float(overhang),
            limit,
        )

    # ------------------------------------------------------------------ parsing

    def _parse(
        self, data: Any, keep_empty: bool, min_box_size: float, overhang: float, limit: int | None
    ) -> None:
        f = self.ann_file
        for key in ("images", "annotations", "categories"):
            if not isinstance(data, dict) or not isinstance(data.get(key), list):
                raise CocoFormatError(f"{f}: no {key!r} list; expected a COCO instances file")
        cats = sorted(int(c["id"]) for c in data["categories"])
        names = {int(c["id"]): str(c.get("name", c["id"])) for c in data["categories"]}
        if self._expected_ids is not None:
            unknown = [c for c in cats if c not in self._expected_ids]
            if unknown:
                listed = ",".join(names[c] for c in cats)
                raise CocoFormatError(
                    f"{f}: categories {unknown} ({', '.join(names[c] for c in unknown)}) are not in "
                    f"data.category_ids={self._expected_ids}; for this file set "
                    f"data.num_classes={len(cats)} 'data.class_names=[{listed}]' "
                    f"'data.category_ids={cats}'"
                )
            cats = list(self._expected_ids)
        self.category_ids: tuple[int, ...] = tuple(cats)
        self.class_names: tuple[str, ...] = tuple(names.get(c, str(c)) for c in cats)
        self.num_classes: int = len(cats)
        cat_to_label = {c: k for k, c in enumerate(cats)}

        images = sorted(data["images"], key=lambda im: int(im["id"]))
        info = {int(im["id"]): im for im in images}
        per_image: dict[int, list[dict[str, Any]]] = {i: [] for i in info}
        for ann in data["annotations"]:
            aid = ann.get("id")
            iid = ann.get("image_id")
            if iid not in per_image:
                raise CocoFormatError(
                    f"{f}: annotation id {aid} refers to image_id {iid!r}, which is not in 'images'"
                )
            if ann.get("category_id") not in cat_to_label:
                raise CocoFormatError(
                    f"{f}: annotation id {aid} has category_id {ann.get('category_id')!r}; "
                    f"expected one of the file's categories {cats}"
                )
            per_image[iid].append(ann)

        self.records: list[dict[str, Any]] = []
        for iid in info:
            im, anns = info[iid], per_image[iid]
            if not keep_empty and not any(not a.get("iscrowd", 0) for a in anns):
                continue
            h, w = int(im["height"]), int(im["width"])
            boxes = np.zeros((len(anns), 4), dtype=np.float32)
            for k, ann in enumerate(anns):
                boxes[k] = self._check_box(ann, im, overhang)
            wh = boxes[:, 2:] - boxes[:, :2]
            crowd = np.array([bool(a.get("iscrowd", 0)) for a in anns], dtype=bool)
            crowd |= (wh < min_box_size).any(axis=1)
            self.records.append(
                {
                    "id": iid,
                    "file_name": str(im["file_name"]),
                    "size": (h, w),
                    "boxes": boxes,
                    "labels": np.array(
                        [cat_to_label[a["category_id"]] for a in anns], dtype=np.int64
                    ),
                    "iscrowd": crowd,
                    "area": np.array([float(a.get("area", 0.0)) for a in anns], dtype=np.float32),
                    "ann_ids": [a.get("id") for a in anns],
                    "segmentation": [a.get("segmentation") for a in anns]
                    if self.with_masks
                    else None,
                }
            )
            if limit is not None and len(self.records) == limit:
                break
        present = set(os.listdir(self.image_dir))
        missing = [r for r in self.records if r["file_name"] not in present]
        if missing:
            r = missing[0]
            raise DatasetLayoutError(
                f"COCODetection: {len(missing)} image(s) listed in {f} are absent, e.g. image id "
                f"{r['id']}: expected {self.image_dir / r['file_name']}"
            )

    def _check_box(self, ann: dict[str, Any], im: dict[str, Any], overhang: float) -> np.ndarray:
        """The annotation's bbox as xyxy float32 [4], clipped to the image; errors name file and id."""
        bbox = ann.get("bbox")
        h, w = float(im["height"]), float(im["width"])
        where = f"{self.ann_file}: annotation id {ann.get('id')} (image id {im['id']}, {im['file_name']}, {w:g}x{h:g})"
        if not (
            isinstance(bbox, list)
            and len(bbox) == 4
            and all(isinstance(v, (int, float)) for v in bbox)
        ):
            raise CocoFormatError(f"{where}: bbox {bbox!r} is not [x, y, w, h] (four numbers)")
        x, y, bw, bh = (float(v) for v in bbox)
        if bw < 0 or bh < 0:
            raise CocoFormatError(
                f"{where}: bbox {bbox} has a negative width or height; expected [x, y, w, h] "
                "with w, h >= 0 (x2 < x1: was it written as [x1, y1, x2, y2]?)"
            )
        if x < -overhang or y < -overhang or x + bw > w + overhang or y + bh > h + overhang:
            raise CocoFormatError(
                f"{where}: bbox {bbox} (x2={x + bw:g}, y2={y + bh:g}) lies outside the image; "
                f"expected 0 <= x, x + w <= {w:g}, 0 <= y, y + h <= {h:g} (to {overhang:g} px)"
            )
        return np.array(
            [
                min(max(x, 0.0), w),
                min(max(y, 0.0), h),
                min(max(x + bw, 0.0), w),
                min(max(y + bh, 0.0), h),
            ],
            dtype=np.float32,
        )

    # ------------------------------------------------------------------ items

    def __len__(self) -> int:
        """Number of images."""
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Image `index` (in image-id order) as a detection item (see pixelwise.data.detection_items)."""
        cv2.setNumThreads(0)
        r = self.records[index]
        path = self.image_dir / r["file_name"]
        image = read_rgb(path)
        h, w = r["size"]
        if image.shape[:2] != (h, w):
            raise CocoFormatError(
                f"{path}: image is {image.shape[1]}x{image.shape[0]} (WxH) but {self.ann_file} "
                f"says {w}x{h} for image id {r['id']}"
            )
        boxes, labels, crowd, area = r["boxes"], r["labels"], r["iscrowd"], r["area"]
        masks = None
        if self.with_masks:
            masks = np.zeros((len(boxes), h, w), dtype=np.uint8)
            for k, segm in enumerate(r["segmentation"]):
                if segm is None:
                    raise CocoFormatError(
                        f"{self.ann_file}: annotation id {r['ann_ids'][k]} has no segmentation; "
                        "expected polygons or RLE (or use with_masks=False)"
                    )
                try:
                    masks[k] = decode_segmentation(segm, h, w)
                except Exception as err:
                    raise CocoFormatError(
                        f"{self.ann_file}: annotation id {r['ann_ids'][k]}: {err}"
                    ) from None
        image, boxes, (labels, crowd, area), masks, scale = transform_and_letterbox(
            image, boxes, (labels, crowd, area), self.transform, self.size, masks
        )
        return detection_item(
            image,
            boxes,
            labels,
            crowd,
            area,
            r["id"],
            scale,
            (h, w),
            Path(r["file_name"]).stem,
            masks,
        )
