"""Build hook: the wheel carries BoundaryF's numba kernels already compiled (issue 15).

The kernels are ``numba.njit(cache=True)``; numba looks for a function's cache in the
``__pycache__`` beside its module, keyed by a hash of the source file, the numba version, the
Python version and the CPU. Compiling them here, into the build tree, puts the cache files in the
wheel, so the first ``BoundaryF.update`` after ``pip install`` loads them (< 1 s) instead of
compiling (~15 s). It needs numba and numpy only (pyproject.toml's build requirements): the
``pixelwise`` package is mapped onto the build tree without running its ``__init__`` files, which
import torch. Another CPU, numba or Python at run time finds no matching entry and compiles once,
as it would without this hook; so does an install into a read-only site-packages (numba then
caches per user).
"""

from __future__ import annotations

import os
import subprocess
import sys

from setuptools import setup
from setuptools.command.build_py import build_py

_COMPILE = """
import os, sys, types
root = sys.argv[1]
for name in ("pixelwise", "pixelwise.geometry", "pixelwise.metrics"):
    module = types.ModuleType(name)
    module.__path__ = [os.path.join(root, *name.split("."))]
    sys.modules[name] = module
from pixelwise.metrics.boundary_matching import compile_kernels
print(f"pixelwise: BoundaryF kernels compiled into the build in {compile_kernels():.0f} s")
"""


class BuildPyWithKernels(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install caches beside the sources (`make install` warms it)
        # NUMBA_CACHE_DIR would send the cache elsewhere; a disabled JIT would write nothing.
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("NUMBA_CACHE_DIR", "NUMBA_DISABLE_JIT", "PYTHONPATH")
        }
        proc = subprocess.run(
            [sys.executable, "-c", _COMPILE, os.path.abspath(self.build_lib)],
            env=env,
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            # Not fatal: the package works, its first BoundaryF call compiles instead.
            self.warn(
                "pixelwise: could not compile the BoundaryF kernels into the build; the first "
                f"BoundaryF call will compile them (~15 s).\n{proc.stderr[-2000:]}"
            )
        else:
            print(proc.stdout.strip())


setup(cmdclass={"build_py": BuildPyWithKernels})
