"""Loggers used by the configs (``conf/logger``)."""

from __future__ import annotations

from typing import Any

from lightning.pytorch.loggers import WandbLogger as _LightningWandbLogger

__all__ = ["WandbLogger"]


class WandbLogger(_LightningWandbLogger):
    """Lightning's ``WandbLogger`` without the ``anonymous=None`` it always hands to ``wandb.init``.

    wandb 0.2x deprecated that setting and warns on every run whenever it is passed, even as
    None ("The anonymous setting has no effect ..."); dropping the key when it is None keeps the
    console quiet and changes nothing else. An explicit ``anonymous=True`` is kept.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self._wandb_init.get("anonymous") is None:
            self._wandb_init.pop("anonymous", None)
