"""The bytes of the content store: ``content/blobs/sha256/<hex>``, written once.

Writers hash while writing, fsync, check the expected size and digest, and rename into
place.  An existing blob is never rewritten: its bytes are verified and dropped (dedup).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, Protocol

from ctrpy.errors import ContentNotFound, DigestMismatch, InvalidArchive, SizeMismatch, StoreError
from ctrpy.metadata.leases import Held
from ctrpy.oci import digest as _digest
from ctrpy.streams import CHUNK

MAX_JSON = 20 << 20  # containerd's cap on manifests/indexes/configs (CVE-2023-25153)


class Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


def publish(fd: int, partial: str | Path, target: Path, dgst: str) -> bool:
    """Make a verified partial write the blob ``target``: read-only, fsynced, closed, then
    renamed into place (the durability rule), or dropped when the blob is there already
    (existing blobs are never rewritten).  Returns whether it was there already."""
    try:
        os.fchmod(fd, 0o444)
        os.fsync(fd)
    except OSError as e:
        os.close(fd)
        raise StoreError(f"cannot commit blob {dgst}: {e.strerror}") from e
    try:
        os.close(fd)
        if target.exists():
            os.unlink(partial)
            return True
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(partial, target)
        return False
    except OSError as e:
        raise StoreError(f"cannot commit blob {dgst}: {e.strerror}") from e


class BlobWriter:
    """Write one blob.  Use as a context manager; call :meth:`commit` to keep it.

    When ``expected`` names a blob that is already present, the bytes are only hashed
    (to verify them) and never written to disk.
    """

    def __init__(
        self,
        blobs: BlobStore,
        expected: str | None = None,
        expected_size: int | None = None,
        lease: Held | None = None,
    ):
        self.blobs = blobs
        self.expected = _digest.validate(expected) if expected else None
        self.expected_size = expected_size
        self.lease = lease
        self.hash = hashlib.sha256()
        self.size = 0
        self._fd: int | None = None
        self._tmp: str | None = None
        if self.expected is not None and lease is not None:
            lease.content(self.expected)  # held before we look: a collection now keeps it
        self.verify_only = self.expected is not None and blobs.exists(self.expected)
        self.existed = self.verify_only  # after commit: the store had these bytes already
        if not self.verify_only:
            if blobs.before_write is not None:
                blobs.before_write()
            ingest = blobs.ingest_dir
            try:
                ingest.mkdir(parents=True, exist_ok=True)
                prefix = lease.tag if lease is not None else "ingest-"
                self._fd, self._tmp = tempfile.mkstemp(dir=ingest, prefix=prefix)
            except OSError as e:
                raise StoreError(f"cannot write to content store {blobs.root}: {e.strerror}") from e

    def write(self, data: bytes | memoryview) -> None:
        n = len(data)
        if self.expected_size is not None and self.size + n > self.expected_size:
            raise SizeMismatch(self.expected_size, None)
        self.hash.update(data)
        self.size += n
        if self._fd is not None:
            view = memoryview(data)
            try:
                while view:
                    written = os.write(self._fd, view)
                    view = view[written:]
            except OSError as e:
                raise StoreError(f"cannot write to content store: {e.strerror}") from e

    def copy_from(self, stream: Readable, limit: int | None = None) -> None:
        """Copy ``stream`` (up to ``limit`` bytes, else to EOF) into the blob."""
        remaining = limit
        while remaining is None or remaining > 0:
            want = CHUNK if remaining is None else min(CHUNK, remaining)
            chunk = stream.read(want)
            if not chunk:
                break
            self.write(chunk)
            if remaining is not None:
                remaining -= len(chunk)

    @property
    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()

    def commit(self) -> tuple[str, int]:
        """Verify, fsync, and move the blob into place; returns (digest, size)."""
        dgst = self.digest
        if self.expected_size is not None and self.size != self.expected_size:
            raise SizeMismatch(self.expected_size, self.size)
        if self.expected is not None and dgst != self.expected:
            raise DigestMismatch(self.expected, dgst)
        if self.expected is None and self.lease is not None:
            self.lease.content(dgst)  # before the rename makes it visible
        if self._fd is not None and self._tmp is not None:
            fd, self._fd = self._fd, None
            self.existed = publish(fd, self._tmp, self.blobs.path(dgst), dgst)
            self._tmp = None
        return dgst, self.size

    def abort(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._tmp is not None:
            try:
                os.unlink(self._tmp)
            except OSError:
                pass
            self._tmp = None

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.abort()  # after commit() there is nothing left to abort


class BlobStore:
    """Namespace-free bytes addressed by digest."""

    def __init__(self, root: Path, before_write: Callable[[], None] | None = None):
        self.root = root
        self.before_write = before_write  # e.g. "create the store root, or fail clearly"
        self.blob_dir = root / "blobs" / "sha256"
        self.ingest_dir = root / "ingest"

    def path(self, dgst: str) -> Path:
        return self.blob_dir / _digest.hex_of(dgst)

    def exists(self, dgst: str) -> bool:
        return self.path(dgst).is_file()

    def size(self, dgst: str) -> int:
        try:
            return self.path(dgst).stat().st_size
        except FileNotFoundError:
            raise ContentNotFound(dgst) from None

    def open(self, dgst: str) -> BinaryIO:
        try:
            return open(self.path(dgst), "rb")
        except FileNotFoundError:
            raise ContentNotFound(dgst) from None

    def writer(
        self, expected: str | None = None, expected_size: int | None = None, lease: Held | None = None
    ) -> BlobWriter:
        return BlobWriter(self, expected, expected_size, lease)

    def read_small(self, dgst: str, limit: int = MAX_JSON, what: str | None = None) -> bytes:
        """The whole blob, verified against its digest; refuses one over ``limit`` bytes.

        The one place small blobs (JSON) are read: size-capped, and hashed before use."""
        label = what or f"content {dgst}"
        size = self.size(dgst)
        if size > limit:
            raise InvalidArchive(f"{label} is {size} bytes, larger than the {limit} byte limit")
        with self.open(dgst) as f:
            data = f.read(limit + 1)
        actual = _digest.of_bytes(data)
        if actual != dgst:
            raise DigestMismatch(dgst, actual, text=f"{label} in the store is corrupt (its bytes hash to {actual})")
        return data

    def rehash(self, dgst: str) -> str | None:
        """The digest a stored blob's bytes really have (None when the file is gone)."""
        h = hashlib.sha256()
        try:
            with open(self.path(dgst), "rb") as f:
                while chunk := f.read(CHUNK):
                    h.update(chunk)
        except FileNotFoundError:
            return None
        return "sha256:" + h.hexdigest()

    def delete(self, dgst: str) -> bool:
        try:
            self.path(dgst).unlink()
            return True
        except FileNotFoundError:
            return False

    def digests(self) -> list[str]:
        if not self.blob_dir.is_dir():
            return []
        return sorted("sha256:" + p.name for p in self.blob_dir.iterdir() if _digest.is_valid("sha256:" + p.name))
