"""`make bench`: run every benchmarks/bench_*.py and print their tables (pass --quick for short runs)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    args = sys.argv[1:]
    only = [a for a in args if not a.startswith("-")]
    flags = [a for a in args if a.startswith("-")]
    failed = []
    for script in sorted(HERE.glob("bench_*.py")):
        if only and not any(name in script.stem for name in only):
            continue
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, str(script), *flags], cwd=HERE, capture_output=True, text=True
        )
        print(proc.stdout.rstrip())
        if proc.returncode != 0:
            failed.append(script.name)
            print(f"FAILED {script.name}:\n{proc.stderr[-3000:]}")
        print(f"({script.name}: {time.perf_counter() - t0:.0f} s)\n")
    if failed:
        print("failed benchmarks: " + ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
