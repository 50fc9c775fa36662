"""Compression sniffing, streaming decompression and hashing for layer blobs.

Everything here works on forward-only streams: a layer may arrive through a pipe,
so nothing seeks.  Decompressors are strict: a truncated stream, a corrupt one, or
garbage after the last gzip member / zstd frame is an :class:`InvalidArchive`.
"""

from __future__ import annotations

import enum
import hashlib
import io
import shutil
import zlib
from typing import Any, BinaryIO, Final, cast

import zstandard

from ctrpy.errors import InvalidArchive

try:  # isa-l is several times faster than zlib for inflate; optional.
    from isal import isal_zlib as _fast_zlib

    _ZLIB_ERRORS: tuple[type[BaseException], ...] = (
        zlib.error,
        cast("type[BaseException]", _fast_zlib.error),
    )
except ImportError:  # pragma: no cover - exercised only without isal installed
    _fast_zlib = None  # type: ignore[assignment]
    _ZLIB_ERRORS = (zlib.error,)

__all__ = [
    "CHUNK_SIZE",
    "Compression",
    "HashingReader",
    "compress_stream",
    "open_decompressed",
    "sniff",
]

CHUNK_SIZE: Final = 1 << 20
"""Read size used throughout the archive package (1 MiB)."""

_GZIP_MAGIC: Final = b"\x1f\x8b\x08"
_ZSTD_MAGIC: Final = b"\x28\xb5\x2f\xfd"
_SNIFF_LEN: Final = 4
_ZSTD_MAX_WINDOW: Final = 1 << 29  # 512 MiB, like klauspost/compress used by containerd


class Compression(enum.Enum):
    """The compressions a layer blob may use."""

    NONE = "none"
    GZIP = "gzip"
    ZSTD = "zstd"


def sniff(head: bytes) -> Compression:
    """Tell the compression of a stream from its first bytes (4 are enough)."""
    if head.startswith(_GZIP_MAGIC):
        return Compression.GZIP
    if head.startswith(_ZSTD_MAGIC):
        return Compression.ZSTD
    return Compression.NONE


def _read_exactly_or_eof(stream: BinaryIO, n: int) -> bytes:
    """Read n bytes, fewer only at end of stream (pipes may return short reads)."""
    parts: list[bytes] = []
    got = 0
    while got < n:
        chunk = stream.read(n - got)
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


class _PrefixedRaw(io.RawIOBase):
    """A raw reader returning ``prefix`` first, then the rest of ``stream``."""

    def __init__(self, prefix: bytes, stream: BinaryIO) -> None:
        super().__init__()
        self._prefix = prefix
        self._stream = stream

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._prefix:
            if size is None or size < 0:
                data = self._prefix + self._stream.read()
                self._prefix = b""
                return data
            data, self._prefix = self._prefix[:size], self._prefix[size:]
            return data
        if size is None or size < 0:
            return self._stream.read()
        return self._stream.read(size)

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        n = len(data)
        view[:n] = data
        return n


