"""Quiet by default: a debug run of a task prints no warnings (stdout or stderr), W&B's and Python's included."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.integration.conftest import REPO

# Lines that may mention warnings without being one (none today).
ALLOWED: tuple[str, ...] = ()


def warning_lines(task: str, tmp_path, run: tuple[str, ...] = ("debug=fdr",)) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    env.update(WANDB_MODE="offline", OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "train.py"),
            f"task={task}",
            *run,
            f"hydra.run.dir={tmp_path / task}",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    # Both streams: Python warnings reach Hydra's console handler on stdout ("[py.warnings]").
    return [
        line
        for line in (proc.stdout + proc.stderr).splitlines()
        if "warn" in line.lower() and not any(a in line for a in ALLOWED)
    ]


def test_segmentation_debug_run_has_no_warnings(tmp_path):
    assert warning_lines("segmentation", tmp_path) == []


@pytest.mark.slow
@pytest.mark.parametrize(
    "task",
    [
        "edges",
        "magicpoint",
        "homographic_adaptation",
        "superpoint",
        "detection",
        "panoptic",
        "instance",
    ],
)
def test_every_task_debug_run_has_no_warnings(task, tmp_path):
    assert warning_lines(task, tmp_path) == []


@pytest.mark.slow
def test_adaptation_run_with_a_sanity_check_has_no_warnings(tmp_path):
    # fast_dev_run skips the sanity check; after one, Lightning restores the modes it found, and a
    # teacher left in eval mode there made it warn "modules in eval mode" when training started.
    run = (
        "trainer.max_steps=2",
        "trainer.num_sanity_val_steps=1",
        "trainer.limit_val_batches=1",
        "trainer.limit_test_batches=1",
        "logger=csv",
    )
    assert warning_lines("homographic_adaptation", tmp_path, run) == []
