"""The CPU default recipes of detection and panoptic segmentation reach their issue goals (slow).

Each runs the README's command as it stands (all epochs, validation, the test split once) with
the torch threads the machine has, and checks the test split against the goals, not against
the shipped numbers: these short trainings are seeded but not bit-reproducible across thread
counts and machines (0.677 against 0.679 test AP for two runs of the detection recipe here).
On the 2 quiet cores here: detection 7 min, panoptic 13 min.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.integration.conftest import REPO, env, read_metrics

# The issues' goals (README, "Object detection" and "Panoptic and instance segmentation"). The
# panoptic recipe clears "mIoU >= 0.85" by 0.015 (test 0.865, README), several times the 0.003
# spread between runs of one command (runs are not bit-reproducible on CPU).
GOALS = {
    "fcos_synthetic": {"test/map_50": 0.80, "test/map": 0.50},
    "panoptic_synthetic": {"test/pq": 0.60, "test/pq_things": 0.45, "test/miou": 0.85},
}


@pytest.mark.slow
@pytest.mark.parametrize("experiment", sorted(GOALS))
def test_default_recipe_reaches_its_goals(experiment, tmp_path):
    # The other tests pin one thread; a recipe runs as a user runs it, on all the cores.
    recipe_env = {k: v for k, v in env().items() if k != "OMP_NUM_THREADS"}
    out = tmp_path / experiment
    proc = subprocess.run(
        [sys.executable, str(REPO / "train.py"), f"experiment={experiment}", "logger=csv"]
        + [f"hydra.run.dir={out}"],
        cwd=tmp_path,
        env=recipe_env,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    metrics = read_metrics(out)
    for key, goal in GOALS[experiment].items():
        assert metrics[key] >= goal, f"{experiment}: {key} = {metrics[key]:.3f} < {goal}"
    assert (out / "checkpoints" / "last.ckpt").is_file()
