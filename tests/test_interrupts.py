"""pixelwise.interrupts and the interruption line of pixelwise.cli, in one process (no training)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from lightning.pytorch.trainer.states import RunningStage, TrainerFn
from omegaconf import OmegaConf

from pixelwise import interrupts
from pixelwise.cli import interruption_message


def _signal_self(signum: int) -> None:
    os.kill(os.getpid(), signum)
    time.sleep(1)  # the handler runs (and raises) before this returns


@pytest.mark.parametrize(
    "signum, error",
    [(signal.SIGINT, KeyboardInterrupt), (signal.SIGTERM, interrupts.Interrupted)],
)
def test_a_signal_is_recorded_and_stops_the_block(signum, error):
    # Python's own SIGINT handler, as in a terminal: a suite run as a background job of a
    # non-interactive shell starts with SIGINT ignored, which catch_signals keeps by design.
    outer = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        before = signal.getsignal(signum)
        with pytest.raises(error), interrupts.catch_signals():
            _signal_self(signum)
        assert interrupts.received() == signum
        assert signal.getsignal(signum) is before  # the previous handler is back
    finally:
        signal.signal(signal.SIGINT, outer)


def test_an_ignored_sigint_stays_ignored():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with interrupts.catch_signals():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            _signal_self(signal.SIGINT)
        assert interrupts.received() is None
    finally:
        signal.signal(signal.SIGINT, previous)


def _trainer(fn: str, stage: str | None, step: int = 12):
    return SimpleNamespace(
        state=SimpleNamespace(
            fn=TrainerFn(fn), stage=RunningStage(stage) if stage is not None else None
        ),
        global_step=step,
        strategy=SimpleNamespace(launcher=None),
    )


def _message(trainer, run: Path, signum: int = signal.SIGTERM) -> str:
    cfg = OmegaConf.create({"paths": {"output_dir": str(run)}})
    with interrupts.catch_signals():
        if trainer is not None:
            interrupts._state.trainer = trainer
        return interruption_message(signum, cfg)


def test_the_message_says_where_a_fit_stopped_and_how_to_resume(tmp_path):
    assert _message(_trainer("fit", "train"), tmp_path) == (
        "interrupted by SIGTERM: stopped at step 12; no checkpoint was written yet"
    )
    (tmp_path / "checkpoints").mkdir()
    last = tmp_path / "checkpoints" / "last.ckpt"
    torch.save({"global_step": 10, "state_dict": {}}, last)
    assert _message(_trainer("fit", "validate"), tmp_path, signal.SIGINT) == (
        f"interrupted by SIGINT: stopped at step 12 (during validation); resume with "
        f"ckpt_path={last} (saved at step 10)"
    )


def test_the_message_of_an_evaluation_or_a_setup(tmp_path):
    assert _message(_trainer("test", "test"), tmp_path) == (
        "interrupted by SIGTERM: stopped during testing"
    )
    assert _message(None, tmp_path) == "interrupted by SIGTERM while setting up the run"


def test_the_message_of_an_export_says_a_rerun_continues(tmp_path):
    assert _message(_trainer("predict", "predict"), tmp_path) == (
        "interrupted by SIGTERM: stopped during prediction; rerun the same command to continue "
        "(images already written are skipped)"
    )


class _Launcher:
    """Lightning's subprocess launcher as far as interrupts uses it: ``kill(signum)``."""

    def __init__(self) -> None:
        self.signals: list[int] = []

    def kill(self, signum: int) -> None:
        self.signals.append(signum)


def test_an_error_ends_the_launched_ranks_with_sigkill():
    launcher = _Launcher()
    trainer = SimpleNamespace(strategy=SimpleNamespace(launcher=launcher), callbacks=[])
    with interrupts.catch_signals():
        interrupts.end_launched_ranks()  # no trainer yet: nothing launched, nothing to end
        interrupts.watch(trainer)
        interrupts.end_launched_ranks()
    assert launcher.signals == [signal.SIGKILL]


def test_usr2_writes_the_stack_of_each_process_and_the_run_goes_on(tmp_path):
    script = tmp_path / "waits.py"
    script.write_text(
        "import os, sys, time\n"
        "from pixelwise import interrupts\n"
        "interrupts.dump_stacks_on_request()\n"
        "def wait(): os.write(1, f'{os.getpid()}\\n'.encode()); [time.sleep(0.05) for _ in iter(lambda: os.path.exists(sys.argv[1]), True)]\n"
        "def waiting_in_the_parent(): wait()\n"
        "def waiting_in_the_worker(): wait()\n"
        "pid = os.fork()\n"  # as a DataLoader worker is forked, after the registration
        "waiting_in_the_worker() if pid == 0 else waiting_in_the_parent()\n"
        "print('went on', flush=True)\n"
        "os._exit(0) if pid == 0 else os.waitpid(pid, 0)\n"
    )
    go_on = tmp_path / "go_on"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(go_on)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(2):  # one at a time: their stacks would interleave on the shared stderr
            os.kill(int(proc.stdout.readline()), interrupts.STACK_DUMP_SIGNAL)
            time.sleep(1)
    finally:
        go_on.touch()  # both go on, and end, whatever happened above
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert out.count("went on") == 2
    assert "in waiting_in_the_parent" in err and "in waiting_in_the_worker" in err, err
