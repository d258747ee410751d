"""Example heatmaps of homographic adaptation: image | teacher | adapted average | student, to W&B (and PNGs)."""

from __future__ import annotations

from pathlib import Path

import cv2
import lightning as L
import numpy as np
import torch

from pixelwise.callbacks.options import check_at_least
from pixelwise.callbacks.stages import StageCallback
from pixelwise.callbacks.wandb_media import log_images, wandb_loggers
from pixelwise.drawing import to_uint8_image
from pixelwise.tasks.outputs import AdaptationOutput

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


class AdaptationMedia(StageCallback):
    """Every ``every_n_epochs`` validations (and at test), panels of the first ``max_images`` images.

    Reads the task's :class:`~pixelwise.tasks.outputs.AdaptationOutput`: ``media_images`` and
    their ``adapted_heatmap`` (computed by ``HomographicAdaptationTask`` for its first
    ``task.media_images`` usable images of each evaluation epoch, over
    ``task.media_num_homographies`` homographies seeded by ``task.media_seed``, so panels of
    different epochs are comparable), with the teacher's and student's heatmaps of the same
    images. Logged as ``<stage>/adaptation_heatmaps`` on W&B loggers; with ``dirpath`` also
    written as PNGs ``<dirpath>/<stage>_<step>_<i>.png`` (useful without W&B). Does nothing when
    neither is available, or when the task computed no adapted heatmaps (``task.media_images=0``).
    """

    def __init__(
        self,
        every_n_epochs: int = 1,
        max_images: int = 4,
        dirpath: str | None = None,
    ) -> None:
        check_at_least("AdaptationMedia", "every_n_epochs", every_n_epochs, 1)
        check_at_least("AdaptationMedia", "max_images", max_images, 0)
        self.every_n_epochs = every_n_epochs
        self.max_images = max_images
        self.dirpath = Path(dirpath) if dirpath is not None else None
        self._parts: list[tuple[torch.Tensor, ...]] = []
        self.panels: list[np.ndarray] = []

    def _due(self, trainer: L.Trainer, stage: str) -> bool:
        if self.max_images == 0 or not trainer.is_global_zero or trainer.sanity_checking:
            return False
        if not wandb_loggers(trainer) and self.dirpath is None:
            return False
        return stage == "test" or trainer.current_epoch % self.every_n_epochs == 0

    def _collect(self, trainer: L.Trainer, stage: str, outputs: AdaptationOutput) -> None:
        if not self._due(trainer, stage) or outputs.adapted_heatmap is None:
            return
        usable = [i for i, v in enumerate(outputs.ok.tolist()) if v]
        for k, image in enumerate(outputs.media_images):
            if len(self._parts) >= self.max_images:
                return
            i = usable[k]
            self._parts.append(
                tuple(
                    t.detach()
                    for t in (
                        image,
                        outputs.teacher_heatmap[i],
                        outputs.adapted_heatmap[k],
                        outputs.student_heatmap[i],
                    )
                )
            )

    def _emit(self, trainer: L.Trainer, stage: str) -> None:
        parts, self._parts = self._parts, []
        if not parts or not self._due(trainer, stage):
            return
        self.panels = [heatmap_panel(*p) for p in parts]
        log_images(trainer, f"{stage}/adaptation_heatmaps", self.panels, CAPTION)
        if self.dirpath is not None:
            self.dirpath.mkdir(parents=True, exist_ok=True)
            for i, panel in enumerate(self.panels):
                name = f"{stage}_{trainer.global_step:06d}_{i}.png"
                cv2.imwrite(str(self.dirpath / name), cv2.cvtColor(panel, cv2.COLOR_RGB2BGR))

    def stage_batch_end(self, stage, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._collect(trainer, stage, outputs)

    def stage_end(self, stage: str, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._emit(trainer, stage)
