"""Ctrl-C and SIGTERM end a run, on every DDP rank and its DataLoader workers, in a few seconds.

:func:`catch_signals` (around a whole command, in :mod:`pixelwise.cli`) records the first SIGINT or
SIGTERM, passes SIGTERM on to the DDP ranks this process started and stops the process: SIGINT as
``KeyboardInterrupt`` (Lightning's own shutdown path: teardown, then the other ranks are killed),
SIGTERM outside a fit as :class:`Interrupted`. A second signal ends the process at once.

During ``trainer.fit/validate/test/predict`` Lightning's signal connector handles SIGTERM: it sets
``trainer.received_sigterm``, the loops raise ``SIGTERMException`` at the next batch boundary (the
prediction loop through a callback :func:`watch` adds) and the ranks agree on it through the
broadcast at the start of each training batch. Its handler also
broadcasts from *inside* the signal handler, an extra collective that lands at a different point
on each rank and hangs the job for good (Lightning 2.6: ``kill <rank 0>`` left both ranks and their
workers alive); :func:`watch` gives the trainer a connector without that broadcast.

An error in the process that launched the ranks ends them too (:func:`end_launched_ranks`):
Lightning (2.6) kills them on Ctrl-C only, and after any other error they waited, orphaned, in the
rendezvous or their next collective until torch's timeout (30 min). ``kill -USR2`` prints where
every process of a run is (:func:`dump_stacks_on_request`), for a run that seems stuck.

What a run prints on the way out (a worker killed by the same SIGTERM, a rank whose peer left a
collective) is a consequence of the signal: :func:`received` tells the command to report the
interruption in one line instead.
"""

from __future__ import annotations

import faulthandler
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import lightning as L
from lightning.pytorch.trainer.connectors.signal_connector import (
    _SignalConnector as _LightningSignalConnector,
)
from lightning.pytorch.utilities.exceptions import SIGTERMException

__all__ = [
    "Interrupted",
    "catch_signals",
    "dump_stacks_on_request",
    "end_launched_ranks",
    "received",
    "stop_reporting_worker_deaths",
    "watch",
    "watched_trainer",
]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# Not SIGUSR1: Lightning's SLURM environment requeues the job on it.
STACK_DUMP_SIGNAL: signal.Signals | None = getattr(signal, "SIGUSR2", None)


class Interrupted(KeyboardInterrupt):
    """Raised by the handler of SIGTERM outside a trainer run (Lightning treats it as Ctrl-C)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class _State:
    signum: int | None = None  # the first SIGINT/SIGTERM this process received
    pid: int | None = None  # the process that installed the handlers (not a forked worker)
    trainer: L.Trainer | None = None  # the trainer of the run, to forward SIGTERM to its ranks


_state = _State()


def received() -> int | None:
    """The first SIGINT or SIGTERM received inside :func:`catch_signals`, else None."""
    return _state.signum


def watched_trainer() -> L.Trainer | None:
    """The trainer :func:`watch` was last given inside :func:`catch_signals`."""
    return _state.trainer


def stop_reporting_worker_deaths() -> None:
    """No more "DataLoader worker (pid N) is killed by signal" errors in this process.

    PyTorch's SIGCHLD handler raises that error wherever the process is when a worker dies; once
    the run is ending because of a signal that also reached the workers, it would only interrupt
    the report of the interruption.
    """
    if hasattr(signal, "SIGCHLD"):
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)


def _forward_to_ranks(signum: int) -> None:
    """SIGTERM to the DDP ranks this process launched (Lightning's subprocess launcher)."""
    launcher = getattr(getattr(_state.trainer, "strategy", None), "launcher", None)
    if launcher is not None and hasattr(launcher, "kill"):
        launcher.kill(signum)


def end_launched_ranks() -> None:
    """SIGKILL the DDP ranks this process launched: it is ending on an error.

    As Lightning does on Ctrl-C: a rank blocked in a collective would run a SIGTERM handler only
    once the collective returns. Their DataLoader workers follow, as they do whenever their rank
    dies (PyTorch's worker watchdog).
    """
    _forward_to_ranks(getattr(signal, "SIGKILL", signal.SIGTERM))


def dump_stacks_on_request() -> None:
    """``kill -USR2 <pid>`` (or ``-<pgid>``) writes every thread's Python stack to stderr; the run goes on.

    Registered before any rank or DataLoader worker starts, so each of them (forked or launched,
    which registers it again) reports where it is: a collective, a queue, the rendezvous.
    """
    if STACK_DUMP_SIGNAL is not None:
        faulthandler.register(STACK_DUMP_SIGNAL, all_threads=True)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    """The process-level handler of SIGINT and SIGTERM (outside Lightning's, or under it)."""
    if os.getpid() != _state.pid:  # a forked DataLoader worker: Python's default behaviour
        raise KeyboardInterrupt
    if _state.signum is not None:  # a second signal: stop now, the first one is being handled
        os._exit(128 + signum)
    _state.signum = signum
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    _forward_to_ranks(signum)
    raise Interrupted(signum)


class _SignalConnector(_LightningSignalConnector):
    """Lightning's signal connector without the collective inside its SIGTERM handler."""

    def register_signal_handlers(self) -> None:
        # Lightning calls the handler it finds after its own; ours would raise mid-step instead of
        # letting the loops stop at a batch boundary, so it is set aside for the trainer's run.
        ours = signal.getsignal(signal.SIGTERM) is _on_signal
        if ours:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
        super().register_signal_handlers()
        if ours:
            self._original_handlers[signal.SIGTERM] = _on_signal  # teardown puts it back

    def _sigterm_notifier_fn(self, signum: Any, _: FrameType | None) -> None:
        if _state.pid is not None and os.getpid() != _state.pid:
            return
        if self.received_sigterm or _state.signum is not None:
            os._exit(128 + int(signum))  # a second signal: stop now
        _state.signum = int(signum)
        launcher = self.trainer.strategy.launcher
        if launcher is not None:
            launcher.kill(signum)  # the other ranks stop at their next batch boundary too
        self.received_sigterm = True


class _StopPredictionOnSigterm(L.Callback):
    """Lightning's prediction loop never looks at ``received_sigterm`` (2.6): stop at a batch boundary.

    Without it a SIGTERM during ``trainer.predict`` (``task.run.mode=export``) was recorded and the
    export ran on to the end; stopping after a batch keeps every written file whole.
    """

    def on_predict_batch_end(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        if trainer.received_sigterm:
            raise SIGTERMException


def watch(trainer: L.Trainer) -> None:
    """Give ``trainer`` the signal connector of this module and forward signals to its ranks."""
    trainer._signal_connector = _SignalConnector(trainer)
    trainer.callbacks.append(_StopPredictionOnSigterm())
    _state.trainer = trainer


@contextmanager
def catch_signals() -> Iterator[None]:
    """Handle SIGINT and SIGTERM as described in the module docstring while the block runs."""
    previous = {s: signal.getsignal(s) for s in _SIGNALS}
    _state.signum, _state.pid, _state.trainer = None, os.getpid(), None
    for s in _SIGNALS:
        if previous[s] is not signal.SIG_IGN:  # a background job's ignored SIGINT stays ignored
            signal.signal(s, _on_signal)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)
