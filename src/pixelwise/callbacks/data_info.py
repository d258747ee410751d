"""The one path by which callbacks read what the data declares: ``trainer.datamodule.info``.

Callbacks import no data code; they read the :class:`pixelwise.data.info.DatasetInfo` the
datamodule exposes as ``info`` (the data contract, DESIGN.md), through :func:`data_fact`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["data_fact"]


def data_fact(trainer: Any, name: str, default: Any = None) -> Any:
    """``trainer.datamodule.info.<name>``, or ``default`` when there is no datamodule or the data does not declare it (None)."""
    info = getattr(getattr(trainer, "datamodule", None), "info", None)
    value = getattr(info, name, None) if info is not None else None
    return default if value is None else value
