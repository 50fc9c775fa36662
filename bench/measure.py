"""Running one timed command: wall time, peak RSS and CPU time of its process tree.

A command is started by GNU ``time`` (or a tiny ``python -I -S`` launcher when GNU time is
missing), which reports the child's ``wait4()`` rusage. That rusage covers the command and
every descendant it waited for: ``ru_maxrss`` is then the largest peak of any single process
of the tree (not the sum of processes that ran at the same time: ctrpy runs none), and
``ru_utime + ru_stime`` is the CPU time of the whole tree.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.peers import mounts_under, run

MiB = 1 << 20
RSS_GOAL = 100 * MiB
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class CaseFailed(Exception):
    """A command of a case failed: the case is reported as failed, the run goes on."""


@dataclass
class Sample:
    seconds: float
    peak_rss: int  # bytes: the largest peak RSS of the measured commands
    cpu_seconds: float | None = None  # user + system time of the commands' process trees
    daemon_peak_rss: int | None = None  # containerd's VmHWM during the step, when a daemon served it
    daemon_cpu_seconds: float | None = None  # CPU time containerd spent during the step

    @property
    def total_cpu_seconds(self) -> float | None:
        if self.cpu_seconds is None:
            return None
        return self.cpu_seconds + (self.daemon_cpu_seconds or 0.0)


_LAUNCHER = """\
import os, sys
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(f"{usage.ru_maxrss} {usage.ru_utime} {usage.ru_stime}")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def _gnu_time() -> str | None:
    """GNU time, when installed (``-f '%M %U %S'``: the child's peak RSS in KiB, CPU s)."""
    path = shutil.which("time") or ("/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None)
    if path is None:
        return None
    proc = subprocess.run([path, "-f", "%M", "-o", os.devnull, "true"], capture_output=True, check=False)
    return path if proc.returncode == 0 else None


GNU_TIME = _gnu_time()
RSS_METHOD = "GNU time -f %M" if GNU_TIME else "python -I -S fork/exec/wait4 launcher (floor ~5 MiB)"


def _with_rss_probe(cmd: list[str], out: Path) -> list[str]:
    """``cmd`` started by a small process that writes its rusage to ``out``.

    Measuring the child directly (``wait4`` or ``RUSAGE_CHILDREN`` here) is wrong: Linux
    carries the forking process's RSS into the child's ``ru_maxrss`` at ``exec``, so every
    child would weigh at least as much as this benchmark process.
    """
    if GNU_TIME:
        return [GNU_TIME, "-f", "%M %U %S", "-o", str(out), *cmd]
    return [sys.executable, "-I", "-S", "-c", _LAUNCHER, str(out), *cmd]


def _read_probe(path: Path) -> tuple[int, float]:
    """(peak RSS bytes, CPU seconds) from the probe's last line (GNU time may write a
    "Command exited with non-zero status" line first)."""
    last = path.read_text().strip().splitlines()[-1].split()
    return int(last[0]) * 1024, float(last[1]) + float(last[2])


Command = Sequence[str | os.PathLike[str]]


def measure(cmds: Sequence[Command], *, env: dict[str, str] | None = None) -> Sample:
    """Run ``cmds`` one after the other; wall and CPU time summed, peak RSS the largest.

    Dirty pages are written back first (untimed), so no run pays for the previous one's I/O.
    """
    os.sync()
    total = 0.0
    cpu = 0.0
    peak = 0
    for cmd in cmds:
        args = [os.fspath(c) for c in cmd]
        with tempfile.TemporaryDirectory(prefix="bench-rss-") as tmp, tempfile.TemporaryFile() as err:
            rss_file = Path(tmp) / "rss"
            started = time.perf_counter()
            rc = subprocess.run(
                _with_rss_probe(args, rss_file),
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, env=env, check=False,
            ).returncode
            total += time.perf_counter() - started
            if rc != 0:
                err.seek(0)
                tail = err.read().decode(errors="replace").strip()[-2000:]
                raise CaseFailed(f"`{' '.join(args)}` exited {rc}: {tail}")
            rss, used = _read_probe(rss_file)
            peak = max(peak, rss)
            cpu += used
    return Sample(total, peak, cpu)


def _proc_status(pid: int, key: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def proc_cpu_seconds(pid: int) -> float | None:
    """utime + stime of a running process (all its threads), from /proc/PID/stat."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def reset_peak_rss(pid: int) -> None:
    """Reset VmHWM (``echo 5 > /proc/PID/clear_refs``), so it measures from now on."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        pass


def measure_with_daemon(pid: int, cmds: Sequence[Command]) -> Sample:
    """:func:`measure`, plus the daemon ``pid``'s peak RSS and CPU time over the commands."""
    reset_peak_rss(pid)
    cpu_before = proc_cpu_seconds(pid)
    sample = measure(cmds)
    cpu_after = proc_cpu_seconds(pid)
    sample.daemon_peak_rss = _proc_status(pid, "VmHWM")
    if cpu_before is not None and cpu_after is not None:
        sample.daemon_cpu_seconds = cpu_after - cpu_before
    return sample


def remove_tree(path: Path) -> None:
    for point in mounts_under(path):
        run("umount", "-l", point, check=False)
    shutil.rmtree(path, ignore_errors=True)


def warm(path: Path) -> None:
    """Read a file once so every run finds it in the page cache."""
    with path.open("rb") as f:
        while f.read(8 * MiB):
            pass


def warm_dir(path: Path) -> None:
    for p in sorted(path.rglob("*")):
        if p.is_file() and not p.is_symlink():
            warm(p)
