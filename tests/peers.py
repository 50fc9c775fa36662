"""The real peers (containerd/ctr, skopeo, umoci, podman) and ctrpy itself, run as processes.

Used by the interop tests and by ``bench/``, so nothing here imports pytest. A failed command
raises :class:`CommandError`, whose message carries the command line and the tail of its
stderr.

``Containerd`` is a private daemon under a short temp dir (unix socket paths are limited to
108 bytes), with its own root, state, sockets and ``opt`` dir, the CRI plugin and the
snapshotters that cannot work here disabled::

    with Containerd() as cd:
        cd.ctr("images", "import", "--no-unpack", "--all-platforms", "img.tar")
        print(cd.ctr("images", "ls", "-q").stdout)
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "CommandError",
    "Containerd",
    "ContainerdStartError",
    "Ctr",
    "Ctrpy",
    "have",
    "in_ci",
    "log_excerpt",
    "mounts_under",
    "run",
    "short_tmpdir",
    "spawn_daemon",
    "stop_daemon",
    "tail_of",
]

_STDERR_TAIL = 4000
_SOCKET_LIMIT = 100  # sun_path is 108 bytes; leave room for the NUL and ".ttrpc"


def have(tool: str) -> bool:
    """Is ``tool`` on PATH?"""
    return shutil.which(tool) is not None


def in_ci() -> bool:
    """True under CI (``CI=true``): missing peers are failures there, not skips."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


class CommandError(subprocess.CalledProcessError):
    """A command exited non-zero; ``str()`` names the command and shows its stderr."""

    def __str__(self) -> str:
        err = self.stderr
        if isinstance(err, bytes):
            err = err.decode(errors="replace")
        err = (err or "").strip()
        if len(err) > _STDERR_TAIL:
            err = "..." + err[-_STDERR_TAIL:]
        return f"`{_quote(self.cmd)}` exited {self.returncode}" + (f":\n{err}" if err else " (no stderr)")


def _quote(cmd: Sequence[str] | str) -> str:
    import shlex

    return cmd if isinstance(cmd, str) else shlex.join(str(c) for c in cmd)


def run(
    *cmd: str | os.PathLike[str],
    check: bool = True,
    input: bytes | str | None = None,
    text: bool = True,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = 600,
) -> subprocess.CompletedProcess[Any]:
    """Run ``cmd`` with stdout and stderr captured (text unless ``text=False``).

    ``check`` (the default) raises :class:`CommandError` on a non-zero exit.
    """
    args = [os.fspath(c) for c in cmd]
    if isinstance(input, str) and not text:
        input = input.encode()
    proc = subprocess.run(
        args,
        input=input,
        capture_output=True,
        text=text,
        cwd=cwd,
        env=dict(env) if env is not None else None,
        timeout=timeout,
        check=False,
    )
    if check and proc.returncode != 0:
        raise CommandError(proc.returncode, args, proc.stdout, proc.stderr)
    return proc


def short_tmpdir(prefix: str) -> Path:
    """A new temp dir whose path is short enough for unix sockets inside it."""
    base = tempfile.gettempdir()
    if len(base) > 40:
        base = "/tmp"
    return Path(tempfile.mkdtemp(prefix=prefix, dir=base))


# ---------------------------------------------------------------------------------------------
# daemons: containerd here, docker-registry in tests/registry/distribution.py


