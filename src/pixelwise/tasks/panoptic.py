"""Panoptic segmentation, Panoptic-DeepLab style: per-pixel class, instance-centre heatmap and offsets.

The net (``pixelwise.nets.panoptic_unet.PanopticUNet``) gives semantic logits [B,K,H,W], a centre
heatmap [B,1,H,W] and offsets [B,2,H,W]; training targets come from the batch's "instances"
(``pixelwise.geometry.panoptic.panoptic_targets``), the loss is ``pixelwise.losses.panoptic``,
and evaluation merges the three maps with ``panoptic_postprocess`` into a
:class:`~pixelwise.tasks.outputs.PanopticOutput`.

Batches: "image" [B,3,H,W], "mask" long [B,H,W] (255 = void), "instances" long [B,H,W] (thing
instances 1..M, 0 elsewhere; crowd regions are thing pixels with instance 0: they get no centre
and are left out of the heatmap loss).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from pixelwise.geometry.panoptic import (
    PanopticGrouping,
    panoptic_postprocess,
    panoptic_segments,
    panoptic_targets,
)
from pixelwise.losses.panoptic import panoptic_loss
from pixelwise.tasks.optim import OptimizerFactory, SchedulerFactory
from pixelwise.tasks.outputs import PanopticOutput
from pixelwise.tasks.segmentation import SegmentationTask

__all__ = ["PanopticTask"]


class PanopticTask(SegmentationTask):
    """Semantic CE (class weights as in segmentation) + centre MSE + offset L1; evaluation returns panoptic maps."""

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        *,
        thing_classes: Sequence[int] = (6, 7, 8),
        sigma: float = 4.0,
        semantic_weight: float = 1.0,
        center_weight: float = 200.0,
        offset_weight: float = 0.01,
        grouping: Mapping[str, Any] | None = None,
        label_divisor: int = 1000,
        **segmentation: Any,
    ) -> None:
        """``grouping``: the :class:`~pixelwise.geometry.panoptic.PanopticGrouping` options
        (``threshold``, ``nms_kernel``, ``top_k``, ``min_thing_area``, ``min_stuff_area``; None:
        its defaults). ``segmentation``: the :class:`SegmentationTask` arguments (``num_classes``
        (9), ``class_names``, ``ignore_index``, ``class_weighting``, ``class_weight_samples``,
        ``channels_last``), with its defaults."""
        thing_classes = [int(c) for c in thing_classes]
        checked_grouping = PanopticGrouping.from_config(grouping, "task.grouping")
        super().__init__(net, optimizer, scheduler, **segmentation)
        self.grouping = checked_grouping
        if not thing_classes or min(thing_classes) < 0 or max(thing_classes) >= self.num_classes:
            raise ValueError(
                f"task.thing_classes={thing_classes}: expected a non-empty list of classes in [0, {self.num_classes})"
            )
        self.thing_classes = thing_classes
        self.register_buffer(
            "is_thing", torch.zeros(self.num_classes, dtype=torch.bool), persistent=False
        )
        self.is_thing[thing_classes] = True

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """images [B,3,H,W] -> {"semantic" [B,K,H,W], "center" [B,1,H,W], "offset" [B,2,H,W]}."""
        return self.net(self.as_input(images))

    def _loss(self, out: dict[str, torch.Tensor], batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        if "instances" not in batch or "mask" not in batch:
            raise KeyError(
                "the panoptic batch needs 'mask' and 'instances' [B,H,W] (a panoptic dataset's items)"
            )
        mask, instances = batch["mask"], batch["instances"]
        h = self.hparams
        heat_t, off_t, off_w = panoptic_targets(instances, h.sigma)
        valid = mask != self.ignore_index
        crowd = valid & self.is_thing[mask.clamp(0, self.num_classes - 1)] & (instances == 0)
        weight = self.class_weight if h.class_weighting != "none" else None
        return panoptic_loss(
            out["semantic"],
            out["center"],
            out["offset"],
            mask,
            heat_t,
            off_t,
            off_w,
            heatmap_valid=(valid & ~crowd).unsqueeze(1),
            class_weight=weight,
            ignore_index=self.ignore_index,
            semantic_weight=h.semantic_weight,
            center_weight=h.center_weight,
            offset_loss_weight=h.offset_weight,
        )

    def training_loss(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        return self._loss(self(batch["image"]), batch)

    def postprocess(self, out: dict[str, torch.Tensor]) -> PanopticOutput:
        """The net's maps -> a PanopticOutput (no loss)."""
        h = self.hparams
        semantic = out["semantic"].argmax(dim=1)
        heatmap, offsets = out["center"].float(), out["offset"].float()
        pan = panoptic_postprocess(
            semantic,
            heatmap,
            offsets,
            self.thing_classes,
            self.num_classes,
            self.grouping,
            h.label_divisor,
        )
        return PanopticOutput(
            panoptic=pan,
            segments=panoptic_segments(pan, h.label_divisor),
            semantic=semantic,
            heatmap=heatmap,
            offsets=offsets,
            label_divisor=h.label_divisor,
        )

    def evaluation_step(self, batch: dict[str, Any], stage: str) -> PanopticOutput:
        out = self(batch["image"])
        losses = self._loss(out, batch)
        result = self.postprocess(out)
        result.loss = self.log_losses(losses, stage, out["semantic"].shape[0])
        return result

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> PanopticOutput:
        return self.postprocess(self(batch["image"]))
