"""Small stand-ins: a fake clock, a file-backed blob sink (what the content store will be)."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

from ctrpy.errors import DigestMismatch, SizeMismatch


class FakeClock:
    """``sleep`` only records the wait and moves the clock on: retries cost no time."""

    def __init__(self, start: float = 1_000_000.0, wall: float = 1_700_000_000.0) -> None:
        self._mono = start
        self._wall = wall
        self._lock = threading.Lock()
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        with self._lock:
            return self._mono

    def time(self) -> float:
        with self._lock:
            return self._wall

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self._mono += max(0.0, seconds)
            self._wall += max(0.0, seconds)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._mono += seconds
            self._wall += seconds


class FileSink:
    """A blob download into ``path``: the protocol the content store implements.

    ``write`` refuses bytes past ``expected_size`` (SizeMismatch); ``restart`` truncates;
    :meth:`commit` is the owner's check (size, then digest) once the fetcher is done."""

    def __init__(self, path: Path, expected_size: int | None = None, *, offset_from_file: bool = False) -> None:
        self.path = Path(path)
        self.expected_size = expected_size
        self.restarts = 0
        self.writes = 0
        if offset_from_file and self.path.exists():
            self.offset = self.path.stat().st_size
        else:
            self.path.write_bytes(b"")
            self.offset = 0

    def write(self, data: bytes) -> None:
        if self.expected_size is not None and self.offset + len(data) > self.expected_size:
            raise SizeMismatch(self.expected_size, None, self.path.name)
        with self.path.open("ab") as f:
            f.write(data)
        self.offset += len(data)
        self.writes += 1

    def restart(self) -> None:
        with self.path.open("wb"):
            pass
        self.offset = 0
        self.restarts += 1

    def data(self) -> bytes:
        return self.path.read_bytes()

    def commit(self, digest: str) -> bytes:
        data = self.data()
        if self.expected_size is not None and len(data) != self.expected_size:
            raise SizeMismatch(self.expected_size, len(data))
        got = "sha256:" + hashlib.sha256(data).hexdigest()
        if got != digest:
            raise DigestMismatch(digest, got)
        return data


def fake_helper_script(directory: Path, name: str, *, username: str, secret: str, server: str | None = None,
                       log: Path | None = None, fail: str | None = None) -> Path:
    """``directory/docker-credential-<name>``: a credential helper answering ``get``.

    It prints ``{"Username", "Secret"}`` when stdin is ``server`` (any server when None),
    else the "credentials not found" message and exit 1; ``fail`` makes it fail with that
    text; ``log`` gets each server URL it was asked about."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"docker-credential-{name}"
    import json as _json

    answer = _json.dumps({"ServerURL": server or "", "Username": username, "Secret": secret})
    lines = [
        "#!/bin/sh",
        '[ "$1" = get ] || { echo "unsupported: $1" >&2; exit 2; }',
        "read -r server",
    ]
    if log is not None:
        lines.append(f'printf "%s\\n" "$server" >> {_shell_quote(str(log))}')
    if fail is not None:
        lines.append(f"echo {_shell_quote(fail)} >&2; exit 3")
    if server is not None:
        lines.append(f'[ "$server" = {_shell_quote(server)} ] || {{ echo "credentials not found in native keychain"; exit 1; }}')
    lines.append(f"printf '%s\\n' {_shell_quote(answer)}")
    path.write_text("\n".join(lines) + "\n")
    os.chmod(path, 0o755)
    return path


def _shell_quote(s: str) -> str:
    return "'" + s.replace("'", "'\\''") + "'"
