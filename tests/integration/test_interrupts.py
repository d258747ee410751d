"""Ctrl-C and SIGTERM end a training run, every DDP rank and DataLoader worker, quietly and fast.

Each run starts train.py in its own process group (as a shell starts a job), waits until
checkpoints/last.ckpt shows training steps have run, and signals the group (Ctrl-C, ``kill -TERM
-PGID``, a cluster's SIGTERM to the job) or rank 0 alone (``kill PID``). Before pixelwise handled
the signals, SIGTERM printed one traceback per killed worker (286 lines on stderr for a 2-rank run
with 2 workers each) and ``kill <rank 0>`` left all ten processes running for good.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from pixelwise import interrupts
from tests.integration.conftest import REPO, env

# A run far longer than the test (so training is under way when the signal comes), that
# validates and writes checkpoints/last.ckpt every 5 steps, with 2 DataLoader workers per rank.
LONG_RUN = [
    "data.train.length=100000",
    "data.val.length=4",
    "data.test.length=4",
    "data.train.size=[32,48]",
    "data.batch_size=2",
    "data.eval_batch_size=2",
    "data.num_workers=2",
    "model.base_channels=4",
    "model.depth=2",
    "trainer.max_epochs=1",
    "trainer.val_check_interval=5",
    "trainer.num_sanity_val_steps=0",
    "logger=csv",
]
# How long every process of the group may take to end after the signal.
EXIT_SECONDS = 20
MESSAGE = re.compile(
    r"^interrupted by (SIGINT|SIGTERM): stopped at step (\d+)(?: \(during validation\))?; "
    r"resume with ckpt_path=(\S+last\.ckpt) \(saved at step (\d+)\)$"
)


def _alive(pgid: int) -> list[str]:
    """``pid stat`` of the group's processes that are not zombies."""
    out = subprocess.run(
        ["ps", "-o", "pid=,stat=", "-g", str(pgid)], capture_output=True, text=True
    ).stdout
    return [
        line.strip() for line in out.splitlines() if line.strip() and "Z" not in line.split()[1]
    ]


def _stacks(pgid: int, stderr: Path) -> str:
    """The group's processes, and the Python stack each writes on ``kill -USR2``, one at a time."""
    table = subprocess.run(
        ["ps", "-o", "pid,ppid,stat,wchan:24,etime,time", "-g", str(pgid)],
        capture_output=True,
        text=True,
    ).stdout
    report = [table]
    for pid in [int(line.split()[0]) for line in table.splitlines()[1:]]:
        before = stderr.stat().st_size
        os.kill(pid, interrupts.STACK_DUMP_SIGNAL)
        time.sleep(1)
        with stderr.open() as text:
            text.seek(before)
            # The head: faulthandler writes the most recent call first, and a stuck process
            # is told by its innermost frames (the tail is the shared Hydra/Lightning entry).
            report.append(f"--- pid {pid}\n{text.read()[:8000]}")
    return "\n".join(report)


