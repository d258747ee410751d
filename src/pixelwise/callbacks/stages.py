"""Validation and test as one stage-aware callback, so a metrics callback writes each hook once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L

__all__ = ["StageCallback"]


# The hooks look the stage method up on ``self`` when called, so a subclass's override is the one
# that runs (``functools.partialmethod(stage_start, ...)`` would bind the base class's no-op).
def _start_hook(stage: str) -> Callable[..., None]:
    def hook(self: StageCallback, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.stage_start(stage, trainer, pl_module)

    return hook


def _batch_end_hook(stage: str) -> Callable[..., None]:
    def hook(
        self: StageCallback, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        self.stage_batch_end(stage, trainer, pl_module, outputs, batch, batch_idx)

    return hook


def _end_hook(stage: str) -> Callable[..., None]:
    def hook(self: StageCallback, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.stage_end(stage, trainer, pl_module)

    return hook


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

    # Lightning's hooks, each forwarding to the stage-aware method above with its stage name.
    on_validation_epoch_start = _start_hook("val")
    on_validation_batch_end = _batch_end_hook("val")
    on_validation_epoch_end = _end_hook("val")
    on_test_epoch_start = _start_hook("test")
    on_test_batch_end = _batch_end_hook("test")
    on_test_epoch_end = _end_hook("test")
