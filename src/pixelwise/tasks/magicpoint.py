"""MagicPoint: interest points as a 65-way classification of each 8x8 cell (SuperPoint's detector)."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import nn

from pixelwise.geometry.cells import keypoints_to_cell_labels, logits_to_heatmap
from pixelwise.geometry.keypoints import extract_keypoints
from pixelwise.losses.cell_cross_entropy import cell_cross_entropy
from pixelwise.tasks.optim import OptimizerFactory, SchedulerFactory, configure

__all__ = ["MagicPointTask"]


class MagicPointTask(L.LightningModule):
    """Net (logits [B,65,Hc,Wc]) + cell cross-entropy on labels made from keypoints.

    Batches are dicts with "image" float [B,1,H,W], "keypoints" a list of float [N_i,2] (x, y),
    optionally "valid_mask" bool [B,H,W] (cells touching an invalid pixel are ignored) and
    "primitive" (list of str, passed through for per-primitive metrics). Validation and test
    steps return per image {"keypoints", "scores"} (extracted with ``detection_threshold``,
    ``nms_radius``, ``border``, ``top_k``) and the heatmap [B,1,H,W]; metrics live in
    ``pixelwise.callbacks.keypoints``. The defaults of the extraction are those rpautrat's
    ``magic-point_shapes.yaml`` evaluates with (threshold 0.001, NMS 4, no border, no top-k):
    AP needs the low-score detections too.
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        nms_radius: int = 4,
        detection_threshold: float = 0.001,
        border: int = 0,
        top_k: int | None = None,
        channels_last: bool = True,
    ) -> None:
        super().__init__()
        if nms_radius < 0:
            raise ValueError(f"task.nms_radius={nms_radius}: expected >= 0")
        if not 0.0 <= detection_threshold <= 1.0:
            raise ValueError(
                f"task.detection_threshold={detection_threshold}: expected a probability in [0, 1]"
            )
        if border < 0:
            raise ValueError(f"task.border={border}: expected >= 0")
        if top_k is not None and top_k < 1:
            raise ValueError(f"task.top_k={top_k}: expected null (keep all) or >= 1")
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"])
        self.net = net
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def setup(self, stage: str) -> None:
        """Put the net in the chosen memory format (channels_last is ~1.45x faster on CPU)."""
        self.net.to(memory_format=self.memory_format)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images [B,1,H,W] -> detector logits [B,65,ceil(H/8),ceil(W/8)]."""
        return self.net(images.contiguous(memory_format=self.memory_format))["logits"]

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

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        logits = self(batch["image"])
        loss = cell_cross_entropy(logits, self.labels(batch))
        self.log("train/loss", loss, prog_bar=True, batch_size=logits.shape[0])
        return loss

    def detect(self, images: torch.Tensor) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
        """images [B,1,H,W] -> (heatmap [B,1,H,W], per image {"keypoints" [N,2] (x,y), "scores" [N]})."""
        return self._detections(self(images), images.shape[-2:])

    def _detections(
        self, logits: torch.Tensor, size: torch.Size
    ) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
        heat = logits_to_heatmap(logits, image_size=size)
        detections = extract_keypoints(
            heat.float(),
            threshold=self.hparams.detection_threshold,
            nms_radius=self.hparams.nms_radius,
            border=self.hparams.border,
            top_k=self.hparams.top_k,
        )
        return heat, detections

    def _eval_step(self, batch: dict[str, Any], stage: str) -> dict[str, Any]:
        logits = self(batch["image"])
        loss = cell_cross_entropy(logits, self.labels(batch))
        self.log(f"{stage}/loss", loss, sync_dist=True, batch_size=logits.shape[0])
        heat, detections = self._detections(logits, batch["image"].shape[-2:])
        return {
            "keypoints": [d["keypoints"] for d in detections],
            "scores": [d["scores"] for d in detections],
            "heatmap": heat,
            "loss": loss,
        }

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        return self._eval_step(batch, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        return self._eval_step(batch, "test")

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        heat, detections = self.detect(batch["image"])
        return {
            "keypoints": [d["keypoints"] for d in detections],
            "scores": [d["scores"] for d in detections],
            "heatmap": heat,
        }

    def configure_optimizers(self) -> dict[str, Any]:
        return configure(
            self.parameters(),
            self.optimizer_factory,
            self.scheduler_factory,
            self.trainer.estimated_stepping_batches,
        )
