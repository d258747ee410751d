"""Device requests checked before anything starts: a GPU asked for on a machine without one is a
one-line error instead of N silent CPU processes (Lightning's ``accelerator="auto"`` falls back
to CPU processes, which on a 2-core machine runs a 4-GPU recipe at a crawl)."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["device_problem"]

CUDA_INSTALL = (
    'make install TORCH="torch==2.14.1 torchvision==0.29.1 '
    '--index-url https://download.pytorch.org/whl/cu128"'
)


def _what_machine_has() -> str:
    if torch.version.cuda is None:
        return f"this torch ({torch.__version__}) is a CPU-only build"
    return f"this torch ({torch.__version__}, CUDA {torch.version.cuda}) sees no CUDA device"


def _count(devices: Any) -> int | None:
    """Number of devices asked for: int, "N", a list of indices, or None for "auto" / -1."""
    if isinstance(devices, str):
        if devices.strip() in ("auto", "-1"):
            return None
        if "," in devices:
            return len([d for d in devices.split(",") if d.strip()])
        return int(devices)
    if isinstance(devices, (list, tuple)):
        return len(devices)
    if devices is None or int(devices) == -1:
        return None
    return int(devices)


def device_problem(
    accelerator: str | None, devices: Any, cuda_available: bool | None = None
) -> str | None:
    """A one-line message when the trainer's request cannot be met as meant, else None.

    ``accelerator="gpu"|"cuda"`` needs a CUDA device. ``accelerator="auto"`` with more than one
    device (or a list of device indices) means GPUs: without CUDA, Lightning would start that many
    CPU processes instead, so it is refused too; ``accelerator="cpu"`` with N devices (e.g.
    ``trainer=ddp_cpu``) is CPU DDP on purpose and allowed.
    """
    if cuda_available is None:
        cuda_available = torch.cuda.is_available()
    if cuda_available:
        return None
    accelerator = (accelerator or "auto").lower()
    try:
        count = _count(devices)
    except (TypeError, ValueError):
        return f"trainer.devices={devices!r}: expected a number, a list of device indices or 'auto'"
    if accelerator in ("gpu", "cuda"):
        return (
            f"trainer.accelerator={accelerator} asks for a GPU, but {_what_machine_has()}. "
            f"Run on the CPU (trainer=cpu), or install a CUDA build of torch: {CUDA_INSTALL}"
        )
    many = count is not None and count > 1 or isinstance(devices, (list, tuple))
    if accelerator == "auto" and many:
        return (
            f"trainer.devices={devices} asks for {count} GPUs, but {_what_machine_has()}; "
            f"Lightning would start {count} CPU processes instead. For CPU DDP on purpose use "
            f"trainer=ddp_cpu (or trainer.accelerator=cpu trainer.devices={count}); for GPUs install "
            f"a CUDA build of torch: {CUDA_INSTALL}"
        )
    return None
