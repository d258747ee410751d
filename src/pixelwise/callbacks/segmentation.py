"""Feed segmentation predictions to torchmetrics and log IoU scalars."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassJaccardIndex


class SegmentationMetrics(L.Callback):
    """Per-class IoU and mIoU (torchmetrics JaccardIndex) on validation and test.

    Logs `<stage>/miou` and `<stage>/iou/<class name>`. The metric states are confusion
    matrices reduced by sum, so under DDP (with the DataModule's unrepeated sampler) the
    value equals the single-process one.
    """

    def __init__(
        self, num_classes: int, class_names: Sequence[str] | None = None, ignore_index: int = 255
    ) -> None:
        self.num_classes = num_classes
        self.class_names = list(class_names) if class_names else [str(i) for i in range(num_classes)]
        if len(self.class_names) != num_classes:
            raise ValueError(
                f"SegmentationMetrics: {len(self.class_names)} class names for {num_classes} classes"
            )
        self.ignore_index = ignore_index
        self.metrics: dict[str, MetricCollection] = {}
        self.results: dict[str, dict[str, float]] = {}

    def _make(self) -> MetricCollection:
        kw = dict(num_classes=self.num_classes, ignore_index=self.ignore_index, validate_args=False)
        # compute_groups share one confusion matrix between the two metrics.
        return MetricCollection(
            {
                "iou": MulticlassJaccardIndex(average="none", **kw),
                "miou": MulticlassJaccardIndex(average="macro", **kw),
            },
            compute_groups=True,
        )

    def _start(self, stage: str, pl_module: L.LightningModule) -> None:
        self.metrics[stage] = self._make().to(pl_module.device)

    def _update(self, stage: str, outputs: Any, batch: dict[str, Any]) -> None:
        self.metrics[stage].update(outputs["preds"], batch["mask"])

    def _log(self, stage: str, pl_module: L.LightningModule) -> None:
        values = self.metrics[stage].compute()
        iou = values["iou"]
        # Classes absent from both prediction and ground truth have IoU 0/0: leave them out.
        confmat = self.metrics[stage]["iou"].confmat
        present = (confmat.sum(0) + confmat.sum(1)) > 0
        scalars = {f"{stage}/miou": values["miou"].item()}
        for name, value, seen in zip(self.class_names, iou.tolist(), present.tolist()):
            if seen:
                scalars[f"{stage}/iou/{name}"] = value
        for key, value in scalars.items():
            pl_module.log(key, value, sync_dist=False)
        self.results[stage] = scalars
        self.metrics[stage].reset()

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start("val", pl_module)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self._update("val", outputs, batch)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            self.metrics["val"].reset()
            return
        self._log("val", pl_module)

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start("test", pl_module)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self._update("test", outputs, batch)

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._log("test", pl_module)
