"""A small, strict, forward-only tar reader (ustar, pax, GNU long names, sparse files).

It reads a layer once with large reads, folds pax and GNU extension headers into one
:class:`TarHeader`, and refuses what Go's archive/tar refuses too (bad checksums, data after
an end-of-archive block, truncation).  Entries' data is read with the ``read(n)`` that
:func:`iter_tar` yields beside each header; whatever is left unread is skipped.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable, Iterator
from typing import BinaryIO, Final, Protocol

from ctrpy.errors import InvalidArchive, printable, shorten
from ctrpy.streams import CHUNK

_BLOCK: Final = 512
_ZERO_BLOCK: Final = bytes(_BLOCK)
_MAX_META_SIZE: Final = 1 << 20  # pax / GNU long name payloads (Go caps them the same)
_NS: Final = 1_000_000_000

# tar type flags
REG, _AREG, _CONT = b"0", b"\0", b"7"
LNK, SYM, CHR, BLK, DIR, FIFO = b"1", b"2", b"3", b"4", b"5", b"6"
_PAX, _PAX_SOLARIS, _PAX_GLOBAL = b"x", b"X", b"g"
_GNU_LONGNAME, _GNU_LONGLINK, _GNU_SPARSE, GNU_DUMPDIR = b"L", b"K", b"S", b"D"
_HEADER_ONLY: Final = frozenset({LNK, SYM, CHR, BLK, DIR, FIFO})
TYPE_NAMES: Final = {
    b"M": "GNU multi-volume continuation",
    b"V": "GNU volume label",
    b"N": "old GNU long name",
}


def quote(name: bytes | str) -> str:
    """Quote a (possibly non-UTF-8) name for an error message: one line (control
    characters escaped), a long name shortened (see :func:`ctrpy.errors.shorten`)."""
    if isinstance(name, bytes):
        name = name.decode("utf-8", "backslashreplace")
    return '"' + shorten(printable(name.replace("\\", "\\\\").replace('"', '\\"'))) + '"'




class TarHeader:
    """One tar entry, with pax / GNU extensions already folded in.  Names are bytes."""

    __slots__ = (
        "atime_ns",
        "devmajor",
        "devminor",
        "gid",
        "linkname",
        "mode",
        "mtime_ns",
        "name",
        "offset",
        "realsize",
        "size",
        "sparse",
        "type",
        "uid",
        "xattrs",
    )

    def __init__(self) -> None:
        self.name = b""
        self.linkname = b""
        self.type = REG
        self.mode = 0
        self.uid = 0
        self.gid = 0
        self.size = 0  # bytes of data stored in the archive
        self.realsize = 0  # logical file size (differs for sparse files)
        self.mtime_ns = 0
        self.atime_ns: int | None = None
        self.devmajor = 0
        self.devminor = 0
        self.xattrs: list[tuple[bytes, bytes]] = []
        self.sparse: list[tuple[int, int]] | None = None
        self.offset = 0  # where the entry's first header starts in the stream

    def __repr__(self) -> str:
        return f"TarHeader({self.name!r}, type={self.type!r}, size={self.size})"


_OCTAL_DIGITS: Final = b"01234567"


def _num(field: bytes, what: str) -> int:
    """Parse a numeric header field (octal, or GNU base-256)."""
    if field and field[0] in (0x80, 0xFF):
        value = int.from_bytes(field[1:], "big")
        if field[0] == 0xFF:
            value -= 1 << (8 * (len(field) - 1))
        return value
    text = field.split(b"\0", 1)[0].strip(b" ")
    if not text:
        return 0
    if text.translate(None, _OCTAL_DIGITS):
        raise ValueError(f"invalid {what} field {field!r}")
    return int(text, 8)


_PLAIN_NUMBER_BYTES: Final = b"01234567 \0"


def _byte_sum(block: bytes) -> int:
    """The sum of a 512-byte block's bytes, in C: Adler-32's first half is 1 + the sum of the
    bytes modulo 65521, exact for 256 bytes (at most 256 * 255 = 65280); four times faster
    than ``sum(block)``, which a tar header checksum costs once per entry."""
    return (zlib.adler32(block[:256]) & 0xFFFF) + (zlib.adler32(block[256:]) & 0xFFFF) - 2


def _numbers(block: bytes) -> tuple[int, int, int, int, int]:
    """mode, uid, gid, size, mtime of a header block (fast path for plain octal)."""
    if not block[100:148].translate(None, _PLAIN_NUMBER_BYTES):
        try:
            return (
                int(block[100:108].strip(b" \0") or b"0", 8),
                int(block[108:116].strip(b" \0") or b"0", 8),
                int(block[116:124].strip(b" \0") or b"0", 8),
                int(block[124:136].strip(b" \0") or b"0", 8),
                int(block[136:148].strip(b" \0") or b"0", 8),
            )
        except ValueError:
            pass  # e.g. a NUL between digits: let the careful parser decide
    return (
        _num(block[100:108], "mode"),
        _num(block[108:116], "uid"),
        _num(block[116:124], "gid"),
        _num(block[124:136], "size"),
        _num(block[136:148], "mtime"),
    )


def _decimal(value: bytes, what: str) -> int:
    digits = value[1:] if value.startswith(b"-") else value
    if not digits.isdigit():
        raise ValueError(f"invalid pax {what} {value!r}")
    return int(value)


def _pax_time_ns(value: bytes) -> int:
    """``"1700000000.123456789"`` (possibly negative) to nanoseconds, exactly."""
    neg = value.startswith(b"-")
    body = value[1:] if neg else value
    sec, _, frac = body.partition(b".")
    if not sec.isdigit() or (frac and not frac.isdigit()):
        raise ValueError(f"invalid pax time {value!r}")
    ns = int(sec) * _NS + int((frac[:9] or b"0").ljust(9, b"0"))
    return -ns if neg else ns


def _parse_pax(data: bytes) -> list[tuple[bytes, bytes]]:
    records: list[tuple[bytes, bytes]] = []
    pos, end = 0, len(data)
    while pos < end:
        if data[pos] == 0:  # NUL padding after the records
            if data[pos:].strip(b"\0"):
                raise ValueError("garbage after pax records")
            break
        space = data.find(b" ", pos)
        if space < 0 or not data[pos:space].isdigit():
            raise ValueError("malformed pax record length")
        length = int(data[pos:space])
        if length <= space - pos + 1 or pos + length > end:
            raise ValueError("malformed pax record length")
        record = data[space + 1 : pos + length]
        if not record.endswith(b"\n"):
            raise ValueError("pax record not terminated by a newline")
        key, eq, value = record[:-1].partition(b"=")
        if not eq or not key:
            raise ValueError("malformed pax record")
        records.append((key, value))
        pos += length
    return records


class _Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


class TarReader:
    """Forward-only tar parser: ustar, pax (local and global), GNU long names/links,
    GNU sparse (old, pax 0.0/0.1/1.0), base-256 numbers, V7."""

    def __init__(self, stream: _Readable) -> None:
        self._stream = stream
        self._buf = b""
        self._pos = 0
        self.offset = 0  # bytes of the tar consumed by the parser
        self._data_left = 0  # unread data bytes of the current entry
        self._pad = 0  # padding after the current entry's data
        self._current = b""
        self._prev = b""

    # -- buffer -------------------------------------------------------------------
    def _fill(self, n: int) -> bool:
        """Make at least n bytes available; False if the stream ends first."""
        avail = len(self._buf) - self._pos
        if avail >= n:
            return True
        parts = [self._buf[self._pos :]] if avail else []
        while avail < n:
            chunk = self._stream.read(max(CHUNK, n - avail))
            if not chunk:
                break
            parts.append(chunk)
            avail += len(chunk)
        self._buf = parts[0] if len(parts) == 1 else b"".join(parts)
        self._pos = 0
        return avail >= n

    def _take(self, n: int) -> bytes:
        if not self._fill(n):
            raise self._truncated()
        data = self._buf[self._pos : self._pos + n]
        self._pos += n
        self.offset += n
        return data

    def _spans(self, n: int) -> Iterator[memoryview]:
        """The next n bytes, as views of the buffer (refilled as needed); each is consumed
        once the next is asked for."""
        while n:
            avail = len(self._buf) - self._pos
            if not avail:
                if not self._fill(1):
                    raise self._truncated()
                continue
            step = min(avail, n)
            yield memoryview(self._buf)[self._pos : self._pos + step]
            self._pos += step
            self.offset += step
            n -= step

    def _skip(self, n: int) -> None:
        if n <= len(self._buf) - self._pos:  # buffered (an entry's padding, usually): no walk
            self._pos += n
            self.offset += n
            return
        for _ in self._spans(n):
            pass

    def _truncated(self) -> InvalidArchive:
        if self._current:
            return InvalidArchive(f"layer entry {quote(self._current)}: truncated tar (unexpected end of data)")
        return InvalidArchive(
            f"truncated tar at offset {self.offset} (after entry {quote(self._prev)})"
            if self._prev
            else f"truncated tar at offset {self.offset}"
        )

    def _bad(self, start: int, msg: str) -> InvalidArchive:
        after = f" after entry {quote(self._prev)}" if self._prev else ""
        return InvalidArchive(f"invalid tar header at offset {start}{after}: {msg}")

    # -- data ---------------------------------------------------------------------
    def write_data_to(self, fd: int, n: int) -> None:
        """Copy the next n data bytes of the current entry into fd."""
        if n > self._data_left:
            raise InvalidArchive(f"layer entry {quote(self._current)}: data overruns its size")
        self._data_left -= n
        pos = self._pos
        if n <= len(self._buf) - pos:  # all of it buffered (a small file): one write, usually
            written = os.write(fd, memoryview(self._buf)[pos : pos + n])
            self._pos = pos + written
            self.offset += written
            n -= written
        for view in self._spans(n):
            while view:
                view = view[os.write(fd, view) :]

    def read_data(self, n: int) -> bytes:
        if n > self._data_left:
            raise InvalidArchive(f"layer entry {quote(self._current)}: data overruns its size")
        self._data_left -= n
        return self._take(n)

    def _skip_entry(self) -> None:
        self._skip(self._data_left + self._pad)
        self._data_left = self._pad = 0

    # -- headers ------------------------------------------------------------------
    def next(self) -> TarHeader | None:
        """The next entry's header, or None at the end of the archive."""
        self._skip_entry()
        if self._current:
            self._prev = self._current
        self._current = b""
        pax: list[tuple[bytes, bytes]] = []
        long_name: bytes | None = None
        long_link: bytes | None = None
        first = self.offset
        while True:
            start = self.offset
            pos = self._pos
            if len(self._buf) - pos >= _BLOCK:  # the common case: the header is buffered
                block = self._buf[pos : pos + _BLOCK]
                self._pos = pos + _BLOCK
                self.offset = start + _BLOCK
            else:
                if not self._fill(_BLOCK):
                    if len(self._buf) - self._pos == 0 and start == first:
                        return None  # clean EOF on a block boundary (no end-of-archive marker)
                    raise self._truncated()
                block = self._take(_BLOCK)
            if block == _ZERO_BLOCK:
                if start != first:
                    raise self._bad(start, "archive ends after an extended header")
                # The end of an archive is two zero blocks (one is tolerated, like Go).
                if self._fill(_BLOCK) and self._take(_BLOCK) != _ZERO_BLOCK:
                    raise self._bad(start + _BLOCK, "data after a zero block")
                return None
            self._check_sum(block, start)
            typ = block[156:157]
            try:
                numbers = _numbers(block)
            except ValueError as exc:
                name = block[:100].split(b"\0", 1)[0]
                raise self._bad(start, f"entry {quote(name)}: {exc}") from None
            size = numbers[3]
            if size < 0:
                raise self._bad(start, "negative size")
            if typ in (_PAX, _PAX_SOLARIS, _PAX_GLOBAL, _GNU_LONGNAME, _GNU_LONGLINK):
                if size > _MAX_META_SIZE:
                    raise self._bad(start, f"extended header of {size} bytes is too large")
                data = self._take(size)
                self._skip(-size % _BLOCK)
                if typ in (_GNU_LONGNAME, _GNU_LONGLINK):
                    value = data.split(b"\0", 1)[0]
                    if typ == _GNU_LONGNAME:
                        long_name = value
                    else:
                        long_link = value
                    continue
                try:
                    records = _parse_pax(data)
                except ValueError as exc:
                    raise self._bad(start, str(exc)) from None
                if typ != _PAX_GLOBAL:
                    # Global headers are parsed (so they must be well formed) but, like
                    # containerd and umoci (Go's archive/tar), not applied.
                    pax.extend(records)
                continue
            hdr = self._build(block, first, typ, numbers)
            try:
                self._extend(hdr, block, pax, long_name, long_link)
            except ValueError as exc:
                raise self._bad(first, f"entry {quote(hdr.name)}: {exc}") from None
            self._current = hdr.name or b"."
            return hdr

    def _check_sum(self, block: bytes, start: int) -> None:
        try:
            field = block[148:156]
            if field.translate(None, _PLAIN_NUMBER_BYTES):
                raise ValueError("not octal")
            want = int(field.strip(b" \0") or b"0", 8)
        except ValueError:
            raise self._bad(start, "invalid checksum field (not a tar archive?)") from None
        unsigned = _byte_sum(block) - sum(block[148:156]) + 256
        if want == unsigned:
            return
        signed = unsigned - 256 * sum(1 for b in block if b > 127)
        signed += 256 * sum(1 for b in block[148:156] if b > 127)
        if want != signed:
            raise self._bad(start, "checksum mismatch (not a tar archive?)")

    def _build(
        self, block: bytes, start: int, typ: bytes, numbers: tuple[int, int, int, int, int]
    ) -> TarHeader:
        hdr = TarHeader()
        hdr.offset = start
        hdr.type = typ
        mode, hdr.uid, hdr.gid, size, mtime = numbers
        hdr.mode = mode & 0o7777
        hdr.mtime_ns = mtime * _NS
        name = block[:100].split(b"\0", 1)[0]
        if typ in (CHR, BLK):
            try:
                hdr.devmajor = _num(block[329:337], "devmajor")
                hdr.devminor = _num(block[337:345], "devminor")
            except ValueError as exc:
                raise self._bad(start, f"entry {quote(name)}: {exc}") from None
        magic = block[257:265]
        if magic[:6] == b"ustar\0":
            if block[508:512] == b"tar\0":  # star: shorter prefix, then atime/ctime
                prefix = block[345:476].split(b"\0", 1)[0]
            else:
                prefix = block[345:500].split(b"\0", 1)[0]
            if prefix:
                name = prefix + b"/" + name
        hdr.name = name
        hdr.linkname = block[157:257].split(b"\0", 1)[0]
        hdr.size = size
        return hdr

    def _extend(
        self,
        hdr: TarHeader,
        block: bytes,
        pax: list[tuple[bytes, bytes]],
        long_name: bytes | None,
        long_link: bytes | None,
    ) -> None:
        if long_name is not None:
            hdr.name = long_name
        if long_link is not None:
            hdr.linkname = long_link
        sparse_map: list[tuple[int, int]] | None = None
        sparse_offsets: list[int] = []
        sparse_major: bytes | None = None
        realsize: int | None = None
        sparse_name: bytes | None = None
        for key, value in pax:
            if key.startswith(b"SCHILY.xattr."):
                name = key[len(b"SCHILY.xattr.") :]
                hdr.xattrs = [(k, v) for k, v in hdr.xattrs if k != name]
                hdr.xattrs.append((name, value))
            elif not value:
                continue  # an empty value unsets a (global) value: nothing to do
            elif key == b"path":
                hdr.name = value
            elif key == b"linkpath":
                hdr.linkname = value
            elif key == b"size":
                hdr.size = _decimal(value, "size")
            elif key == b"uid":
                hdr.uid = _decimal(value, "uid")
            elif key == b"gid":
                hdr.gid = _decimal(value, "gid")
            elif key == b"mtime":
                hdr.mtime_ns = _pax_time_ns(value)
            elif key == b"atime":
                hdr.atime_ns = _pax_time_ns(value)
            elif key == b"GNU.sparse.name":
                sparse_name = value
            elif key in (b"GNU.sparse.size", b"GNU.sparse.realsize"):
                realsize = _decimal(value, "sparse size")
            elif key == b"GNU.sparse.major":
                sparse_major = value
            elif key == b"GNU.sparse.offset":
                sparse_offsets.append(_decimal(value, "sparse offset"))
            elif key == b"GNU.sparse.numbytes":
                if len(sparse_offsets) != len(sparse_map or []) + 1:
                    raise ValueError("GNU.sparse.numbytes without an offset")
                sparse_map = (sparse_map or []) + [(sparse_offsets[-1], _decimal(value, "sparse numbytes"))]
            elif key == b"GNU.sparse.map":
                nums = [_decimal(v, "sparse map") for v in value.split(b",")]
                if len(nums) % 2:
                    raise ValueError("odd number of values in GNU.sparse.map")
                sparse_map = list(zip(nums[::2], nums[1::2], strict=True))
        if sparse_name is not None:
            hdr.name = sparse_name
        if hdr.size < 0:
            raise ValueError("negative size")
        typ = hdr.type
        if typ == _AREG and hdr.name.endswith(b"/"):
            hdr.type = typ = DIR
        elif typ in (_AREG, _CONT):
            hdr.type = typ = REG
        data_size = 0 if typ in _HEADER_ONLY else hdr.size
        self._data_left = data_size
        self._pad = -data_size % _BLOCK
        hdr.realsize = hdr.size
        if typ == _GNU_SPARSE:
            sparse_map, realsize = self._old_gnu_sparse(block)
            hdr.type = REG
        elif sparse_major == b"1" and typ == REG:
            sparse_map = self._sparse_v1_map()
        elif sparse_map is None and sparse_offsets:
            raise ValueError("GNU.sparse.offset without numbytes")
        if sparse_map is not None:
            if realsize is None:
                raise ValueError("sparse file without a real size")
            pos = 0
            for off, num in sparse_map:
                if off < pos or num < 0 or off + num > realsize:
                    raise ValueError("invalid sparse map")
                pos = off + num
            if sum(num for _, num in sparse_map) != self._data_left:
                raise ValueError("sparse map does not match the data size")
            hdr.sparse = sparse_map
            hdr.realsize = realsize
            hdr.size = self._data_left

    def _old_gnu_sparse(self, block: bytes) -> tuple[list[tuple[int, int]], int]:
        entries: list[tuple[int, int]] = []

        def parse(area: bytes, count: int) -> None:
            for i in range(count):
                field = area[i * 24 : i * 24 + 24]
                if field[0] == 0:
                    break
                entries.append((_num(field[:12], "sparse"), _num(field[12:], "sparse")))

        parse(block[386:482], 4)
        extended = block[482]
        realsize = _num(block[483:495], "sparse real size")
        blocks = 0
        while extended:
            blocks += 1
            if blocks * _BLOCK > _MAX_META_SIZE:
                raise ValueError("too many sparse extension headers")
            ext = self._take(_BLOCK)
            parse(ext[:504], 21)
            extended = ext[504]
        return entries, realsize

    def _sparse_v1_map(self) -> list[tuple[int, int]]:
        """PAX sparse 1.0: the map is decimal lines at the start of the data."""
        left = self._data_left
        consumed = 0
        buf = b""

        def number() -> int:
            nonlocal buf, consumed
            while b"\n" not in buf:
                if consumed + _BLOCK > left or consumed >= _MAX_META_SIZE:
                    raise ValueError("malformed sparse 1.0 map")
                buf += self._take(_BLOCK)
                consumed += _BLOCK
            line, _, buf = buf.partition(b"\n")
            return _decimal(line, "sparse map")

        count = number()
        result = [(number(), number()) for _ in range(count)]
        self._data_left = left - consumed
        return result


def iter_tar(stream: BinaryIO) -> Iterator[tuple[TarHeader, Callable[[int], bytes]]]:
    """Iterate over a tar stream: yields each header and a ``read(n)`` for its data.

    A small, strict reader shared with tests and other modules; the reader skips any
    data left unread when the iteration moves on.
    """
    reader = TarReader(stream)
    while (hdr := reader.next()) is not None:
        yield hdr, reader.read_data


