"""Example heatmaps of homographic adaptation: image | teacher | adapted average | student, to W&B (and PNGs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import WandbLogger

from pixelwise.callbacks.overlays import to_uint8_image

__all__ = ["AdaptationMedia", "heatmap_panel"]

CAPTION = (
    "image | teacher | teacher adapted over homographies | student (each heatmap scaled to its max)"
)


def _colour(heat: torch.Tensor) -> np.ndarray:
    """Heatmap [H,W] >= 0 -> uint8 RGB [H,W,3], scaled to its own maximum (inferno colours)."""
    h = heat.detach().float().cpu().numpy()
    top = float(h.max()) if h.size else 0.0
    grey = np.zeros(h.shape, np.uint8) if top <= 0 else np.round(h / top * 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(grey, cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB)


def heatmap_panel(
    image: torch.Tensor, teacher: torch.Tensor, adapted: torch.Tensor, student: torch.Tensor
) -> np.ndarray:
    """image [1,H,W] and three heatmaps [1,H,W] -> uint8 RGB panel [H, 4W, 3]."""
    parts = [to_uint8_image(image)] + [_colour(h[0]) for h in (teacher, adapted, student)]
    return np.concatenate(parts, axis=1)


class AdaptationMedia(L.Callback):
    """Every ``every_n_epochs`` validations (and at test), panels of the first ``max_images`` images.

    Needs the task's ``teacher_heatmap``, ``adapted_heatmap`` and ``student_heatmap``
    (``HomographicAdaptationTask``). Logged as ``<stage>/adaptation_heatmaps`` on W&B loggers;
    with ``dirpath`` also written as PNGs ``<dirpath>/<stage>_<step>_<i>.png`` (useful without
    W&B). Does nothing when neither is available. The adapted heatmap's homographies come from
    a generator seeded with ``seed``, so panels of different epochs are comparable; there are
    ``num_homographies`` of them (null: the task's export number, 100 by default: costly on a CPU).
    """

    def __init__(
        self,
        every_n_epochs: int = 1,
        max_images: int = 4,
        seed: int = 0,
        dirpath: str | None = None,
        num_homographies: int | None = 25,
    ) -> None:
        if every_n_epochs < 1:
            raise ValueError(f"AdaptationMedia.every_n_epochs={every_n_epochs}: expected >= 1")
        if max_images < 0:
            raise ValueError(f"AdaptationMedia.max_images={max_images}: expected >= 0")
        if num_homographies is not None and num_homographies < 1:
            raise ValueError(
                f"AdaptationMedia.num_homographies={num_homographies}: expected null or >= 1"
            )
        self.num_homographies = num_homographies
        self.every_n_epochs = every_n_epochs
        self.max_images = max_images
        self.seed = seed
        self.dirpath = Path(dirpath) if dirpath is not None else None
        self._images: list[torch.Tensor] = []
        self.panels: list[np.ndarray] = []

    @staticmethod
    def _wandb(trainer: L.Trainer) -> list[WandbLogger]:
        return [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]

    def _due(self, trainer: L.Trainer, stage: str) -> bool:
        if self.max_images == 0 or not trainer.is_global_zero or trainer.sanity_checking:
            return False
        if not self._wandb(trainer) and self.dirpath is None:
            return False
        return stage == "test" or trainer.current_epoch % self.every_n_epochs == 0

    def _collect(self, trainer: L.Trainer, stage: str, batch: dict[str, Any]) -> None:
        if self._due(trainer, stage) and len(self._images) < self.max_images:
            ok = batch.get("ok")
            for i, image in enumerate(batch["image"]):
                if len(self._images) < self.max_images and (ok is None or bool(ok[i])):
                    self._images.append(image.detach())

    def _emit(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        images, self._images = self._images, []
        if not images or not self._due(trainer, stage):
            return
        batch = torch.stack(images)
        with torch.no_grad():
            teacher = pl_module.teacher_heatmap(batch)
            adapted = pl_module.adapted_heatmap(
                batch,
                generator=torch.Generator().manual_seed(self.seed),
                num_homographies=self.num_homographies,
            )
            student = pl_module.student_heatmap(batch)
        self.panels = [
            heatmap_panel(batch[i], teacher[i], adapted[i], student[i]) for i in range(len(batch))
        ]
        for logger in self._wandb(trainer):
            logger.log_image(
                key=f"{stage}/adaptation_heatmaps",
                images=self.panels,
                caption=[CAPTION] * len(self.panels),
                step=trainer.global_step,
            )
        if self.dirpath is not None:
            self.dirpath.mkdir(parents=True, exist_ok=True)
            for i, panel in enumerate(self.panels):
                name = f"{stage}_{trainer.global_step:06d}_{i}.png"
                cv2.imwrite(str(self.dirpath / name), cv2.cvtColor(panel, cv2.COLOR_RGB2BGR))

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        self._collect(trainer, "val", batch)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._emit(trainer, pl_module, "val")

    def on_test_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        self._collect(trainer, "test", batch)

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._emit(trainer, pl_module, "test")
