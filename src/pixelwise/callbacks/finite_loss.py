"""Stop training at the first non-finite loss, before it reaches the weights."""

from __future__ import annotations

import lightning as L
import torch


class NonFiniteLossError(RuntimeError):
    """Raised when the training loss is NaN or infinite."""


class FiniteLossCheck(L.Callback):
    """Raise before backward when the loss is NaN/inf, naming the step.

    Checked in `on_before_backward`, so the optimizer never steps on the bad gradients and
    `last.ckpt` (written at the last checkpoint before this step) stays usable.
    """

    def on_before_backward(
        self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor
    ) -> None:
        if not torch.isfinite(loss).all():
            raise NonFiniteLossError(
                f"training loss is {loss.item()} at global step {trainer.global_step} "
                f"(epoch {trainer.current_epoch}); stopping. The last checkpoint before this "
                "step is intact; lower the learning rate or check the data."
            )
