"""Edge detection: per-pixel edge / not-edge with side outputs (HED, U-Net edges) and deep supervision."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from pixelwise.losses.balanced_bce import BETA_MODES, REDUCTIONS, deep_supervision_bce
from pixelwise.tasks.base import PixelwiseTask
from pixelwise.tasks.optim import OptimizerFactory, SchedulerFactory
from pixelwise.tasks.outputs import EdgeOutput


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


class EdgesTask(PixelwiseTask):
    """Net with side outputs + class-balanced BCE on every output; eval steps return an ``EdgeOutput``.

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
        channels_last: bool = False,
    ) -> None:
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
        super().__init__(net, optimizer, scheduler, channels_last)
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
        super().setup(stage)
        if stage != "fit" or self.beta != "dataset" or bool(self.dataset_beta_ready):
            return
        value = torch.tensor(self.count_dataset_beta(self.trainer.datamodule.dataset("train")))
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
        return list(self.net(self.as_input(images)))

    def _loss(
        self, outputs: list[torch.Tensor], batch: dict[str, Any]
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
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

    def _losses(
        self, outputs: list[torch.Tensor], batch: dict[str, Any]
    ) -> dict[str, torch.Tensor]:
        loss, parts = self._loss(outputs, batch)
        return {"loss": loss, "loss_fused": parts[-1]}

    def training_loss(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        return self._losses(self(batch["image"]), batch)

    @staticmethod
    def _output(outputs: list[torch.Tensor], **kwargs: Any) -> EdgeOutput:
        return EdgeOutput(
            preds=outputs[-1][:, 0].sigmoid(),
            sides=torch.cat(outputs[:-1], dim=1).sigmoid(),
            **kwargs,
        )

    def evaluation_step(self, batch: dict[str, Any], stage: str) -> EdgeOutput:
        outputs = self(batch["image"])
        loss = self.log_losses(self._losses(outputs, batch), stage, outputs[0].shape[0])
        return self._output(outputs, edges=batch["edges"], loss=loss)

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> EdgeOutput:
        return self._output(self(batch["image"]), names=batch.get("name"))
