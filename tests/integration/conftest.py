"""Run the real entry points (train.py / evaluate.py) in a subprocess, in a temp directory."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pixelwise.interrupts import STACK_DUMP_SIGNAL

REPO = Path(__file__).resolve().parents[2]

# Tiny segmentation runs: a few 32x48 scenes, a 4-channel U-Net.
TINY_SEGMENTATION = [
    "data.train.length=24",
    "data.val.length=7",
    "data.test.length=5",
    "data.train.size=[32,48]",
    "data.batch_size=4",
    "data.eval_batch_size=2",
    "data.num_workers=0",
    "model.base_channels=4",
    "model.depth=2",
    "trainer.max_epochs=1",
    "logger=csv",
]


def env() -> dict[str, str]:
    e = dict(os.environ)
    e.update(
        WANDB_MODE="offline", WANDB_SILENT="true", OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore"
    )
    return e


def run_script(script: str, args: list[str], cwd: Path, check: bool = True, timeout: int = 600):
    """Run `python <script> args` in cwd; return the CompletedProcess (text).

    In its own process group: a run that overstays ``timeout`` is asked for every process's stack
    (``kill -USR2``, see pixelwise.interrupts), then the whole group (DDP ranks, DataLoader
    workers) is killed and the test fails with those stacks.
    """
    command = [sys.executable, str(REPO / script), *args]
    with subprocess.Popen(
        command,
        cwd=cwd,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, STACK_DUMP_SIGNAL)
            time.sleep(3)
            os.killpg(proc.pid, signal.SIGKILL)
            stdout, stderr = proc.communicate()
            raise AssertionError(
                f"{script} {' '.join(args)} ran over {timeout} s; its stderr, ending with the stack each process wrote:\n"
                f"{stderr[-12000:]}"
            ) from None
    completed = subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)
    if check and completed.returncode != 0:
        raise AssertionError(
            f"{script} {' '.join(args)} exited {completed.returncode}\n--- stdout\n{stdout[-4000:]}"
            f"\n--- stderr\n{stderr[-6000:]}"
        )
    return completed


def read_metrics(run_dir: Path) -> dict[str, float]:
    return json.loads((run_dir / "metrics.json").read_text())


def evaluate_for_pins(tmp_path: Path, overrides: list[str]) -> dict[str, float]:
    """Run evaluate.py with ``overrides`` (CSV logger, 0 workers) in ``tmp_path``; return its metrics.

    For the shipped-weights pins: a change in data, decoding or metric that moves a number shows up.
    """
    out = tmp_path / "eval"
    args = [*overrides, "data.num_workers=0", "logger=csv", f"hydra.run.dir={out}"]
    run_script("evaluate.py", args, tmp_path)
    return read_metrics(out)


def off_pins(
    metrics: dict[str, float], pinned: dict[str, float], abs_tol: float = 2e-3
) -> dict[str, tuple[float | None, float]]:
    """The pinned metrics that moved by more than ``abs_tol`` (or are missing): key -> (got, pinned)."""
    return {
        key: (metrics.get(key), value)
        for key, value in pinned.items()
        if key not in metrics or abs(metrics[key] - value) > abs_tol
    }


@pytest.fixture
def run(tmp_path):
    def _run(script, args, **kw):
        return run_script(script, args, tmp_path, **kw)

    return _run
