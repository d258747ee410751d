"""Log (image | ground truth | prediction) panels to W&B every few validation epochs."""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.loggers import WandbLogger

from pixelwise.callbacks.overlays import default_palette, segmentation_panel


class SegmentationPanels(L.Callback):
    """Keep the first validation batch and log `max_images` overlay panels to W&B loggers."""

    def __init__(self, every_n_epochs: int = 5, max_images: int = 4) -> None:
        if every_n_epochs < 1:
            raise ValueError(f"SegmentationPanels.every_n_epochs={every_n_epochs}: expected >= 1")
        self.every_n_epochs = every_n_epochs
        self.max_images = max_images
        self.panels: list = []

    def _due(self, trainer: L.Trainer) -> bool:
        wandb = [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]
        due = trainer.current_epoch % self.every_n_epochs == 0
        return bool(wandb) and due and not trainer.sanity_checking

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if batch_idx != 0 or not trainer.is_global_zero or not self._due(trainer):
            return
        dm = trainer.datamodule
        palette = getattr(dm, "palette", None)
        if palette is None:
            palette = default_palette(outputs.num_classes)
        ignore = getattr(dm, "ignore_index", 255)
        n = min(self.max_images, batch["image"].shape[0])
        self.panels = [
            segmentation_panel(
                batch["image"][i], batch["mask"][i], outputs.preds[i], palette, ignore
            )
            for i in range(n)
        ]

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.panels:
            return
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(
                    key="val/panels",
                    images=self.panels,
                    caption=["image | ground truth | prediction"] * len(self.panels),
                    step=trainer.global_step,
                )
        self.panels = []
