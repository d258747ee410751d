"""The detection item shared by the box datasets: box-aware transforms, letterbox resize, the item dict.

Every detection dataset (synthetic scenes, COCO, VOC) returns one dict per image:

- ``image``: float32 [3, H, W] in [0, 1]; one dataset config gives one H, W (letterboxed: resized
  so the image fits, padded with zeros at the bottom/right, so coordinates are not shifted);
- ``boxes``: float32 [N, 4] ``(x1, y1, x2, y2)`` in pixels of the returned image;
- ``labels``: int64 [N], contiguous class indices 0..K-1 (no background index);
- ``iscrowd``: bool [N], regions ignored in training and matched as "ignore" by COCO evaluation
  (COCO ``iscrowd``, VOC ``difficult``, synthetic instances with too few visible pixels);
- ``area``: float32 [N], the object's area in pixels of the *original* image (COCO's annotation
  ``area``: the segment area, which decides small / medium / large in COCO evaluation);
- ``image_id``: int, ``scale``: float (returned / original size, so original box = box / scale),
  ``orig_size``: int64 [2] (H, W of the original image), ``name``: str;
- ``masks`` (only with ``with_masks=True``): uint8 [N, H, W] per-instance masks.

Box coordinates follow COCO and torchvision: pixel column ``c`` spans ``[c, c + 1)``, so the box
of pixels ``c0..c1`` (inclusive) is ``x1 = c0, x2 = c1 + 1`` and a box's ``w * h`` equals the
pixel count of a filled rectangle. Scaling an image by ``s`` (cv2 maps pixel edges linearly)
scales these coordinates by exactly ``s``.

Per-image tensors stay lists in a batch: ``DictCollate(DETECTION_LIST_KEYS)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import torch
from scipy import ndimage
from torch.utils.data import Dataset

from pixelwise.data.info import DatasetInfo
from pixelwise.data.label_io import Transform, check_transform, image_tensor

__all__ = [
    "DETECTION_LIST_KEYS",
    "DetectionDataset",
    "boxes_from_instances",
    "check_box_transform",
    "check_size",
    "detection_item",
    "letterbox",
    "transform_and_letterbox",
    "transform_with_boxes",
]

# The per-image keys a DataModule must keep as lists (add "masks" when with_masks=True).
DETECTION_LIST_KEYS: tuple[str, ...] = ("boxes", "labels", "iscrowd", "area")


def check_size(size: Any, dataset: str) -> tuple[int, int] | None:
    """`size` as (H, W): an int S means S x S (longest side S, padded square); None = no resize."""
    if size is None:
        return None
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        size = (int(size), int(size))
    ok = isinstance(size, Sequence) and not isinstance(size, str) and len(size) == 2
    ok = ok and all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in size)
    if not ok or not all(8 <= s <= 8192 for s in size):
        raise ValueError(
            f"{dataset}: size={size!r} is invalid; expected an int S (longest side, padded to "
            "S x S), a pair (height, width) in [8, 8192], or None (keep the image size)"
        )
    return int(size[0]), int(size[1])


def check_box_transform(transform: Any, dataset: str) -> None:
    """Raise unless transform is None or an albumentations Compose with pascal_voc bbox_params."""
    check_transform(transform, dataset)
    if transform is None:
        return
    processor = getattr(transform, "processors", {}).get("bboxes")
    if processor is None:
        raise ValueError(
            f"{dataset}: transform {type(transform).__name__} has no bbox_params, so boxes would "
            "not follow the image; expected albumentations.Compose([...], bbox_params="
            "A.BboxParams(format='pascal_voc', min_visibility=..., min_area=...))"
        )
    fmt = processor.params.format
    if fmt != "pascal_voc":
        raise ValueError(
            f"{dataset}: transform bbox_params.format={fmt!r}; expected 'pascal_voc' "
            "(x1, y1, x2, y2 in pixels, the format the dataset passes)"
        )


def boxes_from_instances(instances: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Tight boxes float32 [n, 4] (xyxy) and pixel counts int64 [n] of ids 1..n in instances [H, W].

    Row ``k`` is instance ``k + 1``; an absent id gets a zero box and count 0.
    """
    boxes = np.zeros((n, 4), dtype=np.float32)
    if n == 0:
        return boxes, np.zeros(0, dtype=np.int64)
    counts = np.bincount(instances.ravel(), minlength=n + 1)[1 : n + 1].astype(np.int64)
    for k, sl in enumerate(ndimage.find_objects(instances, max_label=n)):
        if sl is not None:
            boxes[k] = (sl[1].start, sl[0].start, sl[1].stop, sl[0].stop)
    return boxes, counts


def transform_with_boxes(
    transform: Transform,
    image: np.ndarray,
    boxes: np.ndarray,
    masks: list[np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray] | None]:
    """Apply a bbox-aware albumentations transform to image [H,W,3] and boxes [N,4] (xyxy).

    Returns (image, boxes [M,4], keep int64 [M] = input rows of the kept boxes, masks or None).
    Boxes must lie inside the image (clip them first); the transform's bbox_params drop boxes
    cut below min_visibility / min_area.
    """
    h, w = image.shape[:2]
    tagged = np.concatenate(
        [boxes.reshape(-1, 4).astype(np.float32), np.arange(len(boxes), dtype=np.float32)[:, None]],
        axis=1,
    )
    kwargs: dict[str, Any] = {"image": image, "bboxes": tagged}
    if masks is not None:
        kwargs["masks"] = masks
    out = transform(**kwargs)
    kept = np.asarray(out["bboxes"], dtype=np.float32)
    if kept.size == 0:
        kept = np.zeros((0, 5), dtype=np.float32)
    kept = kept.reshape(-1, kept.shape[-1])
    keep = np.rint(kept[:, 4]).astype(np.int64)
    return (
        out["image"],
        kept[:, :4].copy(),
        keep,
        (list(out["masks"]) if masks is not None else None),
    )


