"""The run directory's train.log holds Lightning's messages and warnings, not only pixelwise's (issue 14)."""

from __future__ import annotations

from tests.integration.conftest import run_script


def test_train_log_holds_lightnings_messages_and_the_console_is_quieter(tmp_path):
    run_dir = tmp_path / "run"
    proc = run_script("train.py", ["debug=fdr", "logger=csv", f"hydra.run.dir={run_dir}"], tmp_path)
    log = (run_dir / "train.log").read_text()
    assert "Seed set to 1234" in log and "GPU available: False" in log
    assert "fast_dev_run" in log
    # One model summary (callbacks.model_summary), without Lightning's warning about a second.
    assert "Trainer already configured with model summary" not in proc.stdout + proc.stderr
    assert "┃ Name" in proc.stdout + proc.stderr
