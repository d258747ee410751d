"""Edge detection: per-pixel edge / not-edge with side outputs (HED, U-Net edges) and deep supervision."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import nn

from pixelwise.losses.balanced_bce import BETA_MODES, REDUCTIONS, deep_supervision_bce
from pixelwise.tasks.optim import OptimizerFactory, SchedulerFactory, configure


def pad_annotations(
    targets: Sequence[torch.Tensor] | torch.Tensor,
    weights: Sequence[torch.Tensor] | torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image targets/weights [K_i,H,W] -> [B,K_max,H,W] each; padded annotations get weight 0."""
    if isinstance(targets, torch.Tensor):
        return targets.float(), weights.float()
    k_max = max(t.shape[0] for t in targets)
    first = targets[0]
    out_t = first.new_zeros((len(targets), k_max, *first.shape[-2:]), dtype=torch.float32)
    out_w = torch.zeros_like(out_t)
    for i, (t, w) in enumerate(zip(targets, weights)):
        out_t[i, : t.shape[0]] = t
        out_w[i, : w.shape[0]] = w
    return out_t, out_w


class EdgesTask(L.LightningModule):
    """Net with side outputs + class-balanced BCE on every output; eval steps return edge probabilities.

    The net returns a list of logit maps [B,1,H,W], the fused one last. Batches are dicts
    with "image" [B,3,H,W], "targets"/"weights" (lists of [K_i,H,W], from the data's label
    mode) and "edges" (list of bool [K_i,H,W], the annotations the benchmark compares with).
    `beta`: "dataset" (E/T over up to `beta_samples` training items, counted once and kept
    in the checkpoint), "image", "batch" or a fixed number. Metrics live in callbacks
    (pixelwise.callbacks.edges).
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        beta: str | float = "dataset",
        beta_samples: int = 128,
        side_weight: float | Sequence[float] = 1.0,
        fuse_weight: float = 1.0,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        if isinstance(beta, str):
            if beta not in BETA_MODES:
                raise ValueError(
                    f"task.beta={beta!r}: expected one of {BETA_MODES} or a number in [0,1]"
                )
        elif not 0.0 <= float(beta) <= 1.0:
            raise ValueError(f"task.beta={beta}: expected one of {BETA_MODES} or a number in [0,1]")
        if reduction not in REDUCTIONS:
            raise ValueError(f"task.reduction={reduction!r}: expected one of {REDUCTIONS}")
        if beta_samples < 1:
            raise ValueError(f"task.beta_samples={beta_samples}: expected >= 1")
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"])
        self.net = net
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.beta = beta
        self.reduction = reduction
        self.side_weight = side_weight
        self.fuse_weight = fuse_weight
        # Kept in the checkpoint so a resumed or evaluated run uses the same beta without recounting.
        self.register_buffer("dataset_beta", torch.tensor(0.0))
        self.register_buffer("dataset_beta_ready", torch.tensor(False))

    def output_weights(self, num_outputs: int) -> list[float]:
        """Deep-supervision weights: the side weights (one number or one per side), then the fused one."""
        sides = num_outputs - 1
        if isinstance(self.side_weight, int | float):
            weights = [float(self.side_weight)] * sides
        else:
            weights = [float(w) for w in self.side_weight]
            if len(weights) != sides:
                raise ValueError(
                    f"task.side_weight has {len(weights)} values but the net has {sides} side outputs"
                )
        return [*weights, float(self.fuse_weight)]

    def setup(self, stage: str) -> None:
        """Count the training set's edge fraction once, when beta="dataset"."""
        if stage != "fit" or self.beta != "dataset" or bool(self.dataset_beta_ready):
            return
        value = torch.tensor(self.count_dataset_beta(self.trainer.datamodule.train_dataset))
        # Ranks may see different random augmentations: rank 0's count is everyone's.
        value = self.trainer.strategy.broadcast(value, src=0)
        self.dataset_beta.fill_(float(value))
        self.dataset_beta_ready.fill_(True)

    def count_dataset_beta(self, dataset: Any) -> float:
        """beta = E/T over up to beta_samples evenly spaced items (weighted targets, ignored pixels out)."""
        n = len(dataset)
        if n == 0:
            raise ValueError("task.beta=dataset: the training set is empty")
        indices = np.unique(np.linspace(0, n - 1, num=min(n, self.hparams.beta_samples)).round())
        edges = pixels = 0.0
        for i in indices.astype(int):
            item = dataset[int(i)]
            t, w = (
                torch.as_tensor(item["targets"]).double(),
                torch.as_tensor(item["weights"]).double(),
            )
            edges += float((t * w).sum())
            pixels += float(w.sum())
        if pixels == 0:
            raise ValueError("task.beta=dataset: every training pixel is ignored (weight 0)")
        return edges / pixels

    def loss_beta(self) -> float | str:
        """The beta given to the loss: the counted dataset fraction, a mode name, or the fixed number."""
        if self.beta == "dataset":
            # Without a count (evaluating fresh weights) the batch fraction stands in.
            return float(self.dataset_beta) if bool(self.dataset_beta_ready) else "batch"
        return self.beta

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """images [B,3,H,W] -> list of edge logits [B,1,H,W], fused last."""
        return list(self.net(images))

    def _loss(self, outputs: list[torch.Tensor], batch: dict[str, Any]):
        targets, weights = pad_annotations(batch["targets"], batch["weights"])
        targets, weights = targets.to(outputs[0].device), weights.to(outputs[0].device)
        return deep_supervision_bce(
            outputs,
            targets,
            weights,
            beta=self.loss_beta(),
            output_weights=self.output_weights(len(outputs)),
            reduction=self.reduction,
        )

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        outputs = self(batch["image"])
        loss, parts = self._loss(outputs, batch)
        n = outputs[0].shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=n)
        self.log("train/loss_fused", parts[-1], batch_size=n)
        return loss

    def _eval_step(self, batch: dict[str, Any], stage: str) -> dict[str, Any]:
        outputs = self(batch["image"])
        loss, parts = self._loss(outputs, batch)
        n = outputs[0].shape[0]
        self.log(f"{stage}/loss", loss, sync_dist=True, batch_size=n)
        self.log(f"{stage}/loss_fused", parts[-1], sync_dist=True, batch_size=n)
        return {
            "preds": outputs[-1][:, 0].sigmoid(),
            "sides": torch.cat(outputs[:-1], dim=1).sigmoid(),
            "edges": batch["edges"],
            "loss": loss,
        }

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        return self._eval_step(batch, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        return self._eval_step(batch, "test")

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        outputs = self(batch["image"])
        return {
            "preds": outputs[-1][:, 0].sigmoid(),
            "sides": torch.cat(outputs[:-1], dim=1).sigmoid(),
            "name": batch.get("name"),
        }

    def configure_optimizers(self) -> dict[str, Any]:
        return configure(
            self.parameters(),
            self.optimizer_factory,
            self.scheduler_factory,
            self.trainer.estimated_stepping_batches,
        )
