"""ctrpy as real processes: crash, interrupt and concurrency tests stop them at moments
they observe (a line on stdout, a file in the store), never after a sleep.  Every wait is
bounded and fails naming what it waited for.  (Re-exported by ``tests.helpers``.)"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.peers import Ctrpy


@dataclass(frozen=True)
class Finished:
    """A ctrpy process that ended: its arguments, exit code and output (text)."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def error_line(self) -> str:
        """The one ``ctrpy: error:`` line of a failure (asserting there is exactly one, and
        that it is a deliberate error, not an internal one)."""
        lines = [line for line in self.stderr.splitlines() if not line.startswith("ctrpy: warning: ")]
        assert len(lines) == 1 and lines[0].startswith("ctrpy: error: "), f"{self}: want one error line"
        assert "internal error" not in lines[0] and "Traceback" not in self.stderr, str(self)
        return lines[0]

    def __str__(self) -> str:
        return f"`ctrpy {' '.join(self.args)}` exited {self.returncode}; stdout {self.stdout!r}; stderr {self.stderr!r}"


class StdoutGate:
    """A stdout pipe with room for ``room`` more bytes: a process writing a line that does
    not fit blocks in write(2) right there (a pipe write of less than PIPE_BUF bytes is all
    or nothing), until :meth:`drain` reads the pipe. ctrpy's ``--progress plain`` lines
    thus stop it between two steps of its work (see ``Processes.start_gated``)."""

    F_SETPIPE_SZ, F_GETPIPE_SZ = 1031, 1032

    def __init__(self, room: int) -> None:
        self.read_end, self.write_end = os.pipe()
        fcntl.fcntl(self.write_end, self.F_SETPIPE_SZ, 4096)
        size = fcntl.fcntl(self.write_end, self.F_GETPIPE_SZ)
        self._filler = size - room
        os.write(self.write_end, b"#" * self._filler)
        self._reader: threading.Thread | None = None
        self.data = bytearray()  # what the process wrote, once drained with keep=True

    @staticmethod
    def until_unpacked(name: str, digest: str) -> int:
        """The room that stops ``ctrpy --progress plain images import|unpack`` of image
        ``name`` (manifest ``digest``) once every layer is committed: its ``unpacking NAME
        (DIGEST)...`` fits, the ``done`` after it does not (an import has not recorded
        its images yet)."""
        return len(f"unpacking {name} ({digest})...") + 2

    @staticmethod
    def blocked(proc: subprocess.Popen[bytes]) -> bool:
        """Is ``proc`` asleep in a pipe write?"""
        try:
            with open(f"/proc/{proc.pid}/wchan") as f:
                return "pipe_write" in f.read()
        except OSError:
            return False

    def drain(self, keep: bool = False) -> None:
        """Read the pipe to its end in the background, so the process can go on
        (``keep``: what the process wrote is kept in :attr:`data`, after :meth:`close`)."""
        if self._reader is not None:
            return

        def reader() -> None:
            skip = self._filler
            while chunk := os.read(self.read_end, 65536):
                if keep:
                    self.data += chunk[skip:]
                skip = max(0, skip - len(chunk))
            os.close(self.read_end)

        self._reader = threading.Thread(target=reader, daemon=True)
        self._reader.start()

    def close(self) -> None:
        self.drain()
        assert self._reader is not None
        self._reader.join(timeout=60)


