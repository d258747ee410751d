"""Log overlay panels of the first validation batch to W&B every few validation epochs."""

from __future__ import annotations

from typing import Any

import lightning as L
import numpy as np

from pixelwise.callbacks.data_info import data_fact
from pixelwise.callbacks.options import check_at_least
from pixelwise.callbacks.overlays import default_palette, segmentation_panel
from pixelwise.callbacks.wandb_media import log_images, wandb_loggers

__all__ = ["SegmentationPanels", "ValidationPanels"]


class ValidationPanels(L.Callback):
    """Keep the first validation batch's first `max_images` panels and log them to W&B loggers.

    A subclass draws one item's panel in ``panel`` and names its columns in ``caption``.
    """

    caption: str = ""

    def __init__(self, every_n_epochs: int, max_images: int) -> None:
        check_at_least(type(self).__name__, "every_n_epochs", every_n_epochs, 1)
        self.every_n_epochs = every_n_epochs
        self.max_images = max_images
        self.panels: list[np.ndarray] = []

    def panel(self, trainer: L.Trainer, batch: Any, outputs: Any, i: int) -> np.ndarray:
        """Item ``i`` of a validation batch and its outputs -> uint8 RGB panel [H, W', 3]."""
        raise NotImplementedError

    def _due(self, trainer: L.Trainer) -> bool:
        due = trainer.current_epoch % self.every_n_epochs == 0
        return bool(wandb_loggers(trainer)) and due and not trainer.sanity_checking

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
        n = min(self.max_images, batch["image"].shape[0])
        self.panels = [self.panel(trainer, batch, outputs, i) for i in range(n)]

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.panels:
            log_images(trainer, "val/panels", self.panels, self.caption)
        self.panels = []


class SegmentationPanels(ValidationPanels):
    """(image | ground truth | prediction) panels, in the datamodule's palette."""

    caption = "image | ground truth | prediction"

    def __init__(self, every_n_epochs: int = 5, max_images: int = 4) -> None:
        super().__init__(every_n_epochs, max_images)

    def panel(self, trainer: L.Trainer, batch: Any, outputs: Any, i: int) -> np.ndarray:
        palette = data_fact(trainer, "palette")
        if palette is None:
            palette = default_palette(outputs.num_classes)
        ignore = data_fact(trainer, "ignore_index", 255)
        return segmentation_panel(
            batch["image"][i], batch["mask"][i], outputs.preds[i], palette, ignore
        )
