"""Optimizer and LR-scheduler assembly shared by every task (partials come from the config)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch

OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[..., Any]

# Scheduler arguments that mean "the length of training"; filled in from the trainer when the
# config leaves them out, so a cosine schedule spans exactly the run.
_LENGTH_ARGS = ("T_max", "total_steps", "total_iters")


def configure(
    params: Any,
    optimizer: OptimizerFactory,
    scheduler: SchedulerFactory | None,
    total_steps: int,
    interval: str = "step",
) -> dict[str, Any]:
    """Lightning's configure_optimizers dict from partial factories."""
    opt = optimizer(params=params)
    if scheduler is None:
        return {"optimizer": opt}
    kwargs = {}
    given = getattr(scheduler, "keywords", {}) or {}
    try:
        accepted = inspect.signature(getattr(scheduler, "func", scheduler)).parameters
    except (TypeError, ValueError):
        accepted = {}
    for name in _LENGTH_ARGS:
        if name in accepted and name not in given:
            kwargs[name] = max(1, int(total_steps))
    sched = scheduler(optimizer=opt, **kwargs)
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": interval}}
