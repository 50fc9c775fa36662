"""Resumable partial writes: a download streamed into ``content/ingest/<lease>@pull-<hex>``.

A :class:`ResumableWriter` is a :class:`ctrpy.remote.sink.BlobSink` for one expected blob:
it hashes while it writes, refuses bytes past the expected size, and on :meth:`commit`
checks size and digest, fsyncs and renames the file into ``blobs/``.  Its file is named
after the writer's lease, so a collection keeps it while that lease lives.  When the
process dies (kill -9, a cut the retries could not mend), the file stays; a later writer
of the same digest *adopts* it -- renames it to its own lease's name, re-hashes what it
holds, and the download resumes from there with ``Range``.  A file whose lease is alive
belongs to a running writer and is never touched; the next collection removes the ones
nobody adopted.

A digest mismatch, or more bytes than expected, deletes the file: those bytes can never
become the blob (ctr 1.6 keeps them, and every later pull fails the same way).
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from pathlib import Path

from ctrpy.content.blobs import BlobStore, publish
from ctrpy.errors import DigestMismatch, SizeMismatch, StoreError
from ctrpy.metadata.db import loads_map
from ctrpy.metadata.leases import Held, Lease
from ctrpy.oci import digest as _digest
from ctrpy.streams import CHUNK

PARTIAL_MARK = "pull-"  # <lease id>@pull-<hex>


class Cancelled(Exception):
    """The operation the download belongs to gave up (another blob failed)."""


def partial_name(lease: Held, dgst: str) -> str:
    return f"{lease.tag}{PARTIAL_MARK}{_digest.hex_of(dgst)}"


def _lease_alive(lease: Held, lease_id: str) -> bool:
    """Is the lease ``lease_id`` (of any namespace) still alive?  Gone means dead."""
    rows = lease.store.db.query("SELECT id, labels, owner FROM leases WHERE id = ?", (lease_id,))
    return any(Lease(r["id"], loads_map(r["labels"]), owner=r["owner"]).alive() for r in rows)


class ResumableWriter:
    """A partial write of the blob ``expected`` (``size`` bytes) under ``lease``.

    The file is created at the first byte (a download that fails before any leaves
    nothing); :attr:`offset` is how many bytes it holds (adopted ones included)."""

    def __init__(
        self,
        blobs: BlobStore,
        expected: str,
        size: int,
        lease: Held,
        cancelled: Callable[[], bool] = lambda: False,
    ) -> None:
        self.blobs = blobs
        self.expected = _digest.validate(expected)
        self.size = size
        self.lease = lease
        self.cancelled = cancelled
        self.path = blobs.ingest_dir / partial_name(lease, self.expected)
        self.hash = hashlib.sha256()
        self.offset = 0
        self.adopted = 0  # bytes found in another (dead) writer's partial file
        self._fd: int | None = None
        self._lock = threading.Lock()
        lease.content(self.expected)  # held before anything looks at the blob
        self._adopt()

    # -- resuming -------------------------------------------------------------------------
    def _adopt(self) -> None:
        """Take over a dead writer's partial file of the same blob, if there is one."""
        ingest = self.blobs.ingest_dir
        if not ingest.is_dir():
            return
        suffix = f"@{PARTIAL_MARK}{_digest.hex_of(self.expected)}"
        for p in sorted(ingest.iterdir()):
            if not p.name.endswith(suffix) or p == self.path:
                continue
            owner = p.name[: -len(suffix)]
            if _lease_alive(self.lease, owner):
                continue  # a running pull's download: not ours to take
            try:
                os.rename(p, self.path)  # atomic: of two adopters, one wins
            except FileNotFoundError:
                continue
            except OSError as e:
                raise StoreError(f"cannot resume the partial download {p.name}: {e.strerror}") from e
            self._open()
            self._rehash()
            self.adopted = self.offset
            return

    def _rehash(self) -> None:
        assert self._fd is not None
        h = hashlib.sha256()
        n = 0
        with open(self.path, "rb") as f:
            while n <= self.size and (chunk := f.read(CHUNK)):
                h.update(chunk)
                n += len(chunk)
        if n > self.size:  # more than the blob: it cannot be a prefix of it
            self.restart()
            return
        self.hash, self.offset = h, n
        os.lseek(self._fd, n, os.SEEK_SET)

    def _open(self) -> None:
        if self._fd is not None:
            return
        if self.blobs.before_write is not None:
            self.blobs.before_write()
        try:
            self.blobs.ingest_dir.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as e:
            raise StoreError(f"cannot write to content store {self.blobs.root}: {e.strerror}") from e

    # -- the sink -------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        if self.cancelled():
            raise Cancelled(self.expected)
        if self.offset + len(data) > self.size:
            raise SizeMismatch(self.size, None, f"blob {self.expected}")
        with self._lock:
            self._open()
            assert self._fd is not None
            view = memoryview(data)
            try:
                while view:
                    view = view[os.write(self._fd, view):]
            except OSError as e:
                raise StoreError(f"cannot write to content store: {e.strerror}") from e
            self.hash.update(data)
            self.offset += len(data)

    def restart(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.ftruncate(self._fd, 0)
                os.lseek(self._fd, 0, os.SEEK_SET)
            self.hash = hashlib.sha256()
            self.offset = 0

    # -- the end --------------------------------------------------------------------------
    def commit(self) -> None:
        """Check size and digest, fsync and rename into place.  A mismatch deletes the
        partial file (and raises SizeMismatch / DigestMismatch)."""
        try:
            if self.offset != self.size:
                raise SizeMismatch(self.size, self.offset, f"blob {self.expected}")
            actual = "sha256:" + self.hash.hexdigest()
            if actual != self.expected:
                raise DigestMismatch(self.expected, actual, text=(
                    f"blob {self.expected}: the bytes downloaded have digest {actual}"))
        except BaseException:
            self.discard()
            raise
        self._open()  # an empty blob has no first byte
        assert self._fd is not None
        fd, self._fd = self._fd, None
        publish(fd, self.path, self.blobs.path(self.expected), self.expected)

    def close(self) -> None:
        """Stop writing and keep the partial file (a later writer may resume it)."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def discard(self) -> None:
        """Stop writing and delete the partial file."""
        self.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    @property
    def exists(self) -> bool:
        return Path(self.path).exists()
