"""Where blob downloads go: the content store implements this (an ingest that can resume)."""

from __future__ import annotations

from collections.abc import Callable
from typing import BinaryIO, Protocol


class BlobSink(Protocol):
    """Receives one blob's bytes, in order.

    ``offset``: how many bytes it already holds; a download resumes from there with
    ``Range: bytes=offset-``.  ``write`` raises :class:`ctrpy.errors.SizeMismatch` when
    given bytes past the size it expects.  ``restart`` drops everything written (the
    registry ignored a ``Range`` and sends the blob from its first byte); ``offset`` is 0
    afterwards.  The sink's owner verifies the digest when the download ends: the
    fetcher hashes nothing.
    """

    offset: int

    def write(self, data: bytes) -> None: ...

    def restart(self) -> None: ...


ProgressCallback = Callable[[int], None]
"""Called with the number of bytes the sink holds after each write (it drops to 0 on a restart)."""


class Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


SourceOpener = Callable[[], "BinaryIO | Readable"]
"""Opens a fresh reader of a blob's bytes from its first byte (called again for a retry)."""
