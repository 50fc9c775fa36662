"""Compression sniffing, streaming decompression and hashing for layer blobs.

Everything here works on forward-only streams: a layer may arrive through a pipe,
so nothing seeks.  Decompressors are strict: a truncated stream, a corrupt one, or
garbage after the last gzip member / zstd frame is an :class:`InvalidArchive`.
"""

from __future__ import annotations

import enum
import io
import shutil
import zlib
from typing import Any, BinaryIO, Final, cast

import zstandard
from isal import igzip, isal_zlib

from ctrpy.errors import InvalidArchive, InvalidArgument
from ctrpy.streams import CHUNK, RawReader, read_exactly_or_eof
from ctrpy.streams import HashingReader as HashingReader  # where it lived before streams.py

__all__ = [
    "Compression",
    "compress_stream",
    "open_decompressed",
    "sniff",
]

_GZIP_MAGIC: Final = b"\x1f\x8b\x08"
_ZSTD_MAGIC: Final = b"\x28\xb5\x2f\xfd"
_SNIFF_LEN: Final = 4
_ZSTD_MAX_WINDOW: Final = 1 << 29  # 512 MiB, like klauspost/compress used by containerd
GZIP_LEVELS: Final = range(0, 4)
_ISAL_ERROR = cast("type[BaseException]", isal_zlib.error)  # isa-l's levels; 1 is about zlib's 6 in size, 5x faster


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


class _PrefixedRaw(RawReader):
    """A raw reader returning ``prefix`` first, then the rest of ``stream``."""

    def __init__(self, prefix: bytes, stream: BinaryIO) -> None:
        super().__init__()
        self._prefix = prefix
        self._stream = stream

    def read(self, size: int | None = -1) -> bytes:
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


class _GzipRaw(RawReader):
    """isa-l's multi-member gzip reader (output bounded per read, so a gzip bomb costs no
    memory), with its errors as InvalidArchive.  NUL padding after the last member is
    accepted, as gzip(1) does; anything else after it is an error."""

    def __init__(self, source: io.RawIOBase) -> None:
        super().__init__()
        self._gz: Any = cast(Any, igzip).IGzipFile(fileobj=source, mode="rb")

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return self.readall()
        try:  # at most CHUNK per call, whatever is asked: a bomb inflates piece by piece
            data: bytes = self._gz.read(min(size, CHUNK))
            return data
        except EOFError as exc:
            raise InvalidArchive("gzip stream: truncated, or followed by data that is not gzip") from exc
        except (OSError, zlib.error, _ISAL_ERROR) as exc:
            raise InvalidArchive(f"gzip stream: corrupt data: {exc}") from exc


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


class _TrackedSource(RawReader):
    """Feeds every byte read from ``source`` to a zstd frame tracker."""

    def __init__(self, source: io.RawIOBase, tracker: _ZstdFrameTracker) -> None:
        super().__init__()
        self._src = source
        self._tracker = tracker

    def read(self, size: int | None = -1) -> bytes:
        data = self._src.read(-1 if size is None else size) or b""
        self._tracker.feed(data)
        return data


class _ZstdRaw(io.RawIOBase):
    """python-zstandard's stream reader (bounded output per read) plus the frame tracker:
    the reader alone ends silently at a truncated frame.  (``decompressobj()`` would know
    ``eof`` itself, but one call may inflate 16 KiB into 512 MiB: not bounded.)"""

    def __init__(self, source: io.RawIOBase) -> None:
        super().__init__()
        self._tracker = _ZstdFrameTracker()
        self._src = _TrackedSource(source, self._tracker)
        dctx = zstandard.ZstdDecompressor(max_window_size=_ZSTD_MAX_WINDOW)
        self._reader = dctx.stream_reader(
            cast(BinaryIO, self._src), read_size=CHUNK // 4, read_across_frames=True
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
            while self._src.read(CHUNK):  # let the tracker see everything
                pass
            self._tracker.finish()
        return n


def open_decompressed(stream: BinaryIO, *, buffered: bool = True) -> tuple[Compression, BinaryIO]:
    """Sniff ``stream`` (without seeking) and return a reader of its decompressed bytes.

    ``buffered=False`` returns the decompressor itself, for a reader that reads large
    chunks anyway (a buffer would only copy each of them once more)."""
    head = read_exactly_or_eof(stream, _SNIFF_LEN)
    kind = sniff(head)
    raw = _PrefixedRaw(head, stream)
    if kind is Compression.GZIP:
        out: io.RawIOBase = _GzipRaw(raw)
    elif kind is Compression.ZSTD:
        out = _ZstdRaw(raw)
    else:
        out = raw
    return kind, cast(BinaryIO, io.BufferedReader(out, buffer_size=CHUNK) if buffered else out)


def compress_stream(src: BinaryIO, dst: Any, kind: Compression, *, level: int | None = None) -> None:
    """Copy ``src`` into ``dst`` (anything with ``write``) compressed with ``kind``,
    deterministically: the same input always gives the same bytes.

    gzip is isa-l's deflate (levels 0 to 3, default 1) with an empty header (mtime 0, no
    file name); zstd is python-zstandard's (default level 3)."""
    if kind is Compression.NONE:
        shutil.copyfileobj(src, dst, CHUNK)
    elif kind is Compression.GZIP:
        gz_level = 1 if level is None else level
        if gz_level not in GZIP_LEVELS:
            raise InvalidArgument(f"gzip level {gz_level} is out of range ({GZIP_LEVELS.start}-{GZIP_LEVELS.stop - 1})")
        comp = isal_zlib.compressobj(gz_level, isal_zlib.DEFLATED, 31)
        while chunk := src.read(CHUNK):
            dst.write(comp.compress(chunk))
        dst.write(comp.flush())
    elif kind is Compression.ZSTD:
        cctx = zstandard.ZstdCompressor(level=3 if level is None else level)
        cctx.copy_stream(src, dst, read_size=CHUNK, write_size=CHUNK)
    else:  # pragma: no cover - enum is exhaustive
        raise ValueError(f"unknown compression {kind!r}")
