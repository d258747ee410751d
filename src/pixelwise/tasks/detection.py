"""Object detection as dense per-location classification (FCOS-style) or with torchvision's R-CNN family.

Two kinds of net fit the task:

- a dense net (``pixelwise.nets.fcos.FCOSNet``): per-level class logits, box distances and
  centerness maps; the task trains it with ``pixelwise.losses.fcos.fcos_loss`` and decodes it with
  ``pixelwise.geometry.dense_boxes.decode_dense_detections``;
- a net that computes its own loss (``computes_own_loss = True``, e.g.
  ``pixelwise.nets.torchvision_detectors.TorchvisionDetector``): ``net.losses(images, targets)``
  in training and ``net.detect(images)`` in evaluation.

Batches: "image" [B,3,H,W]; "boxes" list of [N_i,4] xyxy (COCO/torchvision convention: pixel ``c``
spans ``[c, c + 1]``); "labels" list of [N_i] long in 0..K-1; "iscrowd" list of bool [N_i]
(ignored in training; matched as "ignore" by the COCO evaluation). Evaluation and predict steps
return a :class:`~pixelwise.tasks.outputs.DetectionOutput`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from pixelwise.geometry.dense_boxes import decode_dense_detections
from pixelwise.losses.fcos import fcos_loss
from pixelwise.tasks.base import ClassifyingTask
from pixelwise.tasks.optim import OptimizerFactory, SchedulerFactory
from pixelwise.tasks.outputs import DetectionOutput

__all__ = ["DetectionTask"]


def _per_image(batch: dict[str, Any], key: str, n: int) -> list[torch.Tensor]:
    value = batch.get(key)
    if value is None:
        raise KeyError(
            f"the detection batch has no {key!r}; expected a list of per-image tensors "
            "(data.list_keys must include boxes, labels, iscrowd)"
        )
    if isinstance(value, torch.Tensor) and value.dim() < 2:
        raise ValueError(
            f"batch[{key!r}] is one tensor {tuple(value.shape)}; add {key} to data.list_keys"
        )
    if len(value) != n:
        raise ValueError(f"batch[{key!r}] has {len(value)} entries for {n} images")
    return list(value)


class DetectionTask(ClassifyingTask):
    """Detector + its loss; evaluation returns boxes, scores and labels per image."""

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        num_classes: int = 3,
        class_names: Sequence[str] | None = None,
        score_threshold: float = 0.05,
        nms_iou: float = 0.6,
        pre_nms_top_k: int = 1000,
        max_detections: int = 100,
        center_sampling_radius: float = 1.5,
        size_ranges: Sequence[Sequence[float]] | None = None,
        focal_alpha: float = 0.25,
        focal_gamma: float = 2.0,
        channels_last: bool = False,
    ) -> None:
        if not 0.0 <= score_threshold < 1.0:
            raise ValueError(f"task.score_threshold={score_threshold}: expected in [0, 1)")
        if not 0.0 < nms_iou <= 1.0:
            raise ValueError(f"task.nms_iou={nms_iou}: expected in (0, 1]")
        if max_detections < 1 or pre_nms_top_k < 1:
            raise ValueError(
                f"task.max_detections={max_detections}, task.pre_nms_top_k={pre_nms_top_k}: expected >= 1"
            )
        super().__init__(net, optimizer, scheduler, num_classes, class_names, channels_last)
        self.own_loss = bool(getattr(net, "computes_own_loss", False))
        if not self.own_loss and not hasattr(net, "strides"):
            raise TypeError(
                f"{type(net).__name__} is neither a dense detector (with `strides`, like FCOSNet) "
                "nor one that computes its own loss (like TorchvisionDetector)"
            )

    def targets(self, batch: dict[str, Any]) -> tuple[list, list, list]:
        """(boxes, labels, iscrowd) lists of the batch, checked."""
        n = batch["image"].shape[0]
        boxes = _per_image(batch, "boxes", n)
        labels = _per_image(batch, "labels", n)
        crowd = batch.get("iscrowd")
        iscrowd = (
            _per_image(batch, "iscrowd", n)
            if crowd is not None
            else [torch.zeros(len(b), dtype=torch.bool, device=b.device) for b in boxes]
        )
        for i, (b, lab) in enumerate(zip(boxes, labels)):
            if b.dim() != 2 or b.shape[-1] != 4 or len(lab) != len(b):
                raise ValueError(
                    f"image {i} of the batch: boxes {tuple(b.shape)} and labels {tuple(lab.shape)}; "
                    "expected [N,4] and [N]"
                )
            if len(lab) and (lab.min() < 0 or lab.max() >= self.num_classes):
                raise ValueError(
                    f"image {i} of the batch: label {int(lab.max())} outside [0, {self.num_classes})"
                )
        return boxes, labels, iscrowd

    def forward(self, images: torch.Tensor) -> Any:
        """images [B,3,H,W] -> the net's raw output (dense maps, or detections for torchvision)."""
        return self.net(self.as_input(images))

    def _dense_maps(self, images: torch.Tensor) -> tuple[Any, Any, Any, Sequence[int]]:
        """A dense net's per-level class logits, box distances and centerness, and its strides."""
        out = self(images)
        return out["cls_logits"], out["box_distances"], out["centerness"], self.net.strides

    def training_loss(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        boxes, labels, iscrowd = self.targets(batch)
        images = batch["image"]
        if self.own_loss:
            # torchvision's detectors have no notion of ignore regions: crowd boxes are left out.
            targets = [
                {"boxes": b[~c].float(), "labels": lab[~c]}
                for b, lab, c in zip(boxes, labels, iscrowd)
            ]
            parts = self.net.losses(self.as_input(images), targets)
            return {"loss": sum(parts.values()), **parts}
        h = self.hparams
        return fcos_loss(
            *self._dense_maps(images),
            boxes,
            labels,
            iscrowd,
            size_ranges=[tuple(r) for r in h.size_ranges] if h.size_ranges else None,
            radius=h.center_sampling_radius,
            focal_alpha=h.focal_alpha,
            focal_gamma=h.focal_gamma,
        )

    def detect(self, images: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """images [B,3,H,W] -> per image {"boxes" [N,4], "scores" [N], "labels" [N]}."""
        if self.own_loss:
            return self.net.detect(self.as_input(images))
        h = self.hparams
        return decode_dense_detections(
            *self._dense_maps(images),
            tuple(images.shape[-2:]),
            score_threshold=h.score_threshold,
            pre_nms_top_k=h.pre_nms_top_k,
            nms_iou=h.nms_iou,
            max_detections=h.max_detections,
        )

    def _output(self, images: torch.Tensor) -> DetectionOutput:
        dets = self.detect(images)
        return DetectionOutput(
            boxes=[d["boxes"] for d in dets],
            scores=[d["scores"] for d in dets],
            labels=[d["labels"] for d in dets],
        )

    def evaluation_step(self, batch: dict[str, Any], stage: str) -> DetectionOutput:
        self.targets(batch)  # the same checks as in training, before a metric sees the batch
        return self._output(batch["image"])

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> DetectionOutput:
        return self._output(batch["image"])
