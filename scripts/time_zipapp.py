"""How fast the single-file executable starts: ``make zipapp-bench`` prints the figures.

A benchmark, not a test (a shared machine's timings vary too much to assert):
the first run's unpacking, four processes started together on a fresh
``SHIV_ROOT``, then ``imagingdb --help`` many times once unpacked, as wall
time (median) and CPU time of the process (user + system), next to the bare
interpreter's own start-up. Run through the shebang (``python3`` found on
PATH, as a user runs it) and through the interpreter itself (no PATH lookup,
no wrapper such as pyenv's shim).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from build_zipapp import cached_build

RUNS = 15


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run of ``command``."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed: {process.stderr.read().decode()}")
    return wall, usage.ru_utime + usage.ru_stime


def report(label: str, samples: list[tuple[float, float]]) -> None:
    walls, cpus = [s[0] for s in samples], [s[1] for s in samples]
    print(f"{label:<44} wall median {statistics.median(walls):.3f} s (min {min(walls):.3f}), "
          f"CPU median {statistics.median(cpus):.3f} s (min {min(cpus):.3f}), n={len(samples)}")


def main() -> None:
    executable = Path(sys.argv[1]) if len(sys.argv) > 1 else cached_build()
    python3 = shutil.which("python3")
    real_python = subprocess.run([python3, "-c", "import sys; print(sys.executable)"],
                                 capture_output=True, text=True, check=True).stdout.strip()
    print(f"{executable} ({executable.stat().st_size / 1e6:.1f} MB); python3 = {python3} "
          f"-> {real_python}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="imagingdb-bench-") as tmp:
        env = {**os.environ, "SHIV_ROOT": str(Path(tmp, "root")),
               "IMAGINGDB_HOME": str(Path(tmp, "home"))}
        report("first run (unpacks), --version", [timed([str(executable), "--version"], env)])
        together = {**env, "SHIV_ROOT": str(Path(tmp, "together"))}
        started = time.perf_counter()
        processes = [subprocess.Popen([str(executable), "--version"], env=together,
                                      stdout=subprocess.DEVNULL) for _ in range(4)]
        codes = [process.wait() for process in processes]
        print(f"{'4 first runs started together':<44} all done in "
              f"{time.perf_counter() - started:.3f} s, exit codes {codes}")
        direct = [real_python, "-I", "-S", str(executable), "--help"]
        for label, command in (("--help, through the shebang", [str(executable), "--help"]),
                               ("--help, python3 -I -S imagingdb", direct),
                               ("bare interpreter: python3 -I -S -c pass",
                                [real_python, "-I", "-S", "-c", "pass"])):
            timed(command, env)  # warm: byte code written, files cached
            report(label, [timed(command, env) for _ in range(RUNS)])


if __name__ == "__main__":
    main()
