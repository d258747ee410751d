"""Make every DDP rank evaluate exactly the weights rank 0 saves."""

from __future__ import annotations

import lightning as L
import torch
import torch.distributed as dist


class BroadcastBuffers(L.Callback):
    """Broadcast rank 0's buffers (BatchNorm running statistics) before validation and test.

    Without SyncBatchNorm each rank updates its running statistics on its own batches after
    DDP's last buffer broadcast, so ranks would validate slightly different models and the
    reduced metric would not be the metric of the checkpoint rank 0 writes.
    """

    def _broadcast(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.world_size < 2 or not (dist.is_available() and dist.is_initialized()):
            return
        with torch.no_grad():
            for buffer in pl_module.buffers():
                dist.broadcast(buffer, src=0)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._broadcast(trainer, pl_module)

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._broadcast(trainer, pl_module)
