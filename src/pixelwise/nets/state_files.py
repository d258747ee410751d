"""Loading a net's weights from a local state-dict file (``model.pretrained=PATH``), with errors that
name the file and what does not fit."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

__all__ = ["load_state_file"]


def load_state_file(
    net: nn.Module, path: str | os.PathLike, what: str, prefix: str | None = None
) -> None:
    """Load a state dict file into ``net`` (strict).

    ``what`` describes the net in the error (e.g. "fasterrcnn_resnet50_fpn with 3 classes");
    ``prefix`` is added to every key when the file holds none with it (e.g. the bare torchvision
    model's keys for a wrapper that keeps it as ``model``). A Lightning checkpoint is refused
    with a pointer to ``ckpt_path=``.
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"model.pretrained={path}: no such file")
    state = torch.load(file, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        raise ValueError(
            f"model.pretrained={path} is a Lightning checkpoint; pass it as ckpt_path= instead"
        )
    if prefix and not any(k.startswith(prefix) for k in state):
        state = {f"{prefix}{k}": v for k, v in state.items()}
    try:
        net.load_state_dict(state)
    except RuntimeError as err:  # missing/unexpected keys or a shape mismatch
        detail = str(err).split("\n\t", 1)[-1].splitlines()[0]
        raise ValueError(f"model.pretrained={path} does not fit {what}: {detail}") from None
