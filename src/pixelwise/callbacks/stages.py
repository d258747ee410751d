"""Validation and test as one stage-aware callback, so a metrics callback writes each hook once."""

from __future__ import annotations

from typing import Any

import lightning as L

__all__ = ["StageCallback"]


class StageCallback(L.Callback):
    """Forwards Lightning's validation and test hooks to ``stage_start``, ``stage_batch_end`` and ``stage_end``.

    ``stage`` is "val" or "test". The sanity check runs through the "val" hooks as Lightning
    runs it; a subclass that should not log it checks ``trainer.sanity_checking``.
    """

    def stage_start(self, stage: str, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """A validation or test epoch starts."""

    def stage_batch_end(
        self,
        stage: str,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        """One evaluation batch's ``outputs`` (the task's typed output) and its ``batch``."""

    def stage_end(self, stage: str, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """A validation or test epoch ends."""

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.stage_start("val", trainer, pl_module)

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        self.stage_batch_end("val", trainer, pl_module, outputs, batch, batch_idx)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.stage_end("val", trainer, pl_module)

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.stage_start("test", trainer, pl_module)

    def on_test_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        self.stage_batch_end("test", trainer, pl_module, outputs, batch, batch_idx)

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.stage_end("test", trainer, pl_module)
