"""Bytes in motion, once for the whole library: the chunk size, the read-through adapter
every wrapper builds on, and the one JSON serializer.

Nothing here knows about stores, archives or images.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Callable
from typing import Any, BinaryIO

CHUNK = 1 << 20
"""How much is read or written at a time when streaming (1 MiB)."""


class RawReader(io.RawIOBase):
    """A forward-only reader that subclasses define by ``read(n)``; ``readinto`` (what
    ``io.BufferedReader`` and hashlib-style consumers call) comes from it."""

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:  # pragma: no cover - subclasses define it
        raise NotImplementedError

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        n = len(data)
        view[:n] = data
        return n


class TapReader(RawReader):
    """Passes reads of ``stream`` through, handing every byte that goes by to ``tap``
    (a hash's ``update``, another file's ``write``) and counting them in ``size``."""

    def __init__(self, stream: BinaryIO, tap: Callable[[bytes], object]) -> None:
        super().__init__()
        self._stream = stream
        self._tap = tap
        self.size = 0

    def read(self, size: int | None = -1) -> bytes:
        data = self._stream.read(-1 if size is None else size) or b""
        if data:
            self._tap(data)
            self.size += len(data)
        return data


class HashingReader(TapReader):
    """Passes reads through, hashing and counting every byte that goes by."""

    def __init__(self, stream: BinaryIO, algo: str = "sha256") -> None:
        self.algo = algo
        self._hash = hashlib.new(algo)
        super().__init__(stream, self._hash.update)

    def drain(self) -> int:
        """Read (and hash) everything left; return how many bytes that was."""
        before = self.size
        while self.read(CHUNK):
            pass
        return self.size - before

    @property
    def digest(self) -> str:
        """``<algo>:<hex>`` of everything read so far."""
        return f"{self.algo}:{self._hash.hexdigest()}"


def read_exactly_or_eof(stream: Any, n: int) -> bytes:
    """Read ``n`` bytes, fewer only at the end of the stream (pipes return short reads)."""
    parts: list[bytes] = []
    got = 0
    while got < n:
        chunk = stream.read(n - got)
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


# Go's encoding/json (what containerd, docker and skopeo write) escapes these beyond what
# Python does with ensure_ascii=False, and writes \b and \f as \u0008 and \u000c.
_GO_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
    "\\b": "\\u0008",
    "\\f": "\\u000c",
    "\\\\": "\\\\",
}
_GO_ESCAPE_RE = re.compile(r"\\\\|\\b|\\f|[<>&\u2028\u2029]")


def json_bytes(obj: Any, *, sort_keys: bool = False) -> bytes:
    """Compact JSON as Go's ``json.Marshal`` writes it: UTF-8, no spaces, keys in the order
    given (or sorted), HTML characters escaped.  The same object always gives the same
    bytes, and the manifests ctrpy writes are byte-identical to containerd's."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, sort_keys=sort_keys)
    return _GO_ESCAPE_RE.sub(lambda m: _GO_ESCAPES[m.group(0)], text).encode()