def letterbox(
    image: np.ndarray, size: tuple[int, int], masks: np.ndarray | None = None
) -> tuple[np.ndarray, float, np.ndarray | None]:
    """Resize image [h,w,3] by s = min(H/h, W/w) and pad bottom/right with zeros to size (H, W).

    Returns (image [H,W,3], s, masks uint8 [N,H,W] resized nearest or None). The content is
    scaled by exactly s in both axes (cv2 with fx = fy = s), so boxes scale by s.
    """
    h, w = image.shape[:2]
    height, width = size
    s = min(height / h, width / w)
    if s != 1.0:
        interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
        image = cv2.resize(image, None, fx=s, fy=s, interpolation=interp)
    nh, nw = image.shape[:2]
    out = np.zeros((height, width) + image.shape[2:], dtype=image.dtype)
    out[: min(nh, height), : min(nw, width)] = image[:height, :width]
    if masks is not None:
        resized = np.zeros((len(masks), height, width), dtype=np.uint8)
        for k, m in enumerate(masks):
            r = (
                m
                if s == 1.0
                else cv2.resize(m, None, fx=s, fy=s, interpolation=cv2.INTER_NEAREST_EXACT)
            )
            resized[k, : min(nh, height), : min(nw, width)] = r[:height, :width]
        masks = resized
    return out, s, masks


def transform_and_letterbox(
    image: np.ndarray,
    boxes: np.ndarray,
    per_box: Sequence[np.ndarray],
    transform: Transform | None,
    size: tuple[int, int] | None,
    masks: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray], np.ndarray | None, float]:
    """An on-disk detection item's geometry: the bbox-aware transform (if any), then the letterbox
    to `size` (if any).

    image [h,w,3], boxes [N,4] xyxy inside the image, per_box: arrays [N] that follow the boxes
    (labels, iscrowd, area), masks uint8 [N,h,w] or None. Returns (image [H,W,3], boxes [M,4] in
    returned pixels, per_box arrays [M] of the kept boxes, masks uint8 [M,H,W] or None, scale).
    """
    per_box = list(per_box)
    if transform is not None:
        image, boxes, keep, out_masks = transform_with_boxes(
            transform, image, boxes, list(masks) if masks is not None else None
        )
        per_box = [values[keep] for values in per_box]
        if masks is not None:
            masks = (
                np.stack([out_masks[k] for k in keep])
                if len(keep)
                else np.zeros((0,) + image.shape[:2], dtype=np.uint8)
            )
    scale = 1.0
    if size is not None:
        image, scale, masks = letterbox(image, size, masks)
        boxes = boxes * np.float32(scale)
    return image, boxes, per_box, masks, scale


def detection_item(
    image: np.ndarray,
    boxes: np.ndarray,
    labels: np.ndarray,
    iscrowd: np.ndarray,
    area: np.ndarray,
    image_id: int,
    scale: float,
    orig_size: tuple[int, int],
    name: str,
    masks: np.ndarray | None = None,
) -> dict[str, Any]:
    """The item dict (see the module docstring) from numpy parts; masks uint8 [N,H,W] if given."""
    item: dict[str, Any] = {
        "image": image_tensor(image),
        "boxes": torch.from_numpy(np.ascontiguousarray(boxes, dtype=np.float32).reshape(-1, 4)),
        "labels": torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64).reshape(-1)),
        "iscrowd": torch.from_numpy(np.ascontiguousarray(iscrowd, dtype=np.bool_).reshape(-1)),
        "area": torch.from_numpy(np.ascontiguousarray(area, dtype=np.float32).reshape(-1)),
        "image_id": int(image_id),
        "scale": float(scale),
        "orig_size": torch.tensor(orig_size, dtype=torch.int64),
        "name": str(name),
    }
    if masks is not None:
        h, w = item["image"].shape[-2:]
        item["masks"] = torch.from_numpy(
            np.ascontiguousarray(masks, dtype=np.uint8).reshape(-1, h, w)
        )
    return item


class DetectionDataset(Dataset):
    """A dataset of detection items: declares its classes, category ids and item size.

    Subclasses set ``num_classes``, ``class_names``, ``category_ids`` (the dataset's id of each
    contiguous class index) and ``size`` ((H, W) of the items, or None when each image keeps its
    own) and return :func:`detection_item` dicts.
    """

    num_classes: int
    class_names: tuple[str, ...]
    category_ids: tuple[int, ...]
    size: tuple[int, int] | None

    @property
    def info(self) -> DatasetInfo:
        """Classes, category ids and item size, for ``DataModule.info``."""
        return DatasetInfo(
            num_classes=self.num_classes,
            class_names=self.class_names,
            category_ids=self.category_ids,
            image_size=self.size,
        )
