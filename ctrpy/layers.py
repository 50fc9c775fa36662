"""Layer blobs: an uncompressed layer tar in, a stored (compressed) layer blob out.

``images convert``, ``snapshots diff`` and ``images import --rootfs`` all turn an
uncompressed tar into a layer blob: the tar is hashed on its way (its diffID) and
compressed into a blob writer.  :func:`write_layer` runs the two halves on two threads
joined by a pipe -- reading, decompressing or walking a tree on one core, compressing and
hashing the result on the other -- so one layer keeps both cores of a small machine busy.

:func:`reuse_compressed` is the other way to a compressed layer: a blob already stored
and labelled ``containerd.io/uncompressed=<diffID>`` is reused, once its bytes have been
checked (a label is anyone's to set, in their own namespace).
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import BinaryIO, Protocol, cast

import zstandard

from ctrpy.archive.compression import (
    GZIP_LEVELS,
    Compression,
    compress_stream,
    open_decompressed,
    sniff,
)
from ctrpy.content.blobs import BlobStore
from ctrpy.errors import CtrpyError, DigestMismatch, InvalidArgument
from ctrpy.metadata.leases import Held
from ctrpy.oci import mediatypes
from ctrpy.streams import CHUNK, HashingReader

__all__ = [
    "LayerBlob",
    "Producer",
    "Writable",
    "check_level",
    "compression_of",
    "layer_media_type",
    "reuse_compressed",
    "uncompressed_digest",
    "write_layer",
]

_OCI_LAYERS = {
    Compression.NONE: mediatypes.OCI_LAYER,
    Compression.GZIP: mediatypes.OCI_LAYER_GZIP,
    Compression.ZSTD: mediatypes.OCI_LAYER_ZSTD,
}
_DOCKER_LAYERS = {
    Compression.NONE: mediatypes.DOCKER_LAYER,
    Compression.GZIP: mediatypes.DOCKER_LAYER_GZIP,
    Compression.ZSTD: mediatypes.DOCKER_LAYER_ZSTD,
}


def layer_media_type(compression: Compression, *, docker: bool = False) -> str:
    """The media type of a (distributable) layer of this compression."""
    return (_DOCKER_LAYERS if docker else _OCI_LAYERS)[compression]


def compression_of(media_type: str) -> Compression | None:
    """What a layer media type says its bytes are; None for one ctrpy cannot write
    (``+encrypted``, ``+bzip2``, a non-distributable layer)."""
    for table in (_OCI_LAYERS, _DOCKER_LAYERS):
        for kind, name in table.items():
            if name == media_type:
                return kind
    return None


def check_level(compression: Compression, level: int | None) -> None:
    """Refuse a compression level the compressor would refuse, before any work starts."""
    if level is None:
        return
    if compression is Compression.GZIP and level not in GZIP_LEVELS:
        raise InvalidArgument(f"gzip level {level} is out of range ({GZIP_LEVELS.start}-{GZIP_LEVELS.stop - 1})")
    if compression is Compression.ZSTD and not 1 <= level <= zstandard.MAX_COMPRESSION_LEVEL:
        raise InvalidArgument(f"zstd level {level} is out of range (1-{zstandard.MAX_COMPRESSION_LEVEL})")
    if compression is Compression.NONE:
        raise InvalidArgument(f"compression level {level} needs a compression (gzip or zstd)")


@dataclass(frozen=True)
class LayerBlob:
    """A stored layer blob."""

    digest: str
    size: int
    diff_id: str
    compression: Compression
    new: bool  # False when the store had these bytes already

    def media_type(self, *, docker: bool = False) -> str:
        return layer_media_type(self.compression, docker=docker)


class Writable(Protocol):
    def write(self, data: bytes, /) -> int: ...


Producer = Callable[[Writable], None]


class _Hashing:
    """Forwards writes to ``out``, hashing them (the diffID of what a producer writes)."""

    def __init__(self, out: BinaryIO):
        self.out = out
        self.hash = hashlib.sha256()

    def write(self, data: bytes, /) -> int:
        self.hash.update(data)
        self.out.write(data)
        return len(data)

    @property
    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()


def write_layer(
    blobs: BlobStore,
    produce: Producer,
    compression: Compression,
    *,
    level: int | None = None,
    lease: Held | None = None,
    expected_diff_id: str | None = None,
) -> LayerBlob:
    """Store what ``produce(out)`` writes (an uncompressed layer tar) as a layer blob of
    ``compression``; returns the blob and the diffID of the tar.

    ``produce`` runs on a thread of its own and writes into a pipe; this thread compresses
    from the pipe into a blob writer held by ``lease``.  An error of either side is raised
    here (the producer's first: a consumer that stops makes the producer's writes fail).
    With ``expected_diff_id``, a tar hashing to anything else is a DigestMismatch and
    nothing is stored."""
    check_level(compression, level)
    rfd, wfd = os.pipe()
    failed: list[BaseException] = []
    hashed: list[str] = []

    def run() -> None:
        try:
            with open(wfd, "wb", buffering=CHUNK) as pipe:
                hashing = _Hashing(pipe)
                produce(hashing)
            hashed.append(hashing.digest)
        except BaseException as e:  # handed to the caller's thread
            failed.append(e)

    worker = threading.Thread(target=run, name="ctrpy-layer", daemon=True)
    uncompressed = compression is Compression.NONE
    started = False
    try:
        with open(rfd, "rb", buffering=CHUNK) as pipe, blobs.writer(
            expected_diff_id if uncompressed else None, None, lease
        ) as out:
            worker.start()
            started = True
            try:
                compress_stream(pipe, out, compression, level=level)
            finally:
                pipe.close()  # a producer still writing gets EPIPE and ends
                worker.join()
            if failed:
                raise failed[0]
            diff_id = hashed[0]
            if expected_diff_id is not None and diff_id != expected_diff_id:
                raise DigestMismatch(expected_diff_id, diff_id, "the uncompressed layer")
            dgst, size = out.commit()
            return LayerBlob(dgst, size, diff_id, compression, not out.existed)
    finally:
        if not started:
            os.close(wfd)


def uncompressed_digest(f: BinaryIO) -> str:
    """sha256 of the decompressed bytes of a (gzip, zstd or plain) stream."""
    _kind, raw = open_decompressed(f)
    h = hashlib.sha256()
    while chunk := raw.read(CHUNK):
        h.update(chunk)
    return "sha256:" + h.hexdigest()


def reuse_compressed(
    blobs: BlobStore,
    candidates: Iterable[str],
    diff_id: str,
    kinds: Iterable[Compression],
) -> LayerBlob | None:
    """The first of ``candidates`` (stored blobs labelled with ``diff_id``) that is of one
    of ``kinds`` and really is that layer: its bytes hash to its name and decompress to
    ``diff_id``.  None when no candidate is."""
    wanted = set(kinds)
    for dgst in candidates:
        try:
            with blobs.open(dgst) as f:
                kind = sniff(f.read(6))
            if kind not in wanted or kind is Compression.NONE:
                continue
            with blobs.open(dgst) as f:
                hashing = HashingReader(f)
                actual = uncompressed_digest(cast(BinaryIO, hashing))
                hashing.drain()
        except (CtrpyError, OSError):
            continue
        if actual == diff_id and hashing.digest == dgst:
            return LayerBlob(dgst, hashing.size, diff_id, kind, False)
    return None

