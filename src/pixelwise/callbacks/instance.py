"""Instance segmentation metrics: COCO box and mask AP (torchmetrics MeanAveragePrecision, bbox + segm)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import lightning as L
import torch

from pixelwise.callbacks.detection import SCALARS
from pixelwise.callbacks.stages import StageCallback
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
        target = {"boxes": boxes, "labels": batch["labels"][i].long(), "masks": masks}
        if batch.get("iscrowd") is not None:
            target["iscrowd"] = batch["iscrowd"][i].long()
        if batch.get("area") is not None:
            target["area"] = batch["area"][i].float()
        out.append(target)
    return out


class InstanceMetrics(StageCallback):
    """COCO box AP (``<stage>/map``, ``map_50``, ...) and mask AP (``<stage>/mask_map``, ``mask_map_50``, ...).

    Per class mask AP as ``<stage>/mask_ap/<class>``. The batch needs "masks" (data.with_masks=true).
    States are gathered under DDP by torchmetrics; values equal pycocotools' COCOeval (tests).
    Under DDP the ranks must hold the same number of images: torchmetrics 1.9 gathers the ``segm``
    per-image lists element by element (a gloo size mismatch otherwise).
    """

    def __init__(
        self, class_names: Sequence[str] | None = None, backend: str | None = None
    ) -> None:
        self.class_names = list(class_names) if class_names else None
        self.backend = backend
        self.metrics: dict[str, Any] = {}

    def _start(self, stage: str, pl_module: L.LightningModule) -> None:
        options = {"backend": self.backend} if self.backend else {}
        self.metrics[stage] = coco_mask_map(class_metrics=True, **options).to(pl_module.device)

    def _update(self, stage: str, outputs: InstanceOutput, batch: dict[str, Any]) -> None:
        if batch.get("masks") is None:
            raise KeyError("InstanceMetrics: the batch has no 'masks'; set data.with_masks=true")
        self.metrics[stage].update(outputs.as_torchmetrics(), instance_targets(batch))

    def _finish(self, stage: str, pl_module: L.LightningModule) -> dict[str, Any]:
        result = self.metrics[stage].compute()
        self.metrics[stage].reset()
        values = {}
        for kind, prefix in (("bbox", ""), ("segm", "mask_")):
            for key in KEYS:
                v = float(result[f"{kind}_{key}"])
                if v >= 0 and math.isfinite(v):
                    values[f"{stage}/{prefix}{key}"] = v
        names = self.class_names or list(getattr(pl_module, "class_names", []))
        per_class, classes = result.get("segm_map_per_class"), result.get("classes")
        if per_class is not None and classes is not None and per_class.numel() > 1:
            for c, ap in zip(classes.tolist(), per_class.tolist()):
                if ap >= 0:
                    values[f"{stage}/mask_ap/{names[c] if c < len(names) else c}"] = float(ap)
        pl_module.log_dict(values, sync_dist=False)
        return result

    def stage_start(self, stage: str, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start(stage, pl_module)

    def stage_batch_end(self, stage, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._update(stage, outputs, batch)

    def stage_end(self, stage: str, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._finish(stage, pl_module)
