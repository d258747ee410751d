"""train.py with logger=wandb (offline): the run's name and logged checkpoints (log_model)."""

from __future__ import annotations

import yaml

from tests.integration.conftest import TINY_SEGMENTATION, run_script


def test_run_name_and_log_model(tmp_path):
    out = tmp_path / "run"
    args = [a for a in TINY_SEGMENTATION if a != "logger=csv"]
    run_script(
        "train.py",
        [
            *args,
            "data.train.length=8",
            "logger=wandb",
            "logger.wandb.log_model=true",
            f"hydra.run.dir={out}",
        ],
        tmp_path,
    )
    config = yaml.safe_load((out / "config.yaml").read_text())
    name = config["logger"]["wandb"]["name"]
    # segmentation-<YYYYmmdd-HHMMSS>-<overrides without logger/hydra keys, cut to 100 characters>
    task, date, clock, overrides = name.split("-", 3)
    assert task == "segmentation" and len(date) == 8 and len(clock) == 6
    assert overrides.startswith("train.length=24,val.length=7,") and len(name) <= 100
    assert "logger" not in overrides and "hydra" not in overrides and "log_model" not in overrides
    (run_dir,) = (out / "wandb").glob("offline-run-*")
    record = next(run_dir.glob("*.wandb")).read_bytes()
    assert name.encode() in record  # the run's display name
    run_id = run_dir.name.rsplit("-", 1)[-1]
    assert f"model-{run_id}".encode() in record  # the checkpoints, logged as a model artifact
