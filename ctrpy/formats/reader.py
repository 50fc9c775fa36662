"""One forward pass over an image archive: every regular file goes into the content store.

``read_archive`` knows no format.  Files under ``blobs/sha256/`` are verified against their
names; small metadata files (``*.json``, ``oci-layout``, ``repositories``, ``VERSION``) are kept
in memory (capped at 20 MiB); every other file is stored as a blob under the digest of its
bytes.  Links are recorded and resolved afterwards, so a docker layer that is a symlink to
another member works even when the target comes later.  Member names are only ever used as
dictionary keys, never as paths: ``../x`` and ``/x`` cannot write anywhere.
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO

from ctrpy.archive.compression import open_decompressed
from ctrpy.archive.tar import LNK, REG, SYM, TarHeader, iter_tar
from ctrpy.content.blobs import MAX_JSON, BlobStore
from ctrpy.content.store import parse_json
from ctrpy.errors import CtrpyError, InvalidArchive, shorten
from ctrpy.formats.base import ImportContext
from ctrpy.oci import digest
from ctrpy.progress import ArchiveRead, BlobStored, Warn
from ctrpy.streams import CHUNK, RawReader

_BLOB_NAME = re.compile(r"blobs/([a-z0-9+._-]+)/([a-zA-Z0-9=_-]+)")
_METADATA_BASENAMES = frozenset({"oci-layout", "repositories", "VERSION", "json"})
_LINK_DEPTH = 16
_KEEP_ONE = 1 << 20  # metadata files up to this size are kept in memory...
_KEEP_ALL = 32 << 20  # ... up to this much in all; the rest go to the store like any file
TAR_ERROR = "not a valid tar archive, or truncated"


def clean_name(name: str) -> str:
    """A member name made relative and lexically cleaned; '' for the archive root."""
    n = posixpath.normpath("/" + name.replace("\\", "/")).lstrip("/")
    return "" if n == "." else n


@dataclass
class ArchiveContents:
    blobs: dict[str, str] = field(default_factory=dict)  # member name -> digest
    sizes: dict[str, int] = field(default_factory=dict)  # digest -> size
    metadata: dict[str, bytes] = field(default_factory=dict)  # member name -> bytes
    links: dict[str, str] = field(default_factory=dict)  # member name -> target member name
    names: list[str] = field(default_factory=list)  # every member name, in order
    unsupported: dict[str, str] = field(default_factory=dict)  # member name -> sha512 digest (skipped)
    store: BlobStore | None = None  # where metadata too large to keep in memory went
    kept: int = 0  # bytes of metadata held in memory

    def has(self, name: str) -> bool:
        return self._follow(name) is not None

    def _follow(self, name: str) -> str | None:
        for _ in range(_LINK_DEPTH):
            if name in self.blobs or name in self.metadata:
                return name
            if name not in self.links:
                return None
            name = self.links[name]
        raise InvalidArchive(f"archive member {shorten(name)!r}: too many levels of links")

    def metadata_bytes(self, name: str) -> bytes | None:
        """A metadata file's bytes (from memory, or read back from the store, 20 MiB cap)."""
        real = self._follow(clean_name(name))
        if real is None:
            return None
        if real in self.metadata:
            return self.metadata[real]
        dgst = self.blobs[real]
        if self.store is None:
            raise InvalidArchive(f"{name} is larger than the {MAX_JSON} byte JSON limit")
        return self.store.read_small(dgst, what=name)

    def blob_digest(self, name: str) -> str | None:
        real = self._follow(clean_name(name))
        return None if real is None else self.blobs.get(real)

    def json(self, name: str) -> object:
        data = self.metadata_bytes(name)
        if data is None:
            raise InvalidArchive(f"archive has no {name}")
        return parse_json(data, name)


class _Counter(RawReader):
    """Counts bytes read from the raw input and reports progress now and then."""

    def __init__(self, f: BinaryIO, ctx: ImportContext, total: int | None):
        super().__init__()
        self.f = f
        self.ctx = ctx
        self.total = total
        self.done = 0
        self._next = 0

    def read(self, n: int | None = -1) -> bytes:
        data: bytes = self.f.read(-1 if n is None else n)
        self.done += len(data)
        if self.done >= self._next or not data:
            self._next = self.done + (8 << 20)
            self.ctx.progress(ArchiveRead(self.done, self.total))
        return data


