"""End-to-end runs of train.py / evaluate.py: configs, DDP, multirun, resume, errors."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
import torch

from tests.integration.conftest import REPO, TINY_SEGMENTATION, env, read_metrics, run_script

TASKS = sorted(p.stem for p in (REPO / "conf" / "task").glob("*.yaml"))


@pytest.mark.parametrize("task", TASKS)
def test_fast_dev_run_of_every_task_config(task, tmp_path):
    out = tmp_path / "run"
    run_script(
        "train.py", [f"task={task}", "debug=fdr", "logger=csv", f"hydra.run.dir={out}"], tmp_path
    )
    assert (out / "config.yaml").is_file()
    assert (out / "metrics.json").is_file()


def test_train_writes_run_dir_checkpoints_and_metrics(tmp_path):
    out = tmp_path / "run"
    proc = run_script("train.py", [*TINY_SEGMENTATION, f"hydra.run.dir={out}"], tmp_path)
    metrics = read_metrics(out)
    assert 0.0 <= metrics["val/miou"] <= 1.0 and "test/miou" in metrics
    assert (out / "checkpoints" / "last.ckpt").is_file()
    assert list((out / "checkpoints").glob("epoch_*.ckpt"))
    assert (out / "csv" / "metrics.csv").is_file()
    assert (out / ".hydra" / "config.yaml").is_file()
    assert "final metrics:" in proc.stdout and "val/miou=" in proc.stdout


def test_default_run_directory_layout(tmp_path):
    run_script(
        "train.py",
        [*TINY_SEGMENTATION, "train=false", "test=false", "optimized_metric=null"],
        tmp_path,
    )
    runs = list((tmp_path / "outputs" / "segmentation").iterdir())
    assert len(runs) == 1 and (runs[0] / "config.yaml").is_file()


def test_wandb_offline_run_is_written_without_network(tmp_path):
    out = tmp_path / "run"
    args = [a for a in TINY_SEGMENTATION if a != "logger=csv"]
    run_script(
        "train.py", [*args, "logger=wandb", "data.train.length=8", f"hydra.run.dir={out}"], tmp_path
    )
    offline = list((out / "wandb").glob("offline-run-*"))
    assert len(offline) == 1
    assert list(offline[0].glob("*.wandb"))


def test_ddp_cpu_validation_miou_equals_single_process(tmp_path):
    out = tmp_path / "ddp"
    run_script(
        "train.py",
        [*TINY_SEGMENTATION, "trainer=ddp_cpu", f"hydra.run.dir={out}", "trainer.max_epochs=1"],
        tmp_path,
    )
    ckpt = out / "checkpoints" / "last.ckpt"
    ddp_val = read_metrics(out)["val/miou"]
    # The same checkpoint evaluated on the validation split in one process.
    single = tmp_path / "single"
    run_script(
        "evaluate.py",
        [
            *TINY_SEGMENTATION,
            f"ckpt_path={ckpt}",
            "data.test=${data.val}",
            f"hydra.run.dir={single}",
        ],
        tmp_path,
    )
    assert read_metrics(single)["test/miou"] == pytest.approx(ddp_val, abs=1e-6)
    # And under DDP again (7 items on 2 ranks: uneven shards, nothing padded or dropped).
    ddp_eval = tmp_path / "ddp_eval"
    run_script(
        "evaluate.py",
        [
            *TINY_SEGMENTATION,
            f"ckpt_path={ckpt}",
            "data.test=${data.val}",
            "trainer=ddp_cpu",
            f"hydra.run.dir={ddp_eval}",
        ],
        tmp_path,
    )
    assert read_metrics(ddp_eval)["test/miou"] == pytest.approx(ddp_val, abs=1e-6)


def test_multirun_gives_one_complete_run_per_job(tmp_path):
    run_script(
        "train.py",
        [
            "-m",
            *TINY_SEGMENTATION,
            "model.base_channels=4,8",
            "trainer.max_steps=2",
            "hydra.sweep.dir=sweep",
        ],
        tmp_path,
    )
    jobs = sorted((tmp_path / "sweep").glob("[0-9]*"))
    assert [j.name for j in jobs] == ["0", "1"]
    for job in jobs:
        assert "val/miou" in read_metrics(job)
        assert (job / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.slow
def test_optuna_sweep_runs_a_study(tmp_path):
    run_script(
        "train.py",
        [
            "-m",
            "hparams_search=segmentation_optuna",
            *TINY_SEGMENTATION,
            "hydra.sweeper.n_trials=2",
            "trainer.max_steps=2",
            "hydra.sweep.dir=study",
        ],
        tmp_path,
    )
    results = (tmp_path / "study" / "optimization_results.yaml").read_text()
    assert "best_params" in results and "best_value" in results


@pytest.mark.slow
def test_joblib_launcher_runs_jobs_in_parallel_processes(tmp_path):
    run_script(
        "train.py",
        [
            "-m",
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2",
            *TINY_SEGMENTATION,
            "model.depth=1,2",
            "trainer.max_steps=1",
            "hydra.sweep.dir=par",
        ],
        tmp_path,
    )
    assert len(list((tmp_path / "par").glob("[0-9]*/metrics.json"))) == 2


def test_kill_and_resume_continues_at_the_saved_step(tmp_path):
    out = tmp_path / "run"
    args = [
        *TINY_SEGMENTATION,
        "data.train.length=16",
        "trainer.max_epochs=1000",
        "test=false",
        f"hydra.run.dir={out}",
    ]
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "train.py"), *args],
        cwd=tmp_path,
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    last = out / "checkpoints" / "last.ckpt"
    deadline = time.time() + 300
    try:
        while time.time() < deadline and not last.is_file():
            time.sleep(0.5)
        time.sleep(1.0)  # let the checkpoint be written completely
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert last.is_file(), "no last.ckpt before the kill"
    saved = torch.load(last, map_location="cpu", weights_only=False)
    saved_step = saved["global_step"]
    assert saved_step > 0 and saved_step % 4 == 0  # 16 items / batch 4 per epoch
    resumed = tmp_path / "resumed"
    target_epochs = saved["epoch"] + 2
    run_script(
        "train.py",
        [
            *args[:-2],
            f"trainer.max_epochs={target_epochs}",
            "test=false",
            f"ckpt_path={last}",
            f"hydra.run.dir={resumed}",
        ],
        tmp_path,
    )
    final = torch.load(
        resumed / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False
    )
    assert final["global_step"] == target_epochs * 4
    # Optimizer and scheduler state came back: AdamW's step count continued from the save.
    step_count = next(iter(final["optimizer_states"][0]["state"].values()))["step"]
    assert int(step_count) == target_epochs * 4
    assert final["lr_schedulers"][0]["last_epoch"] == target_epochs * 4


def test_missing_checkpoint_is_a_one_line_error(tmp_path):
    proc = run_script("evaluate.py", ["ckpt_path=nowhere/last.ckpt"], tmp_path, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: ckpt_path=nowhere/last.ckpt: no such checkpoint file"
    )
    assert "Traceback" not in proc.stderr


def test_evaluate_needs_a_checkpoint_or_pretrained_weights(tmp_path):
    proc = run_script("evaluate.py", [], tmp_path, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "ckpt_path is required" in proc.stderr and "model.pretrained=PATH" in proc.stderr


def test_unreadable_checkpoint_is_a_one_line_error(tmp_path):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    proc = run_script("evaluate.py", [f"ckpt_path={bad}"], tmp_path, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"ckpt_path={bad}: cannot read a Lightning checkpoint" in proc.stderr


def test_unknown_group_option_lists_the_choices(tmp_path):
    proc = run_script("train.py", ["model=nope"], tmp_path, check=False)
    assert proc.returncode != 0
    assert "Could not find 'model/nope'" in proc.stderr and "unet" in proc.stderr


def test_evaluate_writes_metrics_json(tmp_path):
    out = tmp_path / "run"
    run_script("train.py", [*TINY_SEGMENTATION, "test=false", f"hydra.run.dir={out}"], tmp_path)
    ev = tmp_path / "eval"
    run_script(
        "evaluate.py",
        [
            *TINY_SEGMENTATION,
            f"ckpt_path={out / 'checkpoints' / 'last.ckpt'}",
            f"hydra.run.dir={ev}",
        ],
        tmp_path,
    )
    metrics = read_metrics(ev)
    assert 0.0 <= metrics["test/miou"] <= 1.0
    assert any(k.startswith("test/iou/") for k in metrics)
