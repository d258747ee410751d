"""Save the task's net as a plain state dict (a teacher file for the next round of homographic adaptation)."""

from __future__ import annotations

import os
from pathlib import Path

import lightning as L
import torch

__all__ = ["DetectorWeights"]


class DetectorWeights(L.Callback):
    """Write ``pl_module.net.state_dict()`` to ``path`` at the end of fit and again at the end of test.

    ``train.py`` tests the best checkpoint after fitting, so the file ends up holding the best
    weights (the final ones when there is no test). The file loads with
    ``pixelwise.nets.superpoint.load_superpoint_weights`` and serves as ``task.teacher=PATH``.
    Written by rank 0 only, through a temporary file and a rename.
    """

    def __init__(self, path: str | os.PathLike, attribute: str = "net") -> None:
        self.path = Path(path)
        self.attribute = attribute

    def _save(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        net = getattr(pl_module, self.attribute, None)
        if net is None:
            raise AttributeError(
                f"DetectorWeights: the task {type(pl_module).__name__} has no '{self.attribute}' module"
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
        torch.save(state, tmp)
        os.replace(tmp, self.path)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._save(trainer, pl_module)

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._save(trainer, pl_module)
