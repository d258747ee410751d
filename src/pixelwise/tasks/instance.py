"""Instance segmentation: the detection task with masks (torchvision's Mask R-CNN).

Batches as in :mod:`pixelwise.tasks.detection` plus "masks": per image uint8/bool [N_i,H,W] (one
per box; data.with_masks=true). Evaluation returns an :class:`~pixelwise.tasks.outputs.InstanceOutput`
(boxes, scores, labels and bool masks [N_i,H,W], the net's mask probabilities > ``mask_threshold``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from pixelwise.tasks.detection import DetectionTask, _per_image
from pixelwise.tasks.optim import OptimizerFactory, SchedulerFactory
from pixelwise.tasks.outputs import InstanceOutput

__all__ = ["InstanceTask"]


class InstanceTask(DetectionTask):
    """A mask-producing detector (``produces_masks``, e.g. TorchvisionMaskRCNN) + its own loss."""

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        num_classes: int = 3,
        class_names: Sequence[str] | None = None,
        mask_threshold: float = 0.5,
        channels_last: bool = False,
    ) -> None:
        if not getattr(net, "produces_masks", False) or not getattr(
            net, "computes_own_loss", False
        ):
            raise TypeError(
                f"{type(net).__name__} does not produce masks; task=instance needs e.g. model=maskrcnn"
            )
        if not 0.0 < mask_threshold < 1.0:
            raise ValueError(f"task.mask_threshold={mask_threshold}: expected in (0, 1)")
        super().__init__(
            net,
            optimizer,
            scheduler,
            num_classes=num_classes,
            class_names=class_names,
            channels_last=channels_last,
        )
        self.mask_threshold = mask_threshold

    def training_loss(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        boxes, labels, iscrowd = self.targets(batch)
        masks = _per_image(batch, "masks", len(boxes))
        targets = []
        for i, (b, lab, c, m) in enumerate(zip(boxes, labels, iscrowd, masks)):
            if m.shape[0] != len(b):
                raise ValueError(f"image {i} of the batch: {m.shape[0]} masks for {len(b)} boxes")
            keep = ~c.bool()
            targets.append(
                {"boxes": b[keep].float(), "labels": lab[keep], "masks": m[keep].to(torch.uint8)}
            )
        parts = self.net.losses(self.as_input(batch["image"]), targets)
        return {"loss": sum(parts.values()), **parts}

    def _output(self, images: torch.Tensor) -> InstanceOutput:
        dets = self.net.detect(self.as_input(images))
        h, w = images.shape[-2:]
        return InstanceOutput(
            boxes=[d["boxes"] for d in dets],
            scores=[d["scores"] for d in dets],
            labels=[d["labels"] for d in dets],
            masks=[
                (d["masks"][:, 0] > self.mask_threshold)
                if "masks" in d
                else torch.zeros(0, h, w, dtype=torch.bool)
                for d in dets
            ],
        )
