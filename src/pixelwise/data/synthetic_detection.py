"""SyntheticDetectionScenes: the synthetic street scenes as a detection dataset (boxes of cars, trucks, pedestrians).

Boxes are the tight boxes of the *visible* pixels of every car / truck / pedestrian instance
of :class:`pixelwise.data.synthetic_scenes.SyntheticScenes` (the instance maps already number
them 1..n), so a parked car half hidden behind a truck gets the box of its visible half.
Items are deterministic per (seed, split, index) when no random transform is given.

A box-aware albumentations transform (``bbox_params`` in ``pascal_voc`` format) moves the boxes
with flips, crops and scales and drops those cut below its ``min_visibility`` / ``min_area``;
the kept boxes are then tightened to the transformed instance map (the instance map goes
through the transform as a mask), so they stay the boxes of the visible pixels even after a
rotation or a crop. Instances with fewer than ``min_pixels`` visible pixels are kept as
``iscrowd`` (ignore) regions: too small to learn, but a detection on them is no false positive.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from pixelwise.data.detection_items import (
    DetectionDataset,
    boxes_from_instances,
    check_box_transform,
    detection_item,
    transform_with_boxes,
)
from pixelwise.data.label_io import Transform
from pixelwise.data.scene_render import CAR, PEDESTRIAN, TRUCK
from pixelwise.data.synthetic_scenes import SyntheticScenes

__all__ = ["DETECTION_CLASSES", "DETECTION_CATEGORY_IDS", "SyntheticDetectionScenes"]

DETECTION_CLASSES: tuple[str, ...] = ("car", "truck", "pedestrian")
# COCO-style category ids of the classes (used by the COCO export and results files).
DETECTION_CATEGORY_IDS: tuple[int, ...] = (1, 2, 3)
# Scene class id (SCENE_CLASSES) -> detection label (-1 = not a detection class).
_SCENE_TO_LABEL = np.full(256, -1, dtype=np.int64)
_SCENE_TO_LABEL[[CAR, TRUCK, PEDESTRIAN]] = np.arange(3)


class SyntheticDetectionScenes(DetectionDataset):
    """Street scenes with boxes: image float32 [3,H,W], boxes float32 [N,4] xyxy, labels int64 [N]
    (car 0, truck 1, pedestrian 2), iscrowd bool [N], area float32 [N], image_id, scale, orig_size,
    name, and masks uint8 [N,H,W] with ``with_masks=True`` (see :mod:`pixelwise.data.detection_items`).
    """

    num_classes: int = len(DETECTION_CLASSES)
    class_names: tuple[str, ...] = DETECTION_CLASSES
    category_ids: tuple[int, ...] = DETECTION_CATEGORY_IDS

    def __init__(
        self,
        size: Sequence[int] = (128, 160),
        length: int = 2000,
        seed: int = 0,
        split: str = "train",
        transform: Transform | None = None,
        with_masks: bool = False,
        min_pixels: int = 16,
    ) -> None:
        name = "SyntheticDetectionScenes"
        self.scenes = SyntheticScenes(size=size, length=length, seed=seed, split=split)
        check_box_transform(transform, name)
        if (
            not isinstance(min_pixels, (int, np.integer))
            or isinstance(min_pixels, bool)
            or min_pixels < 0
        ):
            raise ValueError(f"{name}: min_pixels={min_pixels!r} is invalid; expected an int >= 0")
        self.size = self.scenes.size
        self.split = split
        self.seed = self.scenes.seed
        self.transform = transform
        self.with_masks = bool(with_masks)
        self.min_pixels = int(min_pixels)

    def __len__(self) -> int:
        """Number of scenes."""
        return len(self.scenes)

    def annotations(self, index: int) -> dict[str, np.ndarray]:
        """Scene `index` untransformed, as numpy: image uint8 [H,W,3], instances int32 [H,W] (ids 1..N),
        boxes float32 [N,4] xyxy, labels int64 [N], pixels int64 [N] (row k = instance k + 1)."""
        scene = self.scenes.render(index)
        inst, mask = scene["instances"], scene["mask"]
        n = int(inst.max(initial=0))
        boxes, pixels = boxes_from_instances(inst, n)
        cls = np.zeros(n + 1, dtype=np.int64)
        cls[inst.ravel()] = mask.ravel()  # every pixel of an instance has the instance's class
        labels = _SCENE_TO_LABEL[cls[1:]]
        if (labels < 0).any():  # the renderer numbers only car, truck and pedestrian pixels
            raise RuntimeError(
                f"scene {index}: an instance has a class outside car/truck/pedestrian"
            )
        return {
            "image": scene["image"],
            "instances": inst,
            "boxes": boxes,
            "labels": labels,
            "pixels": pixels,
        }

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Scene `index` as a detection item (the transform, if any, applied to image, boxes and instances)."""
        cv2.setNumThreads(0)
        i = self.scenes._index(index)
        ann = self.annotations(i)
        image, inst, labels = ann["image"], ann["instances"], ann["labels"]
        n = len(labels)
        ids = np.arange(1, n + 1)
        boxes, pixels = ann["boxes"], ann["pixels"]
        if self.transform is not None:
            image, _, keep, masks = transform_with_boxes(self.transform, image, boxes, [inst])
            inst = np.asarray(masks[0], dtype=np.int32)
            tight, counts = boxes_from_instances(inst, n)
            keep = keep[counts[keep] > 0]  # a kept box whose pixels all left the image
            ids, boxes, pixels = ids[keep], tight[keep], counts[keep]
            labels = labels[keep]
        iscrowd = pixels < self.min_pixels
        masks = None
        if self.with_masks:
            masks = (inst[None] == ids[:, None, None]).astype(np.uint8)
        h, w = self.size
        return detection_item(
            image,
            boxes,
            labels,
            iscrowd,
            pixels.astype(np.float32),
            image_id=i,
            scale=1.0,
            orig_size=(h, w),
            name=f"{i:06d}",
            masks=masks,
        )
