"""Where a run's files go when it starts from a checkpoint of an earlier run.

``python train.py ... ckpt_path=RUN/checkpoints/x.ckpt`` (a resume) continues in ``RUN`` and in
the W&B run recorded there; ``python evaluate.py ckpt_path=RUN/checkpoints/x.ckpt`` writes under
``RUN/eval/<time>/``. A checkpoint elsewhere (or none) gets the usual new run directory. Used by
the configs through the resolvers ``${pixelwise.run_dir:...}`` and ``${pixelwise.wandb_id:...}``
(registered in :mod:`pixelwise.cli`).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["checkpoint_run", "last_checkpoint", "run_dir_for", "wandb_run_id"]


def checkpoint_run(ckpt_path: str | None) -> Path | None:
    """``RUN`` when ``ckpt_path`` is ``RUN/checkpoints/<file>`` of a Hydra run (``RUN/.hydra`` exists), else None."""
    if not ckpt_path:
        return None
    path = Path(str(ckpt_path)).expanduser()
    run = path.parent.parent
    if path.parent.name != "checkpoints" or not (run / ".hydra").is_dir():
        return None
    return run.resolve()


def run_dir_for(ckpt_path: str | None, subdir: str, default: str) -> str:
    """``RUN/subdir`` for a checkpoint of run ``RUN`` (``subdir`` "." is RUN itself), else ``default``."""
    run = checkpoint_run(ckpt_path)
    if run is None:
        return default
    return str(run if subdir in ("", ".") else run / subdir)


def wandb_run_id(ckpt_path: str | None, job: str = "train") -> str | None:
    """The W&B run id of the run that wrote ``ckpt_path`` (its newest ``wandb/*run-<time>-<id>``) for a ``train`` job, else None."""
    run = checkpoint_run(ckpt_path)
    if run is None or job != "train":
        return None
    runs = sorted((run / "wandb").glob("*run-*-*"), key=lambda p: p.name.split("run-", 1)[1])
    runs = [p for p in runs if p.is_dir() and not p.is_symlink()]
    return runs[-1].name.rsplit("-", 1)[1] if runs else None


def last_checkpoint(run: str | Path) -> Path | None:
    """``RUN/checkpoints/last.ckpt`` (written after every validation, to resume from) if it exists."""
    path = Path(run) / "checkpoints" / "last.ckpt"
    return path if path.is_file() else None
