"""Quiet by default: a debug run of a task prints no warnings on stderr, W&B's and Python's included."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.integration.conftest import REPO

# Lines that may mention warnings without being one (none today).
ALLOWED: tuple[str, ...] = ()


def warning_lines(task: str, tmp_path) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    env.update(WANDB_MODE="offline", OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "train.py"),
            f"task={task}",
            "debug=fdr",
            f"hydra.run.dir={tmp_path / task}",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [
        line
        for line in proc.stderr.splitlines()
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