def _sigint_as_in_a_terminal() -> None:
    """In the child before exec: SIGINT at its default, as a foreground job in a terminal has it.

    A suite started as a background job of a non-interactive shell inherits an ignored SIGINT,
    which Python (and so train.py, by design) then keeps ignored: Ctrl-C could not be tested.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


# A run reaches its first checkpoint in about 10 s here; one that has not after this long is stuck.
START_SECONDS = 120


def _start(tmp_path: Path, args: list[str]) -> tuple[subprocess.Popen, Path, Path] | None:
    """Start train.py; (process, run dir, stderr) once checkpoints/last.ckpt exists, None if stuck.

    A start that is stuck is not what these tests are about: it is reported as a warning with
    each process's stack (``kill -USR2``) and the caller starts again. The stuck starts seen so
    far (about 1 in 150) were forked DataLoader workers hung by cpython#112275; workers now start
    from a forkserver on Python < 3.12 (pixelwise.data.worker_start).
    """
    tmp_path.mkdir()
    run_dir = tmp_path / "run"
    stdout, stderr = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with stdout.open("w") as out, stderr.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, str(REPO / "train.py"), *LONG_RUN, *args, f"hydra.run.dir={run_dir}"],
            cwd=tmp_path,
            env=env(),
            stdout=out,
            stderr=err,
            start_new_session=True,  # its own process group, as a shell's job
            preexec_fn=_sigint_as_in_a_terminal,
        )
    deadline = time.monotonic() + START_SECONDS
    while not (run_dir / "checkpoints" / "last.ckpt").is_file():
        if proc.poll() is not None or time.monotonic() > deadline:
            stacks = _stacks(proc.pid, stderr) if proc.poll() is None else stderr.read_text()
            if _alive(proc.pid):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            assert proc.returncode == -signal.SIGKILL, (
                f"train.py exited {proc.returncode}: {stacks}"
            )
            warnings.warn(
                f"train.py {' '.join(args)}: no checkpoint after {START_SECONDS} s; "
                f"where each process was:\n{stacks}",
                stacklevel=2,
            )
            return None
        time.sleep(0.2)
    return proc, run_dir, stderr


def interrupt_run(tmp_path: Path, args: list[str], signum: int, whole_group: bool):
    """Start train.py, signal it once training steps ran; (returncode, stderr, seconds to exit, run dir)."""
    started = _start(tmp_path / "first", args) or _start(tmp_path / "again", args)
    assert started is not None, f"two starts of train.py {' '.join(args)} were stuck (see warnings)"
    proc, run_dir, stderr = started
    pgid = proc.pid
    try:
        time.sleep(2)  # training goes on after the validation that wrote it
        processes = len(_alive(pgid))
        if whole_group:
            os.killpg(pgid, signum)
        else:
            os.kill(proc.pid, signum)
        sent = time.monotonic()
        while _alive(pgid) and time.monotonic() - sent < 60:
            time.sleep(0.1)
        seconds = time.monotonic() - sent
        left = _alive(pgid)
        assert not left, f"{len(left)} of {processes} processes alive 60 s after the signal: {left}"
        return proc.wait(timeout=10), stderr.read_text(), seconds, run_dir, processes
    finally:
        if _alive(pgid):
            os.killpg(pgid, signal.SIGKILL)
        proc.wait(timeout=30)


def check_quiet_exit(tmp_path: Path, args: list[str], signum: int, whole_group: bool, ranks: int):
    code, stderr, seconds, run_dir, processes = interrupt_run(tmp_path, args, signum, whole_group)
    # Each rank and its workers (2 training, 2 validation) were running.
    assert processes >= ranks * 3, processes
    assert seconds < EXIT_SECONDS, f"the processes took {seconds:.1f} s to end"
    assert code == 128 + signum
    assert "Traceback" not in stderr and "Error" not in stderr, stderr[-3000:]
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr[-3000:]
    match = MESSAGE.match(lines[0])
    assert match, lines[0]
    assert match[1] == signal.Signals(signum).name
    stopped, saved = int(match[2]), int(match[4])
    assert Path(match[3]) == run_dir / "checkpoints" / "last.ckpt"
    assert saved % 5 == 0 and 5 <= saved <= stopped
    assert lines[0] in (run_dir / "train.log").read_text()


def test_ctrl_c_ends_a_single_process_run_in_one_line(tmp_path):
    check_quiet_exit(tmp_path, ["trainer.devices=1"], signal.SIGINT, True, ranks=1)


@pytest.mark.slow
def test_sigterm_ends_a_single_process_run_and_its_workers_in_one_line(tmp_path):
    # Its DataLoader workers die of the same SIGTERM: once a traceback each.
    check_quiet_exit(tmp_path, ["trainer.devices=1"], signal.SIGTERM, True, ranks=1)


@pytest.mark.slow
@pytest.mark.parametrize(
    "signum, whole_group",
    [(signal.SIGINT, True), (signal.SIGTERM, True), (signal.SIGTERM, False)],
    ids=["ctrl-c", "sigterm-group", "sigterm-rank0"],
)
def test_ddp_run_ends_every_rank_and_worker_in_one_line(tmp_path, signum, whole_group):
    check_quiet_exit(tmp_path, ["trainer=ddp_cpu", "trainer.devices=2"], signum, whole_group, 2)


@pytest.mark.slow
def test_sigterm_stops_an_export_after_a_batch_and_a_rerun_continues(tmp_path):
    """Lightning's prediction loop ignores ``received_sigterm``: the export ran on to the end."""
    import numpy as np
    from PIL import Image

    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(60):
        Image.fromarray(rng.integers(0, 256, (48, 64), dtype=np.uint8)).save(
            photos / f"{i:02d}.png"
        )
    run_dir = tmp_path / "export"
    labels = run_dir / "pseudo_labels"
    args = [
        sys.executable,
        str(REPO / "train.py"),
        "task=homographic_adaptation",
        "task.run.mode=export",
        "task.num_homographies=40",
        "data=images",
        f"data.root={photos}",
        "data.size=[48,64]",
        "data.eval_batch_size=1",
        "data.num_workers=0",
        f"hydra.run.dir={run_dir}",
    ]
    err_file = tmp_path / "stderr.txt"
    with err_file.open("w") as err:
        proc = subprocess.Popen(
            args,
            cwd=tmp_path,
            env=env(),
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
            preexec_fn=_sigint_as_in_a_terminal,
        )
    try:
        deadline = time.monotonic() + 300
        while len(list(labels.rglob("*.npz"))) < 2:
            assert proc.poll() is None, f"export exited {proc.returncode}: {err_file.read_text()}"
            assert time.monotonic() < deadline, "no pseudo-labels after 300 s"
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=EXIT_SECONDS)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    assert code == 128 + signal.SIGTERM
    assert err_file.read_text().strip() == (
        "interrupted by SIGTERM: stopped during prediction; rerun the same command to continue "
        "(images already written are skipped)"
    )
    written = sorted(labels.rglob("*.npz"))
    assert 2 <= len(written) < 60
    for file in written:  # stopped between batches: every file is whole
        np.load(file)["keypoints"]
    rerun = subprocess.run(
        args, cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=600
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"export: {60 - len(written)} written" in rerun.stdout, rerun.stdout[-600:]
    assert len(list(labels.rglob("*.npz"))) == 60


@pytest.mark.slow
def test_an_error_in_rank_0_ends_the_ranks_it_launched(tmp_path):
    """MASTER_PORT is taken: rank 0 fails to listen; rank 1 used to wait, orphaned, for 30 min."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        stderr = tmp_path / "stderr.txt"
        run = [
            *LONG_RUN,
            "trainer=ddp_cpu",
            "trainer.devices=2",
            f"hydra.run.dir={tmp_path / 'run'}",
        ]
        with stderr.open("w") as err:
            proc = subprocess.Popen(
                [sys.executable, str(REPO / "train.py"), *run],
                cwd=tmp_path,
                env={**env(), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)},
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,
            )
        try:
            code = proc.wait(timeout=120)
            deadline = time.monotonic() + EXIT_SECONDS
            while _alive(proc.pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            left = _alive(proc.pid)
        finally:
            if _alive(proc.pid):
                os.killpg(proc.pid, signal.SIGKILL)
    assert not left, f"{left} still running {EXIT_SECONDS} s after rank 0 failed"
    assert code == 2, stderr.read_text()[-3000:]
    assert (
        f"error: DDP: rank 0 could not listen on MASTER_PORT={port} (MASTER_ADDR=127.0.0.1): "
        "the port is already in use" in stderr.read_text()
    ), stderr.read_text()[-3000:]
