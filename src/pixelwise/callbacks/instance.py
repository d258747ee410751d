"""Instance segmentation metrics: COCO box and mask AP (torchmetrics MeanAveragePrecision, bbox + segm)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning as L
import torch

from pixelwise.callbacks.detection import SCALARS, CocoMetrics, crowd_and_area
from pixelwise.metrics.coco_mask_map import coco_mask_map, mask_boxes
from pixelwise.tasks.outputs import InstanceOutput

# Box and mask AP use the COCO keys of the detection callback; AR only at 100 detections.
KEYS: tuple[str, ...] = (*(k for k in SCALARS if k.startswith("map")), "mar_100")


def instance_targets(batch: dict[str, Any]) -> list[dict[str, torch.Tensor]]:
    """The batch's boxes, labels, masks (bool [N,H,W]) and iscrowd as MeanAveragePrecision targets."""
    out = []
    for i in range(batch["image"].shape[0]):
        masks = batch["masks"][i].bool()
        boxes = batch["boxes"][i].float() if batch.get("boxes") is not None else mask_boxes(masks)
        labels = batch["labels"][i].long()
        out.append({"boxes": boxes, "labels": labels, "masks": masks, **crowd_and_area(batch, i)})
    return out


class InstanceMetrics(CocoMetrics):
    """COCO box AP (``<stage>/map``, ``map_50``, ...) and mask AP (``<stage>/mask_map``, ``mask_map_50``, ...).

    Per class mask AP as ``<stage>/mask_ap/<class>``. The batch needs "masks" (data.with_masks=true).
    Values equal pycocotools' COCOeval (tests); under DDP the states are gathered whole, rank by
    rank (:class:`~pixelwise.metrics.coco_map.CocoMeanAveragePrecision`), so uneven shards give the
    single-process values (tests/metrics/test_coco_map_ddp.py).
    """

    per_class_key = "segm_map_per_class"
    per_class_name = "mask_ap"

    def __init__(
        self, class_names: Sequence[str] | None = None, backend: str | None = None
    ) -> None:
        super().__init__(class_names, backend)

    def _metric(self, stage: str, options: dict[str, Any]) -> Any:
        return coco_mask_map(class_metrics=True, **options)

    def _update(self, stage: str, outputs: InstanceOutput, batch: dict[str, Any]) -> None:
        if batch.get("masks") is None:
            raise KeyError("InstanceMetrics: the batch has no 'masks'; set data.with_masks=true")
        self.metrics[stage].update(outputs.as_torchmetrics(), instance_targets(batch))

    def _scalars(self, stage: str, result: dict[str, Any]) -> dict[str, float]:
        return {
            f"{stage}/{prefix}{key}": float(result[f"{kind}_{key}"])
            for kind, prefix in (("bbox", ""), ("segm", "mask_"))
            for key in KEYS
        }

    def stage_batch_end(self, stage, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._update(stage, outputs, batch)

    def stage_end(self, stage: str, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._finish(stage, pl_module)