class _GzipRaw(io.RawIOBase):
    """Multi-member gzip decoder with bounded output per call.

    Trailing NUL padding after the last member is accepted (gzip(1) does the same);
    any other trailing bytes, a truncated member or corrupt data raise InvalidArchive.
    """

    def __init__(self, source: io.RawIOBase) -> None:
        super().__init__()
        self._src = source
        self._zlib: Any = _fast_zlib if _fast_zlib is not None else zlib
        self._dec: Any = None
        self._pending = b""  # compressed bytes read but not yet fed
        self._out = b""
        self._out_pos = 0
        self._done = False
        self._members = 0

    def readable(self) -> bool:
        return True

    def _read_src(self) -> bytes:
        return self._src.read(CHUNK_SIZE // 4) or b""

    def _start_member(self) -> bool:
        """Begin the next member; False at a clean end of stream."""
        while len(self._pending) < 2:
            chunk = self._read_src()
            if not chunk:
                break
            self._pending += chunk
        if not self._pending:
            return False
        if self._members and not self._pending.startswith(b"\x1f\x8b"):
            # Only NUL padding may follow the last member.
            while True:
                if self._pending.strip(b"\0"):
                    raise InvalidArchive("gzip stream: trailing garbage after the last member")
                self._pending = self._read_src()
                if not self._pending:
                    return False
        self._dec = self._zlib.decompressobj(wbits=31)
        self._members += 1
        return True

    def _produce(self) -> bytes:
        """Return the next non-empty piece of output, b"" at end of stream."""
        while not self._done:
            if self._dec is None and not self._start_member():
                self._done = True
                break
            dec = self._dec
            if dec.unconsumed_tail:
                data = dec.unconsumed_tail
            elif self._pending:
                data, self._pending = self._pending, b""
            else:
                data = self._read_src()
                if not data:
                    raise InvalidArchive("gzip stream: truncated (unexpected end of data)")
            try:
                out: bytes = dec.decompress(data, CHUNK_SIZE)
            except _ZLIB_ERRORS as exc:
                raise InvalidArchive(f"gzip stream: corrupt data: {exc}") from exc
            if dec.eof:
                self._pending = dec.unused_data + self._pending
                self._dec = None
            if out:
                return out
        return b""

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._out_pos >= len(self._out):
            self._out = self._produce()
            self._out_pos = 0
            if not self._out:
                return 0
        n = min(len(view), len(self._out) - self._out_pos)
        view[:n] = self._out[self._out_pos : self._out_pos + n]
        self._out_pos += n
        return n


class _ZstdFrameTracker:
    """Walks the zstd frame/block structure of compressed bytes without decoding.

    python-zstandard's stream reader silently stops at a truncated frame; this tracker
    sees every compressed byte and tells whether the stream ended on a frame boundary.
    """

    _MAGIC, _FHD, _BLOCK, _SKIP_SIZE = range(4)

    def __init__(self) -> None:
        self._state = self._MAGIC
        self._need = 4  # bytes to collect for the current header field
        self._hdr = b""
        self._skip = 0  # bytes to skip before the next header
        self._checksum = False
        self.frames = 0

    def feed(self, data: bytes) -> None:
        pos, end = 0, len(data)
        while pos < end:
            if self._skip:
                step = min(self._skip, end - pos)
                self._skip -= step
                pos += step
                continue
            take = min(self._need - len(self._hdr), end - pos)
            self._hdr += data[pos : pos + take]
            pos += take
            if len(self._hdr) == self._need:
                hdr, self._hdr = self._hdr, b""
                self._header(hdr)

    def _skip_then(self, count: int, state: int, need: int) -> None:
        """Skip ``count`` bytes, then collect ``need`` bytes of header for ``state``."""
        self._skip = count
        self._state = state
        self._need = need

    def _header(self, hdr: bytes) -> None:
        if self._state == self._MAGIC:
            magic = int.from_bytes(hdr, "little")
            if magic == 0xFD2FB528:
                self.frames += 1
                self._skip_then(0, self._FHD, 1)
            elif magic & 0xFFFFFFF0 == 0x184D2A50:
                self._skip_then(0, self._SKIP_SIZE, 4)
            else:
                raise InvalidArchive("zstd stream: trailing garbage (not a zstd frame)")
        elif self._state == self._SKIP_SIZE:
            self._skip_then(int.from_bytes(hdr, "little"), self._MAGIC, 4)
        elif self._state == self._FHD:
            desc = hdr[0]
            if desc & 0x08:
                raise InvalidArchive("zstd stream: reserved frame header bit set")
            single = (desc >> 5) & 1
            self._checksum = bool((desc >> 2) & 1)
            fcs = (single, 2, 4, 8)[desc >> 6]
            rest = (0 if single else 1) + (0, 1, 2, 4)[desc & 3] + fcs
            self._skip_then(rest, self._BLOCK, 3)
        elif self._state == self._BLOCK:
            value = int.from_bytes(hdr, "little")
            last, btype, size = value & 1, (value >> 1) & 3, value >> 3
            if btype == 3:
                raise InvalidArchive("zstd stream: reserved block type")
            body = 1 if btype == 1 else size
            if last:
                self._skip_then(body + (4 if self._checksum else 0), self._MAGIC, 4)
            else:
                self._skip_then(body, self._BLOCK, 3)

    def finish(self) -> None:
        if self.frames == 0:
            raise InvalidArchive("zstd stream: no frame found")
        if self._state != self._MAGIC or self._skip or self._hdr:
            raise InvalidArchive("zstd stream: truncated (unexpected end of data)")


class _TrackedSource(io.RawIOBase):
    """Feeds every byte read from ``source`` to a zstd frame tracker."""

    def __init__(self, source: io.RawIOBase, tracker: _ZstdFrameTracker) -> None:
        super().__init__()
        self._src = source
        self._tracker = tracker

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._src.read(size) or b""
        self._tracker.feed(data)
        return data

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)


