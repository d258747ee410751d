"""One experiment, one directory: evaluate.py and a resume started from RUN/checkpoints/x.ckpt write into RUN."""

from __future__ import annotations

from pathlib import Path

from pixelwise.run_dirs import checkpoint_run, run_dir_for, wandb_run_id
from tests.integration.conftest import TINY_SEGMENTATION, run_script


def fake_run(root: Path, wandb_dirs=()) -> Path:
    (root / ".hydra").mkdir(parents=True)
    (root / "checkpoints").mkdir()
    (root / "checkpoints" / "last.ckpt").write_bytes(b"")
    for name in wandb_dirs:
        (root / "wandb" / name).mkdir(parents=True)
    return root


def test_run_dir_rules(tmp_path):
    run = fake_run(
        tmp_path / "run",
        ["offline-run-20261206_044338-aaaa1111", "offline-run-20261206_101500-bbbb2222"],
    )
    (run / "wandb" / "latest-run").symlink_to(
        run / "wandb" / "offline-run-20261206_044338-aaaa1111"
    )
    ckpt = str(run / "checkpoints" / "last.ckpt")
    assert checkpoint_run(ckpt) == run.resolve()
    assert run_dir_for(ckpt, "eval/t", "outputs/x") == str(run.resolve() / "eval" / "t")
    assert run_dir_for(ckpt, ".", "outputs/x") == str(run.resolve())
    assert wandb_run_id(ckpt) == "bbbb2222"  # the newest
    assert wandb_run_id(ckpt, "evaluate") is None
    # Not a run's checkpoints/ directory, or no checkpoint: the default.
    loose = tmp_path / "x.ckpt"
    loose.write_bytes(b"")
    assert run_dir_for(str(loose), ".", "outputs/x") == "outputs/x"
    assert run_dir_for(None, ".", "outputs/x") == "outputs/x"
    assert wandb_run_id(str(fake_run(tmp_path / "nowandb") / "checkpoints" / "last.ckpt")) is None


def test_evaluate_and_resume_write_into_the_run(tmp_path):
    run = tmp_path / "outputs" / "first"
    run_script("train.py", [*TINY_SEGMENTATION, "logger=wandb", f"hydra.run.dir={run}"], tmp_path)
    ckpt = run / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()

    # evaluate.py: RUN/eval/<time>/ with its metrics and log.
    run_script("evaluate.py", [*TINY_SEGMENTATION, f"ckpt_path={ckpt}"], tmp_path)
    (evaluation,) = (run / "eval").iterdir()
    assert (evaluation / "metrics.json").is_file() and (evaluation / "evaluate.log").is_file()

    # A resume: the same directory, its train.log continued, one more epoch of checkpoints.
    log_before = (run / "train.log").read_text()
    run_script(
        "train.py",
        [*TINY_SEGMENTATION, "logger=wandb", "trainer.max_epochs=2", f"ckpt_path={ckpt}"],
        tmp_path,
    )
    # ... and the same W&B run (offline: a second run directory with the first one's id).
    first, second = sorted(p.name for p in (run / "wandb").glob("offline-run-*"))
    assert first.rsplit("-", 1)[1] == second.rsplit("-", 1)[1]
    assert not (tmp_path / "outputs" / "segmentation").exists()
    log_after = (run / "train.log").read_text()
    assert log_after.startswith(log_before[:200]) and len(log_after) > len(log_before)
    assert "Restored all states from the checkpoint" in log_after
