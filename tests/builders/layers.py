"""Layer tarballs built in code: tar entries, deterministic tar writing, compression.

Independent of ``ctrpy`` (stdlib + zstandard only): these builders are the oracle the tests
compare ctrpy against.

Tar output follows Go's ``archive/tar`` (what docker, containerd and buildkit use): USTAR
headers, PAX extended headers only when needed (or asked for), and an end-of-archive marker
of two zero blocks without padding to a 10 KiB record (``pad_to_record=True`` gives the
GNU/Python-style padding instead).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any, Literal, Protocol, TypedDict, Unpack, cast, runtime_checkable

import zstandard

__all__ = [
    "DEFAULT_MTIME",
    "Compression",
    "Entry",
    "EntryOptions",
    "EntryType",
    "HashingWriter",
    "Item",
    "Raw",
    "Tar",
    "TarFormat",
    "TarStream",
    "Writable",
    "blockdev",
    "chardev",
    "compress",
    "decompress",
    "detect_compression",
    "dir",
    "directory",
    "entry_header",
    "fifo",
    "file",
    "hardlink",
    "header_checksum",
    "layer_tar",
    "opaque",
    "pad",
    "pax_header",
    "pax_records",
    "raw_header",
    "read_tar",
    "sha256_digest",
    "symlink",
    "tar_files",
    "tar_names",
    "typed",
    "whiteout",
    "write_tar",
]

EntryType = Literal["file", "dir", "symlink", "hardlink", "char", "block", "fifo"]
Compression = Literal["none", "gzip", "zstd"]
TarFormat = Literal[0, 1, 2]  # tarfile.USTAR_FORMAT, GNU_FORMAT, PAX_FORMAT

DEFAULT_MTIME = 1_600_000_000
BLOCK = 512
RECORD = 20 * BLOCK
CHUNK = 1 << 20

_TAR_TYPES: dict[str, bytes] = {
    "file": tarfile.REGTYPE,
    "dir": tarfile.DIRTYPE,
    "symlink": tarfile.SYMTYPE,
    "hardlink": tarfile.LNKTYPE,
    "char": tarfile.CHRTYPE,
    "block": tarfile.BLKTYPE,
    "fifo": tarfile.FIFOTYPE,
}
_DEFAULT_MODES: dict[str, int] = {"dir": 0o755, "symlink": 0o777}

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


@runtime_checkable
class Source(Protocol):
    """Streamed payload of a tar entry (large blobs kept on disk)."""

    @property
    def size(self) -> int: ...

    def chunks(self) -> Iterator[bytes]: ...


@dataclass
class Entry:
    """One tar entry. ``data`` is the content of a regular file (``source`` streams it instead).

    ``type`` is one of :data:`EntryType`, or a raw one-byte type flag (``b"7"``, ``b"D"``,
    ``b"V"``...) written as given, with ``data`` as its payload.
    ``mode`` defaults to 0o644 for files/devices, 0o755 for dirs, 0o777 for symlinks.
    ``xattrs`` are written as PAX ``SCHILY.xattr.<name>`` records (values may be any bytes);
    ``pax`` adds raw PAX records. ``size`` overrides the size written in the header (a lying
    header: the real ``data`` is still written, padded to a block).
    """

    name: str
    type: EntryType | bytes = "file"
    data: bytes = b""
    mode: int | None = None
    uid: int = 0
    gid: int = 0
    linkname: str = ""
    devmajor: int = 0
    devminor: int = 0
    mtime: int = DEFAULT_MTIME
    xattrs: dict[str, bytes] = field(default_factory=dict)
    pax: dict[str, str] = field(default_factory=dict)
    uname: str = ""
    gname: str = ""
    source: Source | None = None
    size: int | None = None

    @property
    def has_payload(self) -> bool:
        return self.type == "file" or isinstance(self.type, bytes)

    @property
    def payload_size(self) -> int:
        if not self.has_payload:
            return 0
        return self.source.size if self.source is not None else len(self.data)

    def payload(self) -> Iterator[bytes]:
        if not self.has_payload:
            return
        if self.source is not None:
            yield from self.source.chunks()
        elif self.data:
            yield self.data


@dataclass
class Raw:
    """Bytes written into a tar stream verbatim, between entries: the escape hatch for
    headers no tar writer makes (see :func:`raw_header`). Nothing is added, not even padding."""

    data: bytes


Item = Entry | Raw


# ---------------------------------------------------------------------------------------------
# entry helpers (keyword arguments common to all: uid, gid, mtime, xattrs, pax)


class EntryOptions(TypedDict, total=False):
    uid: int
    gid: int
    mtime: int
    xattrs: dict[str, bytes]
    pax: dict[str, str]


def _mk(name: str, type: EntryType | bytes, *, xattrs: dict[str, bytes] | None = None,
        pax: dict[str, str] | None = None, **fields: Any) -> Entry:
    return Entry(name, type, xattrs=dict(xattrs or {}), pax=dict(pax or {}), **fields)


def file(name: str, data: bytes = b"", mode: int = 0o644, **kw: Unpack[EntryOptions]) -> Entry:
    """A regular file."""
    return _mk(name, "file", data=data, mode=mode, **kw)


def dir(name: str, mode: int = 0o755, **kw: Unpack[EntryOptions]) -> Entry:  # `directory` is an alias
    """A directory (written with a trailing slash, like Go's tar)."""
    return _mk(name, "dir", mode=mode, **kw)


directory = dir


def symlink(name: str, target: str, *, mode: int | None = None, **kw: Unpack[EntryOptions]) -> Entry:
    """A symlink ``name -> target`` (target written verbatim, may be absolute or ``..``);
    mode 0o777 unless given."""
    return _mk(name, "symlink", linkname=target, mode=mode, **kw)


def hardlink(name: str, target: str, mode: int = 0o644, **kw: Unpack[EntryOptions]) -> Entry:
    """A hardlink to ``target`` (a path inside the archive). Give it the target's mode:
    containerd applies the hardlink header's mode, umoci does not."""
    return _mk(name, "hardlink", linkname=target, mode=mode, **kw)


def chardev(name: str, major: int = 1, minor: int = 3, mode: int = 0o666, **kw: Unpack[EntryOptions]) -> Entry:
    """A character device (default 1:3, like /dev/null)."""
    return _mk(name, "char", mode=mode, devmajor=major, devminor=minor, **kw)


def blockdev(name: str, major: int = 7, minor: int = 0, mode: int = 0o660, **kw: Unpack[EntryOptions]) -> Entry:
    """A block device (default 7:0, like /dev/loop0)."""
    return _mk(name, "block", mode=mode, devmajor=major, devminor=minor, **kw)


def fifo(name: str, mode: int = 0o644, **kw: Unpack[EntryOptions]) -> Entry:
    """A named pipe."""
    return _mk(name, "fifo", mode=mode, **kw)


def typed(name: str, kind: bytes, data: bytes = b"", mode: int = 0o644, **kw: Unpack[EntryOptions]) -> Entry:
    """An entry with any raw type flag (contiguous ``7``, GNU dumpdir ``D``, volume label
    ``V``, unknown ones), ``data`` as its payload."""
    return _mk(name, kind, data=data, mode=mode, **kw)


def whiteout(path: str, **kw: Unpack[EntryOptions]) -> Entry:
    """The AUFS whiteout deleting ``path``: an empty file ``dirname/.wh.basename``."""
    head, _, base = path.strip("/").rpartition("/")
    return file(f"{head}/.wh.{base}" if head else f".wh.{base}", **kw)


def opaque(dirpath: str, **kw: Unpack[EntryOptions]) -> Entry:
    """The opaque-directory marker ``dirpath/.wh..wh..opq`` (``""`` = the root)."""
    dirpath = dirpath.strip("/")
    return file(f"{dirpath}/.wh..wh..opq" if dirpath else ".wh..wh..opq", **kw)


class Tar:
    """The same entries, chained: ``Tar().dir("etc").file("etc/x", b"1").build()`` is
    ``layer_tar([dir("etc"), file("etc/x", b"1")])``. Names are written as given (``../x``,
    ``/etc/passwd``, ``..``): that is the point of the breakout tests."""

    def __init__(self, format: TarFormat = tarfile.PAX_FORMAT) -> None:
        self.format = format
        self.items: list[Item] = []

    def add(self, *items: Item) -> Tar:
        self.items.extend(items)
        return self

    def file(self, name: str, data: bytes = b"", mode: int = 0o644, **kw: Unpack[EntryOptions]) -> Tar:
        return self.add(file(name, data, mode, **kw))

    def dir(self, name: str, mode: int = 0o755, **kw: Unpack[EntryOptions]) -> Tar:
        return self.add(dir(name, mode, **kw))

    def symlink(self, name: str, target: str, *, mode: int | None = None, **kw: Unpack[EntryOptions]) -> Tar:
        return self.add(symlink(name, target, mode=mode, **kw))

    def hardlink(self, name: str, target: str, mode: int = 0o644, **kw: Unpack[EntryOptions]) -> Tar:
        return self.add(hardlink(name, target, mode, **kw))

    def chardev(self, name: str, major: int, minor: int, mode: int = 0o666, **kw: Unpack[EntryOptions]) -> Tar:
        return self.add(chardev(name, major, minor, mode, **kw))

    def blockdev(self, name: str, major: int, minor: int, mode: int = 0o666, **kw: Unpack[EntryOptions]) -> Tar:
        return self.add(blockdev(name, major, minor, mode, **kw))

    def fifo(self, name: str, mode: int = 0o666, **kw: Unpack[EntryOptions]) -> Tar:
        return self.add(fifo(name, mode, **kw))

    def entry(self, name: str, kind: bytes, data: bytes = b"", mode: int = 0o644, **kw: Unpack[EntryOptions]) -> Tar:
        return self.add(typed(name, kind, data, mode, **kw))

    def whiteout(self, path: str, **kw: Unpack[EntryOptions]) -> Tar:
        return self.add(whiteout(path, **kw))

    def opaque(self, dirpath: str, **kw: Unpack[EntryOptions]) -> Tar:
        return self.add(opaque(dirpath, **kw))

    def raw(self, data: bytes) -> Tar:
        return self.add(Raw(data))

    def build(self, *, eof: bool = True, pad_to_record: bool = False) -> bytes:
        return layer_tar(self.items, format=self.format, eof=eof, pad_to_record=pad_to_record)


# ---------------------------------------------------------------------------------------------
# raw headers: the escape hatch for fields tar writers refuse to write


def raw_header(
    name: bytes,
    *,
    kind: bytes = b"0",
    size: int = 0,
    mode: bytes = b"0000644\0",
    uid: bytes = b"0000000\0",
    gid: bytes = b"0000000\0",
    mtime: bytes = b"00000000000\0",
    linkname: bytes = b"",
    magic: bytes = b"ustar\x0000",
    checksum: bytes | None = None,
) -> bytes:
    """One hand-made ustar header block; every field is written as the bytes given (the size
    as octal), and the checksum is computed unless ``checksum`` gives its 8 bytes."""
    block = bytearray(BLOCK)
    block[0 : len(name)] = name
    block[100:108] = mode
    block[108:116] = uid
    block[116:124] = gid
    block[124:136] = b"%011o\0" % size
    block[136:148] = mtime
    block[148:156] = b" " * 8
    block[156:157] = kind
    block[157 : 157 + len(linkname)] = linkname
    block[257:265] = magic
    block[148:156] = checksum if checksum is not None else header_checksum(block)
    return bytes(block)


def header_checksum(block: bytes | bytearray) -> bytes:
    """The checksum field (8 bytes) of a header block, its own field counted as spaces."""
    return b"%06o\0 " % (sum(block[:148]) + 8 * 32 + sum(block[156:]))


def pad(data: bytes) -> bytes:
    """``data`` padded with NULs to a whole number of blocks."""
    return data + bytes(-len(data) % BLOCK)


def pax_records(records: dict[str, str]) -> bytes:
    """PAX extended-header records ``"%d key=value\\n"``, each length counting itself."""
    out = b""
    for key, value in records.items():
        body = f" {key}={value}\n".encode("utf-8", "surrogateescape")
        n = len(body) + 1
        while len(str(n).encode()) + len(body) != n:
            n = len(str(n).encode()) + len(body)
        out += str(n).encode() + body
    return out


def pax_header(records: dict[str, str], *, kind: bytes = b"x", name: bytes = b"PaxHeader") -> bytes:
    """A PAX extended header (``x``, or ``g`` for a global one) with its records, padded."""
    data = pax_records(records)
    return raw_header(name, kind=kind, size=len(data)) + pad(data)


# ---------------------------------------------------------------------------------------------
# tar writing


def _tarinfo(e: Entry) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(e.name)
    ti.type = e.type if isinstance(e.type, bytes) else _TAR_TYPES[e.type]
    ti.mode = e.mode if e.mode is not None else _DEFAULT_MODES.get(str(e.type), 0o644)
    ti.uid = e.uid
    ti.gid = e.gid
    ti.uname = e.uname
    ti.gname = e.gname
    ti.mtime = e.mtime
    ti.linkname = e.linkname
    ti.devmajor = e.devmajor
    ti.devminor = e.devminor
    ti.size = e.size if e.size is not None else e.payload_size
    pax = dict(e.pax)
    for key, value in e.xattrs.items():
        pax[f"SCHILY.xattr.{key}"] = value.decode("utf-8", "surrogateescape")
    ti.pax_headers = pax
    return ti


def entry_header(e: Entry, format: TarFormat = tarfile.PAX_FORMAT) -> bytes:
    """The header block(s) of one entry (including any PAX/GNU extension blocks)."""
    return _tarinfo(e).tobuf(format, "utf-8", "surrogateescape")


class TarStream:
    """Writes tar entries one by one to a binary stream (payloads streamed, never buffered)."""

    def __init__(self, out: Writable, *, format: TarFormat = tarfile.PAX_FORMAT) -> None:
        self.out = out
        self.format = format
        self.offset = 0

    def _write(self, b: bytes) -> None:
        if b:
            self.out.write(b)
            self.offset += len(b)

    def add(self, e: Item) -> None:
        if isinstance(e, Raw):
            self._write(e.data)
            return
        self._write(entry_header(e, self.format))
        n = 0
        for chunk in e.payload():
            self._write(chunk)
            n += len(chunk)
        if n % BLOCK:
            self._write(b"\0" * (BLOCK - n % BLOCK))

    def close(self, *, eof: bool = True, pad_to_record: bool = False) -> None:
        if eof:
            self._write(b"\0" * (2 * BLOCK))
        if pad_to_record and self.offset % RECORD:
            self._write(b"\0" * (RECORD - self.offset % RECORD))


def write_tar(
    entries: Iterable[Item],
    out: Writable,
    *,
    format: TarFormat = tarfile.PAX_FORMAT,
    eof: bool = True,
    pad_to_record: bool = False,
) -> None:
    """Write ``entries`` in the given order as a tar stream to ``out``."""
    ts = TarStream(out, format=format)
    for e in entries:
        ts.add(e)
    ts.close(eof=eof, pad_to_record=pad_to_record)


def layer_tar(
    entries: Iterable[Item],
    *,
    format: TarFormat = tarfile.PAX_FORMAT,
    eof: bool = True,
    pad_to_record: bool = False,
) -> bytes:
    """An uncompressed layer tarball, entries in the given order, deterministic.

    ``eof=False`` leaves out the end-of-archive blocks; ``pad_to_record=True`` pads to 10 KiB
    like GNU tar / Python's tarfile.
    """
    buf = io.BytesIO()
    write_tar(entries, buf, format=format, eof=eof, pad_to_record=pad_to_record)
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# digests and compression


def sha256_digest(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def compress(data: bytes, kind: Compression, *, level: int | None = None) -> bytes:
    """Compress deterministically.

    gzip: one member with mtime 0, no file name, OS byte 255 (as Go's compress/gzip writes it),
    level 6 by default (Go's default). zstd: level 3, content size in the frame header.
    """
    if kind == "none":
        return data
    if kind == "gzip":
        buf = io.BytesIO()
        w = _GzipWriter(buf, 6 if level is None else level)
        w.write(data)
        w.close()
        return buf.getvalue()
    if kind == "zstd":
        return zstandard.ZstdCompressor(level=3 if level is None else level).compress(data)
    raise ValueError(f"unknown compression {kind!r}")


def detect_compression(data: bytes) -> Compression:
    if data.startswith(GZIP_MAGIC):
        return "gzip"
    if data.startswith(ZSTD_MAGIC):
        return "zstd"
    return "none"


def decompress(data: bytes) -> bytes:
    """Undo :func:`compress` (format sniffed from the magic bytes)."""
    kind = detect_compression(data)
    if kind == "gzip":
        return gzip.decompress(data)
    if kind == "zstd":
        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    return data


class Writable(Protocol):
    """Anything with ``write(bytes)`` (files, BytesIO, hashing/compressing wrappers)."""

    def write(self, b: bytes, /) -> int: ...


class ClosingWriter(Writable, Protocol):
    def close(self) -> None: ...


class HashingWriter:
    """Writes through to ``out``, hashing (sha256) and counting the bytes on the way."""

    def __init__(self, out: Writable) -> None:
        self.out = out
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, b: bytes, /) -> int:
        self._hash.update(b)
        self.size += len(b)
        self.out.write(b)
        return len(b)

    def flush(self) -> None:
        pass

    @property
    def digest(self) -> str:
        """``sha256:<hex>`` of what was written so far."""
        return "sha256:" + self._hash.hexdigest()


class _NoClose:
    """Wraps a stream so compressor.close() does not close it."""

    def __init__(self, out: Writable) -> None:
        self.out = out

    def write(self, b: bytes, /) -> int:
        self.out.write(b)
        return len(b)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def compressing_writer(out: Writable, kind: Compression, *, level: int | None = None) -> ClosingWriter:
    """A writer compressing into ``out``; call ``close()`` to finish the stream (``out`` stays
    open). gzip output is byte-identical to :func:`compress`."""
    if kind == "none":
        return _NoClose(out)
    if kind == "gzip":
        return _GzipWriter(out, 6 if level is None else level)
    if kind == "zstd":
        cctx = zstandard.ZstdCompressor(level=3 if level is None else level)
        return cctx.stream_writer(cast("IO[bytes]", _NoClose(out)), closefd=False)
    raise ValueError(f"unknown compression {kind!r}")


class _GzipWriter:
    """A gzip member as Go writes it (mtime 0, no name, OS 255), streamed."""

    def __init__(self, out: Writable, level: int) -> None:
        self.out = out
        xfl = 2 if level == 9 else 4 if level == 1 else 0
        out.write(b"\x1f\x8b\x08\x00" + b"\0\0\0\0" + bytes([xfl, 255]))
        self.z = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS, zlib.DEF_MEM_LEVEL, 0)
        self.crc = 0
        self.size = 0

    def write(self, b: bytes, /) -> int:
        self.crc = zlib.crc32(b, self.crc)
        self.size += len(b)
        self.out.write(self.z.compress(b))
        return len(b)

    def close(self) -> None:
        self.out.write(self.z.flush())
        self.out.write(self.crc.to_bytes(4, "little") + (self.size & 0xFFFFFFFF).to_bytes(4, "little"))


def read_tar(data: bytes) -> list[tuple[tarfile.TarInfo, bytes]]:
    """Members of a (possibly gzip/zstd-compressed) tar archive with their contents, in order."""
    out: list[tuple[tarfile.TarInfo, bytes]] = []
    with tarfile.open(fileobj=io.BytesIO(decompress(data)), mode="r:") as tf:
        for ti in tf:
            f = tf.extractfile(ti) if ti.isreg() else None
            out.append((ti, f.read() if f is not None else b""))
    return out


def tar_names(data: bytes) -> list[str]:
    """Member names of a (possibly compressed) tar archive, in order."""
    return [ti.name for ti, _ in read_tar(data)]


def tar_files(data: bytes) -> dict[str, bytes]:
    """Regular-file members of a (possibly compressed) tar archive: name -> content."""
    return {ti.name: body for ti, body in read_tar(data) if ti.isreg()}
