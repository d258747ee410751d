"""The W&B loggers of a trainer, and what callbacks send them: captioned pictures, P-R curves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import lightning as L
import numpy as np
from lightning.pytorch.loggers import WandbLogger

__all__ = [
    "first_val_batch_media_due",
    "log_images",
    "log_media",
    "log_pr_curve",
    "wandb_loggers",
]


def wandb_loggers(trainer: L.Trainer) -> list[WandbLogger]:
    """The trainer's W&B loggers (empty when it logs elsewhere or nowhere)."""
    return [lg for lg in getattr(trainer, "loggers", []) if isinstance(lg, WandbLogger)]


def first_val_batch_media_due(
    trainer: L.Trainer, stage: str, batch_idx: int, every_n_epochs: int
) -> bool:
    """Whether to draw pictures of this batch: the first validation batch, every ``every_n_epochs``
    epochs, on rank 0, with a W&B logger to send them to."""
    due = trainer.current_epoch % every_n_epochs == 0
    return (
        stage == "val"
        and batch_idx == 0
        and due
        and trainer.is_global_zero
        and bool(wandb_loggers(trainer))
    )


def log_images(trainer: L.Trainer, key: str, images: list[np.ndarray], caption: str) -> None:
    """Log uint8 RGB pictures [H,W,3] under ``key`` to every W&B logger, each with ``caption``, at the global step."""
    for logger in wandb_loggers(trainer):
        logger.log_image(
            key=key, images=images, caption=[caption] * len(images), step=trainer.global_step
        )


def log_media(trainer: L.Trainer, media: Mapping[str, Any]) -> None:
    """Log W&B objects (images, tables, plots) under their keys to every W&B logger, at the global step.

    Through Lightning's ``log_metrics`` with its step, so W&B's history stays monotonic.
    """
    for logger in wandb_loggers(trainer):
        logger.log_metrics(dict(media), step=trainer.global_step)


def log_pr_curve(
    trainer: L.Trainer,
    key: str,
    title: str,
    thresholds: Sequence[float],
    recall: Sequence[float],
    precision: Sequence[float],
) -> None:
    """Log a precision-recall curve (one row per threshold) as a W&B line plot under ``key``."""
    loggers = wandb_loggers(trainer)
    if not loggers:
        return
    import wandb  # only when a W&B logger is configured

    rows = [[float(t), float(r), float(p)] for t, r, p in zip(thresholds, recall, precision)]
    table = wandb.Table(data=rows, columns=["threshold", "recall", "precision"])
    for logger in loggers:
        logger.experiment.log(
            {
                key: wandb.plot.line(table, "recall", "precision", title=title),
                "trainer/global_step": trainer.global_step,
            }
        )