def spawn_daemon(args: Sequence[str], log_path: Path) -> subprocess.Popen[bytes]:
    """ARGS in a session of their own (so that :func:`stop_daemon` can end the whole process
    group), stdin closed, stdout and stderr appended to LOG_PATH."""
    with log_path.open("ab") as log:
        return subprocess.Popen(
            list(args), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop_daemon(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group of PROC (SIGKILL if it is not gone within 10 s), then SIGKILL
    whatever else is left in the group; PROC is waited for."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=10)
            break
        except subprocess.TimeoutExpired:
            continue
    try:  # the leader is gone; anything else left in its group goes too
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def tail_of(log_path: Path, lines: int = 30) -> str:
    """The last LINES lines of a log ("" when it cannot be read)."""
    try:
        return "\n".join(log_path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def log_excerpt(log_path: Path) -> str:
    """The tail of a daemon's log under a ``--- NAME (tail) ---`` line, to end an error
    message with ("" when the log is empty)."""
    tail = tail_of(log_path)
    return f"\n--- {log_path.name} (tail) ---\n{tail}" if tail else ""


# ---------------------------------------------------------------------------------------------
# mounts


def _unescape_mountinfo(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as ``\\ooo`` (octal)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mounts_under(path: str | os.PathLike[str], mountinfo: str = "/proc/self/mountinfo") -> list[str]:
    """Mount points at or below ``path``, deepest first (the order to unmount them in)."""
    base = os.path.realpath(path)
    found: list[str] = []
    try:
        lines = Path(mountinfo).read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        fields = line.split(" ")
        if len(fields) < 5:
            continue
        point = _unescape_mountinfo(fields[4])
        if point == base or point.startswith(base.rstrip("/") + "/"):
            found.append(point)
    return sorted(found, key=lambda p: (p.count("/"), p), reverse=True)


def _unmount_all(path: Path) -> list[str]:
    """``umount -l`` everything under ``path``; returns what could not be unmounted."""
    failed = []
    for point in mounts_under(path):
        proc = run("umount", "-l", point, check=False)
        if proc.returncode != 0:
            failed.append(f"{point}: {proc.stderr.strip()}")
    return failed


# ---------------------------------------------------------------------------------------------
# containerd


class ContainerdStartError(RuntimeError):
    """The private containerd did not come up; the message ends with its log's tail."""


_DISABLED_PLUGINS = (
    "io.containerd.grpc.v1.cri",
    "io.containerd.snapshotter.v1.aufs",
    "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.devmapper",
    "io.containerd.snapshotter.v1.zfs",
)


def _toml_str(s: str | os.PathLike[str]) -> str:
    return '"' + os.fspath(s).replace("\\", "\\\\").replace('"', '\\"') + '"'


class Containerd:
    """A private ``containerd`` for one test session or benchmark repetition.

    ``start()`` (or ``with``) writes ``config.toml`` under a fresh short temp dir, starts
    ``containerd --config`` in its own process group with its output in ``containerd.log``,
    and waits until ``ctr version`` answers. ``stop()`` kills the group, unmounts anything
    left under the dir and removes it.
    """

    def __init__(
        self,
        *,
        namespace: str = "default",
        start_timeout: float = 30.0,
        binary: str = "containerd",
        ctr_binary: str = "ctr",
        data_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        """``data_dir``: put ``root`` and ``state`` in a fresh dir under it instead of next to
        the socket (benchmarks keep both stores on one filesystem this way)."""
        self.namespace = namespace
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self._data: Path | None = None
        self.start_timeout = start_timeout
        self.binary = binary
        self.ctr_binary = ctr_binary
        self.dir: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    # paths ----------------------------------------------------------------------------------
    def _path(self, name: str) -> Path:
        if self.dir is None:
            raise RuntimeError("containerd is not started")
        return self.dir / name

    @property
    def address(self) -> Path:
        return self._path("sock")

    @property
    def root(self) -> Path:
        return self._data / "root" if self._data is not None else self._path("root")

    @property
    def state(self) -> Path:
        return self._data / "state" if self._data is not None else self._path("state")

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError("containerd is not started")
        return self.proc.pid

    @property
    def log_path(self) -> Path:
        return self._path("containerd.log")

    @property
    def config_path(self) -> Path:
        return self._path("config.toml")

    def config_toml(self) -> str:
        disabled = ", ".join(_toml_str(p) for p in _DISABLED_PLUGINS)
        return "\n".join([
            "version = 2",
            f"root = {_toml_str(self.root)}",
            f"state = {_toml_str(self.state)}",
            f"disabled_plugins = [{disabled}]",
            "",
            "[grpc]",
            f"  address = {_toml_str(self.address)}",
            "",
            "[ttrpc]",
            f"  address = {_toml_str(self._path('ttrpc.sock'))}",
            "",
            "[debug]",
            f"  address = {_toml_str(self._path('debug.sock'))}",
            "",
            '[plugins."io.containerd.grpc.v1.cri"]',
            "  disable = true",
            "",
            # the opt plugin would otherwise create /opt/containerd on the host
            '[plugins."io.containerd.internal.v1.opt"]',
            f"  path = {_toml_str(self._path('opt'))}",
            "",
        ])

    # lifecycle ------------------------------------------------------------------------------
    def start(self) -> Containerd:
        if self.proc is not None:
            raise RuntimeError("containerd is already running")
        if not have(self.binary) or not have(self.ctr_binary):
            raise ContainerdStartError(f"{self.binary} or {self.ctr_binary} is not installed")
        self.dir = short_tmpdir("cd-")
        if self.data_dir is not None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self._data = Path(tempfile.mkdtemp(prefix="containerd-", dir=self.data_dir))
        if len(str(self.address)) + len(".ttrpc") > _SOCKET_LIMIT:
            raise ContainerdStartError(f"socket path {self.address} is too long for a unix socket")
        self.config_path.write_text(self.config_toml())
        try:
            self.proc = spawn_daemon([self.binary, "--config", str(self.config_path)], self.log_path)
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + self.start_timeout
        last = ""
        while True:
            if self.proc.poll() is not None:
                raise ContainerdStartError(
                    f"containerd exited with status {self.proc.returncode} while starting"
                    f"{log_excerpt(self.log_path)}"
                )
            if self.address.exists():
                proc = run(self.ctr_binary, "-a", str(self.address), "version", check=False, timeout=10)
                if proc.returncode == 0:
                    return
                last = proc.stderr.strip()
            if time.monotonic() > deadline:
                raise ContainerdStartError(
                    f"containerd did not answer on {self.address} within {self.start_timeout:g}s"
                    + (f" (ctr: {last})" if last else "")
                    + log_excerpt(self.log_path)
                )
            time.sleep(0.05)

    def log_tail(self, lines: int = 30) -> str:
        return "" if self.dir is None else tail_of(self.log_path, lines)

    def stop(self) -> None:
        """Kill the daemon's process group, unmount what it left, remove its dir."""
        if self.proc is not None:
            stop_daemon(self.proc)
            self.proc = None
        for d in (self._data, self.dir):
            if d is None:
                continue
            failed = _unmount_all(d)
            if failed:
                print(f"peers: could not unmount: {'; '.join(failed)}", file=sys.stderr)
            else:
                shutil.rmtree(d, ignore_errors=True)
        self._data = None
        self.dir = None

    def __enter__(self) -> Containerd:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # clients ---------------------------------------------------------------------------------
    def ctr(
        self,
        *args: str | os.PathLike[str],
        check: bool = True,
        namespace: str | None = None,
        input: bytes | str | None = None,
        text: bool = True,
        timeout: float | None = 600,
    ) -> subprocess.CompletedProcess[Any]:
        """``ctr -a SOCK -n NS ARGS...``; raises :class:`CommandError` when ``check`` fails."""
        return run(
            self.ctr_binary,
            "-a",
            str(self.address),
            "-n",
            namespace or self.namespace,
            *args,
            check=check,
            input=input,
            text=text,
            timeout=timeout,
        )

    def in_namespace(self, namespace: str) -> Ctr:
        """A ``ctr`` bound to ``namespace`` of this daemon (isolates tests sharing one daemon)."""
        return Ctr(self, namespace)


@dataclass
class Ctr:
    """``ctr`` against one namespace of a :class:`Containerd`."""

    daemon: Containerd
    namespace: str

    def __call__(self, *args: str | os.PathLike[str], **kw: Any) -> subprocess.CompletedProcess[Any]:
        """``ctr`` in this namespace; ``check``, ``input``, ``text``, ``timeout`` as :func:`run`."""
        return self.daemon.ctr(*args, namespace=self.namespace, **kw)


# ---------------------------------------------------------------------------------------------
# ctrpy


def ctrpy_command() -> list[str]:
    """How to start ctrpy: the ``ctrpy`` script next to this Python, else ``python -m ctrpy``."""
    script = Path(sys.executable).parent / "ctrpy"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "ctrpy"]


@dataclass
class Ctrpy:
    """``ctrpy --root ROOT -n NAMESPACE ARGS...`` as a subprocess."""

    root: Path
    namespace: str = "default"

    def command(self, *args: str | os.PathLike[str]) -> list[str]:
        return [*ctrpy_command(), "--root", str(self.root), "-n", self.namespace, *(os.fspath(a) for a in args)]

    @staticmethod
    def env() -> dict[str, str]:
        """The environment without CTRPY_*/CONTAINERD_* settings that would leak in."""
        return {
            k: v for k, v in os.environ.items() if not k.startswith(("CTRPY_", "CONTAINERD_"))
        }

    def __call__(self, *args: str | os.PathLike[str], **kw: Any) -> subprocess.CompletedProcess[Any]:
        """``ctrpy --root ROOT -n NS ARGS``; ``check``, ``input``, ``text``, ``timeout`` as :func:`run`."""
        return run(*self.command(*args), env=self.env(), **kw)
