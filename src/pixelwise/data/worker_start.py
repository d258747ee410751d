"""How DataLoader workers start: not forked from the training process where CPython's fork can hang.

CPython up to 3.11 can deadlock a forked child (python/cpython#112275): ``PyOS_AfterFork_Child``
takes the runtime's HEAD_LOCK before it re-initialises it, so a child forked while another thread
of the parent holds that lock waits for ever. Seen here: 2 stuck starts in about 300 two-rank
starts of the interrupt tests, and 1 in 53 starts of a reproducer that forks 4 workers per rank and
loader; gdb on that one's worker: ``_PyThreadState_DeleteExcept`` inside ``PyOS_AfterFork_Child``,
no CPU time, and its rank waiting for its batch. The fix is not in this machine's 3.11.7. A
forkserver forks the workers from a server that is started by fork + exec and has one thread.
"""

from __future__ import annotations

import multiprocessing
import sys
from typing import Any

__all__ = ["START_METHODS", "resolve_start_method", "worker_context"]

START_METHODS = tuple(multiprocessing.get_all_start_methods())

# Imported once by the forkserver, so that a worker forked from it does not import them again
# (measured: 21.5 s -> 14.6 s for the README's quick run with two workers per loader).
_PRELOAD = ["__main__", "torch", "numpy", "cv2", "albumentations"]


def resolve_start_method(requested: str | None) -> str | None:
    """``requested`` if given; else "forkserver" on CPython < 3.12 where the platform has it, else
    None (the platform's default: fork on Linux)."""
    if requested is not None:
        if requested not in START_METHODS:
            raise ValueError(
                f"data.multiprocessing_context={requested!r}: expected one of {list(START_METHODS)} "
                "or null (forkserver on Python < 3.12, else the platform's default)"
            )
        return requested
    if sys.version_info < (3, 12) and "forkserver" in START_METHODS:
        return "forkserver"
    return None


def worker_context(method: str | None, dataset: Any) -> Any:
    """The DataLoader's ``multiprocessing_context``; a forkserver preloads the data's modules."""
    if method != "forkserver":
        return method
    context = multiprocessing.get_context("forkserver")
    # No effect once this process's server runs: the first loader's list stays.
    context.set_forkserver_preload([*_PRELOAD, type(dataset).__module__])
    return context