class Processes:
    """``ctrpy --root ROOT ARGS`` as real processes (``tests.peers.Ctrpy``), started without
    waiting; :meth:`close` (the ``procs`` fixture's teardown) kills and reaps any still running."""

    def __init__(self, root: Path) -> None:
        self.ctrpy = Ctrpy(root)
        self.started: list[tuple[tuple[str, ...], subprocess.Popen[bytes]]] = []
        self.gates: list[StdoutGate] = []

    def start(
        self, *args: str, namespace: str = "default", root: Path | None = None, **popen: Any
    ) -> subprocess.Popen[bytes]:
        """``ctrpy --root ROOT -n NAMESPACE ARGS`` (another ``root`` if given); ``popen``:
        :class:`subprocess.Popen`'s keywords (stdout and stderr are pipes unless given)."""
        popen.setdefault("stdout", subprocess.PIPE)
        popen.setdefault("stderr", subprocess.PIPE)
        popen.setdefault("stdin", subprocess.DEVNULL)
        cmd = Ctrpy(root or self.ctrpy.root, namespace).command(*args)
        proc = subprocess.Popen(cmd, env=self.ctrpy.env(), **popen)
        self.started.append((args, proc))
        return proc

    def start_gated(self, room: int, *args: str, **kw: Any) -> tuple[subprocess.Popen[bytes], StdoutGate]:
        """Start with a :class:`StdoutGate` of ``room`` bytes for stdout."""
        gate = StdoutGate(room)
        self.gates.append(gate)
        try:
            proc = self.start(*args, stdout=gate.write_end, **kw)
        finally:
            os.close(gate.write_end)
        return proc, gate

    def args_of(self, proc: subprocess.Popen[bytes]) -> tuple[str, ...]:
        return next(a for a, p in self.started if p is proc)

    def wait(self, proc: subprocess.Popen[bytes], timeout: float = 300) -> Finished:
        """Wait (bounded) for ``proc`` to end; a process that does not is killed and fails the test."""
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"`ctrpy {' '.join(self.args_of(proc))}` still ran after {timeout}s: {err.decode()[-2000:]}")
        return Finished(self.args_of(proc), proc.returncode, (out or b"").decode(), (err or b"").decode())

    def run(self, *args: str, timeout: float = 300, **kw: Any) -> Finished:
        return self.wait(self.start(*args, **kw), timeout)

    def close(self) -> None:
        for _args, proc in self.started:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=60)
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
        for gate in self.gates:
            gate.close()


def wait_until(
    condition: Callable[[], object], what: str, proc: subprocess.Popen[bytes] | None = None, timeout: float = 120
) -> Any:
    """Poll ``condition`` until it returns something true (which is returned); fails the
    test naming ``what`` after ``timeout`` seconds, or when ``proc`` ends first."""
    deadline = time.monotonic() + timeout
    while True:
        found = condition()
        if found:
            return found
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the process exited {proc.returncode} before {what}")
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not after {timeout}s")
        time.sleep(0.01)


def killed_when_ready(code: str, ready: Path) -> str:
    """Run ``code`` in a Python process of its own; ``code`` writes what it has to say to
    the file named ``READY`` (set for it to ``ready``) and then blocks. Once that is
    written the process is killed -9; returns what it wrote."""
    proc = subprocess.Popen([sys.executable, "-c", f"READY = {str(ready)!r}\n{code}"])
    try:
        wait_until(lambda: ready.exists() and ready.read_text(), f"{ready} written", proc)
    finally:
        proc.kill()
        proc.wait(timeout=60)
    return ready.read_text()


@dataclass(frozen=True)
class Measured:
    """A finished child process: its exit code, its stderr, and its peak resident memory."""

    exit_code: int
    stderr: str
    peak_rss: int  # bytes


# A small launcher between the test process and the measured one.  A child's ru_maxrss keeps
# the high-water mark of the memory it had before exec, and a child forked straight from a
# pytest worker starts with the worker's whole resident set (hundreds of MiB late in a run).
# Forked from this launcher instead, it starts with the launcher's few MiB.
_LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as out:
    out.write(str(usage.ru_maxrss * 1024))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_measured(argv: list[str], env: Mapping[str, str], cwd: Path) -> Measured:
    """Run ``argv`` to its end and measure its own peak RSS (``wait4``'s rusage of that one
    process, forked from a small launcher so that the test process's memory does not count)."""
    peak = cwd / "measured.peak"
    with (cwd / "measured.stderr").open("w+b") as err:
        proc = subprocess.run([sys.executable, "-S", "-c", _LAUNCHER, str(peak), *argv], env=dict(env), cwd=cwd,
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, check=False)
        err.seek(0)
        return Measured(proc.returncode, err.read().decode(errors="replace"), int(peak.read_text()))


