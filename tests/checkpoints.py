"""Write a LightningModule as the checkpoint file Lightning would (without running a Trainer)."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch


def save_lightning_checkpoint(module: L.LightningModule, path: Path) -> Path:
    """The state dict + hyperparameters ``load_from_checkpoint`` / ``ckpt_path=`` need; return ``path``."""
    torch.save(
        {
            "state_dict": module.state_dict(),
            "hyper_parameters": dict(module.hparams),
            "pytorch-lightning_version": L.__version__,
        },
        path,
    )
    return path