def _input_size(stream: BinaryIO) -> int | None:
    try:
        st = os.fstat(stream.fileno())
    except (OSError, AttributeError, ValueError):
        return None
    return st.st_size if stat.S_ISREG(st.st_mode) else None


def _is_metadata_name(name: str) -> bool:
    base = posixpath.basename(name)
    return base.endswith(".json") or base in _METADATA_BASENAMES


def read_archive(stream: BinaryIO, ctx: ImportContext) -> ArchiveContents:
    """Read the whole archive once; every blob is in the store when this returns.

    Errors keep their class: one in the tar structure itself says the archive is not a
    valid tar (or is truncated); one in a member (a digest mismatch, a cut blob) names the
    member."""
    counter = _Counter(stream, ctx, _input_size(stream))
    out = ArchiveContents(store=ctx.blobs)
    try:
        _comp, raw = open_decompressed(counter)  # type: ignore[arg-type]
        members = iter_tar(raw)
        while True:
            try:
                header, read = next(members)
            except StopIteration:
                break
            try:
                _read_member(header, _MemberReader(read), out, ctx)
            except CtrpyError as e:
                raise e.within(f"archive member {shorten(os.fsdecode(header.name))!r}") from None
    except InvalidArchive as e:
        if not e.context:  # raised by the tar reader or the decompressor, not in a member
            e.within(TAR_ERROR)
        raise
    if not out.names:
        raise InvalidArchive("archive is empty")
    counter.ctx.progress(ArchiveRead(counter.done, counter.total))
    return out


class _MemberReader:
    """``read(n)`` over one member's data, for the blob writer."""

    def __init__(self, read: Callable[[int], bytes]):
        self._read = read

    def read(self, n: int = -1) -> bytes:
        return self._read(CHUNK if n < 0 else n)


def _read_member(h: TarHeader, f: _MemberReader, out: ArchiveContents, ctx: ImportContext) -> None:
    raw_name = os.fsdecode(h.name)
    name = clean_name(raw_name)
    out.names.append(name)
    if h.type == SYM:
        out.links[name] = clean_name(posixpath.join(posixpath.dirname(name), os.fsdecode(h.linkname)))
        return
    if h.type == LNK:
        out.links[name] = clean_name(os.fsdecode(h.linkname))
        return
    if h.type != REG:
        return
    if h.sparse is not None:
        raise InvalidArchive("sparse files are not image archive members")
    match = _BLOB_NAME.fullmatch(name)
    if match:
        dgst = f"{match.group(1)}:{match.group(2)}"
        if digest.is_valid(dgst):
            _store_blob(f, name, dgst, h.size, out, ctx)
        elif digest.is_well_formed(dgst):
            out.unsupported[name] = dgst  # needed by an image: that image's import says so
            ctx.progress(Warn(f"archive member {shorten(raw_name)!r}: skipped: digest algorithm "
                              f"{match.group(1)} is not supported (ctrpy stores sha256 content)"))
        else:
            raise InvalidArchive("not a valid blob name (want blobs/sha256/<64 lowercase hex>)")
    elif name.startswith("blobs/"):
        raise InvalidArchive("not a valid blob name (want blobs/sha256/<64 lowercase hex>)")
    elif _is_metadata_name(name) and h.size <= _KEEP_ONE and out.kept + h.size <= _KEEP_ALL:
        data = f.read(h.size)
        if len(data) != h.size:
            raise InvalidArchive("truncated")
        out.metadata[name] = data
        out.kept += h.size
    else:
        _store_blob(f, name, None, h.size, out, ctx)


def _store_blob(
    f: _MemberReader, name: str, expected: str | None, size: int, out: ArchiveContents, ctx: ImportContext
) -> None:
    with ctx.writer(expected, size) as w:
        w.copy_from(f, size)
        if w.size != size:
            raise InvalidArchive("truncated")
        dgst, n = w.commit()
    out.blobs[name] = dgst
    out.sizes[dgst] = n
    ctx.progress(BlobStored(dgst, n, name, new=not w.existed))
