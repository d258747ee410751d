"""Semantic segmentation: per-pixel k-way classification with a dense net (U-Net)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from pixelwise.losses.class_weights import CLASS_WEIGHTING, class_weights
from pixelwise.losses.pixel_cross_entropy import pixel_cross_entropy
from pixelwise.tasks.base import ClassifyingTask
from pixelwise.tasks.optim import OptimizerFactory, SchedulerFactory
from pixelwise.tasks.outputs import SegmentationOutput


class SegmentationTask(ClassifyingTask):
    """Net + per-pixel cross-entropy; evaluation steps return a ``SegmentationOutput``.

    Batches are dicts with "image" [B,3,H,W] and "mask" long [B,H,W] (255 = ignore), optionally
    "instances" [B,H,W]. Metrics live in callbacks (pixelwise.callbacks.segmentation).
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        num_classes: int = 9,
        class_names: Sequence[str] | None = None,
        ignore_index: int = 255,
        class_weighting: str = "none",
        class_weight_samples: int = 256,
        channels_last: bool = True,
    ) -> None:
        if class_weighting not in CLASS_WEIGHTING:
            raise ValueError(
                f"task.class_weighting={class_weighting!r}: expected one of {CLASS_WEIGHTING}"
            )
        super().__init__(net, optimizer, scheduler, num_classes, class_names, channels_last)
        self.ignore_index = ignore_index
        # Kept in the checkpoint so a resumed run uses the same weights without recounting.
        self.register_buffer("class_weight", torch.ones(num_classes))
        self.register_buffer("class_weight_ready", torch.tensor(False))

    def setup(self, stage: str) -> None:
        """Count class pixels once (training only) when a weighting is asked for."""
        super().setup(stage)
        if stage != "fit" or self.hparams.class_weighting == "none" or self.class_weight_ready:
            return
        counts = self.trainer.datamodule.class_pixel_counts(self.hparams.class_weight_samples)
        self.class_weight.copy_(class_weights(counts, self.hparams.class_weighting))
        self.class_weight_ready.fill_(True)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images [B,C,H,W] -> logits [B,K,H,W]."""
        return self.net(self.as_input(images))

    def _loss(self, logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        weight = self.class_weight if self.hparams.class_weighting != "none" else None
        return pixel_cross_entropy(logits, mask, weight=weight, ignore_index=self.ignore_index)

    def training_loss(self, batch: dict[str, Any]) -> torch.Tensor:
        return self._loss(self(batch["image"]), batch["mask"])

    def evaluation_step(self, batch: dict[str, Any], stage: str) -> SegmentationOutput:
        logits = self(batch["image"])
        loss = self.log_losses(self._loss(logits, batch["mask"]), stage, logits.shape[0])
        return SegmentationOutput(preds=logits.argmax(dim=1), logits=logits, loss=loss)

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> SegmentationOutput:
        logits = self(batch["image"])
        return SegmentationOutput(preds=logits.argmax(dim=1), logits=logits)
