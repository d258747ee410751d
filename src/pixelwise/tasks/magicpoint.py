"""MagicPoint: interest points as a 65-way classification of each 8x8 cell (SuperPoint's detector)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from pixelwise.geometry.cells import keypoints_to_cell_labels, logits_to_heatmap
from pixelwise.geometry.keypoints import MAGICPOINT_EVAL_EXTRACTION, Extraction
from pixelwise.losses.cell_cross_entropy import cell_cross_entropy
from pixelwise.nets.classical_detectors import ClassicalDetector
from pixelwise.tasks.base import PixelwiseTask
from pixelwise.tasks.optim import OptimizerFactory, SchedulerFactory
from pixelwise.tasks.outputs import KeypointOutput

__all__ = ["MagicPointTask"]

_DEFAULT = MAGICPOINT_EVAL_EXTRACTION


class MagicPointTask(PixelwiseTask):
    """Net (logits [B,65,Hc,Wc]) + cell cross-entropy on labels made from keypoints.

    Batches are dicts with "image" float [B,1,H,W], "keypoints" a list of float [N_i,2] (x, y),
    optionally "valid_mask" bool [B,H,W] (cells touching an invalid pixel are ignored) and
    "primitive" (list of str, passed through for per-primitive metrics). Evaluation and predict
    steps return a :class:`~pixelwise.tasks.outputs.KeypointOutput` (points extracted with
    ``detection_threshold``, ``nms_radius``, ``border``, ``top_k``; metrics live in
    ``pixelwise.callbacks.keypoints``). The defaults of the extraction are
    :data:`~pixelwise.geometry.keypoints.MAGICPOINT_EVAL_EXTRACTION` (rpautrat's
    ``magic-point_shapes.yaml``: threshold 0.001, its box NMS of side 4 at IoU 0.1
    (``nms_shape="box_iou"``; ``"square"`` is the SuperPoint demo's 9x9 greedy NMS), no border,
    no top-k: AP needs the low-score detections too). ``baselines`` (e.g. ``[harris, shi, fast]``): classical detectors
    run on every test batch through the same extraction; their points ride along in
    ``KeypointOutput.baselines`` for the same metrics (the paper's Table 2).
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        nms_radius: int = _DEFAULT.nms_radius,
        detection_threshold: float = _DEFAULT.threshold,
        border: int = _DEFAULT.border,
        top_k: int | None = _DEFAULT.top_k,
        channels_last: bool = True,
        baselines: Sequence[str] = (),
        nms_shape: str = _DEFAULT.nms_shape,
    ) -> None:
        extraction = Extraction.checked(
            detection_threshold, nms_radius, border, top_k, nms_shape=nms_shape
        )
        super().__init__(net, optimizer, scheduler, channels_last)
        self.extraction = extraction
        self.baselines = {m: ClassicalDetector(m) for m in baselines}  # unknown names fail here

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images [B,1,H,W] -> detector logits [B,65,ceil(H/8),ceil(W/8)]."""
        return self.net(self.as_input(images))["logits"]

    def labels(self, batch: dict[str, Any]) -> torch.Tensor:
        """Batch -> cell labels long [B,Hc,Wc] in 0..64, 255 where a cell touches an invalid pixel."""
        images = batch["image"]
        keypoints = batch["keypoints"]
        if isinstance(keypoints, torch.Tensor) and keypoints.dim() == 2:
            raise ValueError(
                "batch['keypoints'] must hold one [N, 2] tensor per image (a list, or [B, N, 2]); "
                "got a single [N, 2] tensor: add 'keypoints' to data.list_keys"
            )
        if len(keypoints) != images.shape[0]:
            raise ValueError(
                f"batch['keypoints'] has {len(keypoints)} entries for {images.shape[0]} images"
            )
        return keypoints_to_cell_labels(
            keypoints, images.shape[-2:], valid_mask=batch.get("valid_mask")
        )

    def training_loss(self, batch: dict[str, Any]) -> torch.Tensor:
        return cell_cross_entropy(self(batch["image"]), self.labels(batch))

    def detect(self, images: torch.Tensor) -> KeypointOutput:
        """images [B,1,H,W] -> KeypointOutput (keypoints [N_i,2] (x,y), scores [N_i], heatmap [B,1,H,W])."""
        return self._detections(self(images), images.shape[-2:])

    def _detections(self, logits: torch.Tensor, size: torch.Size) -> KeypointOutput:
        heat = logits_to_heatmap(logits, image_size=size)
        return KeypointOutput.from_detections(self.extraction(heat), heatmap=heat)

    def baseline_detections(self, images: torch.Tensor) -> dict[str, KeypointOutput]:
        """images [B,1,H,W] -> {method: KeypointOutput} of the classical baselines (same extraction)."""
        images = images.detach().cpu().float()
        return {
            method: KeypointOutput.from_detections(self.extraction(detector(images)))
            for method, detector in self.baselines.items()
        }

    def evaluation_step(self, batch: dict[str, Any], stage: str) -> KeypointOutput:
        logits = self(batch["image"])
        loss = cell_cross_entropy(logits, self.labels(batch))
        out = self._detections(logits, batch["image"].shape[-2:])
        out.loss = self.log_losses(loss, stage, logits.shape[0])
        if stage == "test":
            out.baselines = self.baseline_detections(batch["image"])
        return out

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> KeypointOutput:
        return self.detect(batch["image"])
