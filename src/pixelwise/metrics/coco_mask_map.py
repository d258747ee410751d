"""COCO box + mask AP: torchmetrics' MeanAveragePrecision with iou_type=("bbox", "segm") and COCOeval's thresholds.

Feed per image preds ``{"boxes", "scores", "labels", "masks" bool [N,H,W]}`` and targets
``{"boxes", "labels", "masks", "iscrowd"}``; ``compute()`` gives ``bbox_map``, ``segm_map``,
``bbox_map_50``, ``segm_map_50``, ... (torchmetrics' names with two IoU types). A target with
masks but no boxes gets the tight boxes of its masks (:func:`mask_boxes`).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torchvision.ops import masks_to_boxes

from pixelwise.metrics.coco_map import (
    COCO_IOU_THRESHOLDS,
    COCO_RECALL_THRESHOLDS,
    DEFAULT_BACKEND,
    CocoMeanAveragePrecision,
)

__all__ = ["coco_mask_map", "mask_boxes"]


def coco_mask_map(
    backend: Literal["pycocotools", "faster_coco_eval"] = DEFAULT_BACKEND,
    iou_type: tuple[str, ...] | str = ("bbox", "segm"),
    class_metrics: bool = False,
    **kwargs: Any,
) -> CocoMeanAveragePrecision:
    """MeanAveragePrecision over xyxy boxes and masks, COCOeval's float64 thresholds, DDP-exact."""
    kwargs.setdefault("iou_thresholds", list(COCO_IOU_THRESHOLDS))
    kwargs.setdefault("rec_thresholds", list(COCO_RECALL_THRESHOLDS))
    return CocoMeanAveragePrecision(
        box_format="xyxy", iou_type=iou_type, backend=backend, class_metrics=class_metrics, **kwargs
    )


def mask_boxes(masks: torch.Tensor) -> torch.Tensor:
    """bool [N,H,W] -> tight xyxy boxes float [N,4] in the COCO convention (pixel c spans [c, c+1])."""
    if masks.numel() == 0 or masks.shape[0] == 0:
        return torch.zeros(0, 4, device=masks.device)
    boxes = masks_to_boxes(masks.bool())
    return boxes + torch.tensor([0.0, 0.0, 1.0, 1.0], device=boxes.device)