class _ZstdRaw(io.RawIOBase):
    def __init__(self, source: io.RawIOBase) -> None:
        super().__init__()
        self._tracker = _ZstdFrameTracker()
        self._src = _TrackedSource(source, self._tracker)
        dctx = zstandard.ZstdDecompressor(max_window_size=_ZSTD_MAX_WINDOW)
        self._reader = dctx.stream_reader(
            cast(BinaryIO, self._src), read_size=CHUNK_SIZE // 4, read_across_frames=True
        )
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._done:
            return 0
        view = memoryview(buffer).cast("B")
        try:
            n = self._reader.readinto(view)
        except zstandard.ZstdError as exc:
            raise InvalidArchive(f"zstd stream: corrupt data: {exc}") from exc
        if n == 0:
            self._done = True
            while self._src.read(CHUNK_SIZE):  # let the tracker see everything
                pass
            self._tracker.finish()
        return n


def open_decompressed(stream: BinaryIO) -> tuple[Compression, BinaryIO]:
    """Sniff ``stream`` (without seeking) and return a reader of its decompressed bytes."""
    head = _read_exactly_or_eof(stream, _SNIFF_LEN)
    kind = sniff(head)
    raw = _PrefixedRaw(head, stream)
    if kind is Compression.GZIP:
        out: io.RawIOBase = _GzipRaw(raw)
    elif kind is Compression.ZSTD:
        out = _ZstdRaw(raw)
    else:
        out = raw
    return kind, cast(BinaryIO, io.BufferedReader(out, buffer_size=CHUNK_SIZE))


class HashingReader(io.RawIOBase):
    """Passes reads through, hashing and counting every byte that goes by."""

    def __init__(self, stream: BinaryIO, algo: str = "sha256") -> None:
        super().__init__()
        self._stream = stream
        self.algo = algo
        self._hash = hashlib.new(algo)
        self.size = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        data = self._stream.read(-1 if size is None else size) or b""
        if data:
            self._hash.update(data)
            self.size += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def drain(self) -> int:
        """Read (and hash) everything left; return how many bytes that was."""
        before = self.size
        while self.read(CHUNK_SIZE):
            pass
        return self.size - before

    @property
    def digest(self) -> str:
        """``<algo>:<hex>`` of everything read so far."""
        return f"{self.algo}:{self._hash.hexdigest()}"


def compress_stream(src: BinaryIO, dst: BinaryIO, kind: Compression, *, level: int | None = None) -> None:
    """Copy ``src`` into ``dst`` compressed with ``kind``, deterministically.

    gzip uses zlib (level 6 by default) with an empty header: mtime 0, no file name,
    so the same input gives the same bytes.  zstd uses level 3 by default.
    """
    if kind is Compression.NONE:
        shutil.copyfileobj(src, dst, CHUNK_SIZE)
    elif kind is Compression.GZIP:
        comp = zlib.compressobj(6 if level is None else level, zlib.DEFLATED, 31)
        while chunk := src.read(CHUNK_SIZE):
            dst.write(comp.compress(chunk))
        dst.write(comp.flush())
    elif kind is Compression.ZSTD:
        cctx = zstandard.ZstdCompressor(level=3 if level is None else level)
        cctx.copy_stream(src, dst, read_size=CHUNK_SIZE, write_size=CHUNK_SIZE)
    else:  # pragma: no cover - enum is exhaustive
        raise ValueError(f"unknown compression {kind!r}")
