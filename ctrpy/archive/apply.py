"""Safe application of one layer (an uncompressed tar stream) onto a root directory.

The rules follow containerd's ``pkg/archive`` and umoci's ``oci/layer``:

* Names are cleaned lexically (leading ``/``, ``.`` and ``..`` cannot leave the root).
* Parent directories are resolved *inside* the root one component at a time with
  ``O_PATH|O_NOFOLLOW`` directory descriptors; a symlink met on the way is read and
  resolved by us, clamped to the root (``/`` and ``..`` never go above it).  The final
  component is never followed: it is created relative to its parent's descriptor.
* An existing node is replaced unless both it and the entry are directories (merge).
* An entry naming the root itself must be a directory (umoci CVE-2021-29136).
* Modes are set through a descriptor, never by path through a symlink (CVE-2021-32760).
* Every entry's parent is resolved against the tree as it is now.  The only reuse is
  a cache of the *descriptors* of the previous entry's parent directories (so sorted
  layers cost no extra syscall per entry); it never extends past a symlink and is
  dropped whenever this layer removes anything, so an entry that turns a directory
  into a symlink (CVE-2025-47290) is seen by every later entry.
* Whiteouts (``.wh.NAME``, ``.wh..wh..opq``) remove what lower layers put there, never
  what this layer wrote (OCI image spec); in ``overlay`` mode they become overlayfs
  whiteout devices and opaque xattrs instead.
* Nothing from the image is ever executed.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, Final, Literal, Protocol

from ctrpy.archive.compression import CHUNK_SIZE, HashingReader
from ctrpy.errors import InvalidArchive, InvalidArgument, UnpackError

__all__ = [
    "ApplyOptions",
    "ApplyResult",
    "TarHeader",
    "apply_layer",
    "clean_path",
    "iter_tar",
    "resolve_in_root",
    "safe_join",
]

_log = logging.getLogger("ctrpy.archive")

_BLOCK: Final = 512
_ZERO_BLOCK: Final = bytes(_BLOCK)
_MAX_META_SIZE: Final = 1 << 20  # pax / GNU long name payloads (Go caps them the same)
_MAX_SYMLINKS: Final = 40  # like the kernel's MAXSYMLINKS
_MAX_ID: Final = 1 << 31
_MAX_MAJOR: Final = 1 << 12  # Linux dev_t: 12-bit major, 20-bit minor
_MAX_MINOR: Final = 1 << 20
_NS: Final = 1_000_000_000

_O_CLOEXEC: Final = os.O_CLOEXEC
_DIR_PATH_FLAGS: Final = os.O_PATH | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_CLOEXEC
_DIR_READ_FLAGS: Final = os.O_RDONLY | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_CLOEXEC
_FILE_CREATE_FLAGS: Final = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC

_WH_PREFIX: Final = b".wh."
_WH_META_PREFIX: Final = b".wh..wh."
_WH_OPAQUE: Final = b".wh..wh..opq"

# tar type flags
_REG, _AREG, _CONT = b"0", b"\0", b"7"
_LNK, _SYM, _CHR, _BLK, _DIR, _FIFO = b"1", b"2", b"3", b"4", b"5", b"6"
_PAX, _PAX_SOLARIS, _PAX_GLOBAL = b"x", b"X", b"g"
_GNU_LONGNAME, _GNU_LONGLINK, _GNU_SPARSE, _GNU_DUMPDIR = b"L", b"K", b"S", b"D"
_HEADER_ONLY: Final = frozenset({_LNK, _SYM, _CHR, _BLK, _DIR, _FIFO})
_TYPE_NAMES: Final = {
    b"M": "GNU multi-volume continuation",
    b"V": "GNU volume label",
    b"N": "old GNU long name",
}


# ---------------------------------------------------------------------------------
# Small helpers


def _q(name: bytes | str) -> str:
    """Quote a (possibly non-UTF-8) name for an error message."""
    if isinstance(name, bytes):
        name = name.decode("utf-8", "backslashreplace")
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _clean(name: bytes) -> list[bytes]:
    """Lexically clean a tar name into components; ``..`` never rises above the root."""
    out: list[bytes] = []
    for comp in name.split(b"/"):
        if comp == b"" or comp == b".":
            continue
        if comp == b"..":
            if out:
                out.pop()
            continue
        out.append(comp)
    return out


def clean_path(path: str | bytes) -> str:
    """Clean ``path`` lexically into a root-relative path (``""`` is the root itself).

    Leading ``/`` and ``./`` are dropped and ``..`` is applied lexically but never above
    the root: ``"/a/../../etc/./passwd"`` becomes ``"etc/passwd"``.
    """
    raw = os.fsencode(path)
    return os.fsdecode(b"/".join(_clean(raw)))


def _fd_path(fd: int, name: bytes | None = None) -> bytes:
    """A /proc path naming the object behind ``fd`` (or ``name`` inside that directory)."""
    base = b"/proc/self/fd/%d" % fd
    return base if name is None else base + b"/" + name


def _read_umask() -> int:
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


# ---------------------------------------------------------------------------------
# Tar reading


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
        self.type = _REG
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


class _TarReader:
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
            chunk = self._stream.read(max(CHUNK_SIZE, n - avail))
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

    def _skip(self, n: int) -> None:
        while n:
            avail = len(self._buf) - self._pos
            if not avail:
                if not self._fill(1):
                    raise self._truncated()
                continue
            step = min(avail, n)
            self._pos += step
            self.offset += step
            n -= step

    def _truncated(self) -> InvalidArchive:
        if self._current:
            return InvalidArchive(f"layer entry {_q(self._current)}: truncated tar (unexpected end of data)")
        return InvalidArchive(
            f"truncated tar at offset {self.offset} (after entry {_q(self._prev)})"
            if self._prev
            else f"truncated tar at offset {self.offset}"
        )

    def _bad(self, start: int, msg: str) -> InvalidArchive:
        after = f" after entry {_q(self._prev)}" if self._prev else ""
        return InvalidArchive(f"invalid tar header at offset {start}{after}: {msg}")

    # -- data ---------------------------------------------------------------------
    def write_data_to(self, fd: int, n: int) -> None:
        """Copy the next n data bytes of the current entry into fd."""
        if n > self._data_left:
            raise InvalidArchive(f"layer entry {_q(self._current)}: data overruns its size")
        self._data_left -= n
        self.offset += n
        while n:
            avail = len(self._buf) - self._pos
            if not avail:
                if not self._fill(1):
                    raise self._truncated()
                continue
            step = min(avail, n)
            view = memoryview(self._buf)[self._pos : self._pos + step]
            while view:
                written = os.write(fd, view)
                view = view[written:]
            self._pos += step
            n -= step

    def read_data(self, n: int) -> bytes:
        if n > self._data_left:
            raise InvalidArchive(f"layer entry {_q(self._current)}: data overruns its size")
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
                raise self._bad(start, f"entry {_q(name)}: {exc}") from None
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
                raise self._bad(first, f"entry {_q(hdr.name)}: {exc}") from None
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
        unsigned = sum(block) - sum(block[148:156]) + 256
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
        if typ in (_CHR, _BLK):
            try:
                hdr.devmajor = _num(block[329:337], "devmajor")
                hdr.devminor = _num(block[337:345], "devminor")
            except ValueError as exc:
                raise self._bad(start, f"entry {_q(name)}: {exc}") from None
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
            hdr.type = typ = _DIR
        elif typ in (_AREG, _CONT):
            hdr.type = typ = _REG
        data_size = 0 if typ in _HEADER_ONLY else hdr.size
        self._data_left = data_size
        self._pad = -data_size % _BLOCK
        hdr.realsize = hdr.size
        if typ == _GNU_SPARSE:
            sparse_map, realsize = self._old_gnu_sparse(block)
            hdr.type = _REG
        elif sparse_major == b"1" and typ == _REG:
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
    reader = _TarReader(stream)
    while (hdr := reader.next()) is not None:
        yield hdr, reader.read_data


# ---------------------------------------------------------------------------------
# Resolution inside the root


class _Resolver:
    """Resolves directory paths inside a root with descriptors, symlinks clamped.

    It keeps the descriptor stack of the last resolution so that the next entry in
    the same directory costs no syscall.  The cache is only reused for a prefix that
    was resolved without meeting a symlink, and is dropped (``dirty``) after anything
    is removed from the tree, so a path always means what the tree says right now.
    """

    def __init__(
        self,
        root_fd: int,
        *,
        on_nondir: Callable[[int, bytes], bool] | None = None,
    ) -> None:
        self.root_fd = root_fd
        self._stack: list[int] = [root_fd]  # stack[0] is borrowed, the rest are owned
        self._phys: list[bytes] = []  # physical names of stack[1:]
        self._logical: list[bytes] = []  # cached logical components
        self._depths: list[int] = []  # stack depth after each cached component
        self._on_nondir = on_nondir
        self.dirty = False
        self.gen = 0  # changes whenever ``fd`` may name another directory
        self._links = 0
        self._cacheable = True
        self._low = 1

    def close(self) -> None:
        for fd in self._stack[1:]:
            os.close(fd)
        self.gen += 1
        self._stack = [self.root_fd]
        self._phys = []
        self._logical = []
        self._depths = []

    @property
    def fd(self) -> int:
        return self._stack[-1]

    @property
    def rel(self) -> bytes:
        """Physical root-relative path of the directory last resolved."""
        return b"/".join(self._phys)

    def _truncate(self, depth: int) -> None:
        stack = self._stack
        if len(stack) > depth:
            self.gen += 1
        while len(stack) > depth:
            os.close(stack.pop())
        del self._phys[depth - 1 :]
        if depth < self._low:
            self._low = depth

    def resolve(self, comps: list[bytes], *, create: bool) -> bool:
        """Make ``self.fd`` the directory at ``comps``; False if missing and not create."""
        if self.dirty:
            self.close()
            self.dirty = False
        logical = self._logical
        depths = self._depths
        k, n = 0, min(len(comps), len(logical))
        while k < n and comps[k] == logical[k]:
            k += 1
        self._truncate(depths[k - 1] if k else 1)
        del logical[k:]
        del depths[k:]
        self._links = 0
        self._cacheable = True
        self._low = 1 << 62  # lowest stack depth a symlink pops to during this call
        try:
            for comp in comps[k:]:
                if not self._step(comp, create):
                    return False
                if self._cacheable:
                    logical.append(comp)
                    depths.append(len(self._stack))
            return True
        finally:
            # A symlink may have popped the stack below cached entries (``..`` or an
            # absolute target): those descriptors are gone, forget their paths.
            low = self._low
            cut = len(depths)
            while cut and depths[cut - 1] > low:
                cut -= 1
            del logical[cut:]
            del depths[cut:]

    def _step(self, first: bytes, create: bool) -> bool:
        """Resolve one component (following symlinks) on top of the stack.

        A missing directory is kept as a *virtual* component, like Go's securejoin:
        a later ``..`` (from a symlink target such as ``missing/../../etc``) cancels
        it lexically.  Whatever is still virtual at the end is created when
        ``create``, else the component is missing (False).
        """
        pending = [first]
        stack = self._stack
        virtual: list[bytes] = []
        while pending:
            comp = pending.pop()
            if comp == b"" or comp == b".":
                continue
            if comp == b"..":
                if virtual:
                    virtual.pop()
                elif len(stack) > 1:
                    self._truncate(len(stack) - 1)
                continue
            if virtual:
                virtual.append(comp)
                continue
            cur = stack[-1]
            try:
                fd = os.open(comp, _DIR_PATH_FLAGS, dir_fd=cur)
            except FileNotFoundError:
                virtual.append(comp)
                continue
            except OSError as exc:
                if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
                    raise
                try:
                    target = os.readlink(comp, dir_fd=cur)
                except OSError as rexc:
                    if rexc.errno != errno.EINVAL:
                        raise
                    if create and self._on_nondir is not None and self._on_nondir(cur, comp):
                        pending.append(comp)
                        continue
                    raise NotADirectoryError(
                        errno.ENOTDIR, f"{_q(b'/'.join([*self._phys, comp]))} is not a directory"
                    ) from None
                self._links += 1
                if self._links > _MAX_SYMLINKS:
                    raise OSError(errno.ELOOP, "too many levels of symbolic links") from None
                self._cacheable = False
                if target.startswith(b"/"):
                    self._truncate(1)
                pending.extend(reversed(target.split(b"/")))
                continue
            stack.append(fd)
            self._phys.append(comp)
            self.gen += 1
        if virtual:
            if not create:
                return False
            for comp in virtual:
                try:
                    os.mkdir(comp, 0o755, dir_fd=stack[-1])
                except FileExistsError:
                    pass
                stack.append(os.open(comp, _DIR_PATH_FLAGS, dir_fd=stack[-1]))
                self._phys.append(comp)
                self.gen += 1
        return True


def resolve_in_root(root_fd: int, path: str | bytes, *, follow_final: bool = False) -> int:
    """Open ``path`` inside the root directory ``root_fd`` and return an ``O_PATH`` fd.

    Every symlink on the way is resolved inside the root (an absolute target or ``..``
    never leaves it).  The final component is not followed unless ``follow_final``:
    then the fd names the symlink itself.  The caller closes the fd.  Missing paths
    raise ``FileNotFoundError``; a non-directory parent ``NotADirectoryError``.
    """
    comps = _clean(os.fsencode(path))
    resolver = _Resolver(root_fd)
    try:
        if not comps:
            return os.open(".", _DIR_PATH_FLAGS, dir_fd=root_fd)
        final = comps[-1]
        if not resolver.resolve(comps[:-1], create=False):
            raise FileNotFoundError(errno.ENOENT, f"{_q(path)} not found in root")
        links = 0
        while True:
            try:
                fd = os.open(final, os.O_PATH | os.O_NOFOLLOW | _O_CLOEXEC, dir_fd=resolver.fd)
            except FileNotFoundError:
                raise FileNotFoundError(errno.ENOENT, f"{_q(path)} not found in root") from None
            if not follow_final or not stat.S_ISLNK(os.fstat(fd).st_mode):
                return fd
            os.close(fd)
            links += 1
            if links > _MAX_SYMLINKS:
                raise OSError(errno.ELOOP, "too many levels of symbolic links")
            target = os.readlink(final, dir_fd=resolver.fd)
            parts = [p for p in target.split(b"/") if p not in (b"", b".")]
            if target.startswith(b"/"):
                resolver._truncate(1)
            if not parts or parts[-1] == b"..":
                for part in parts:
                    if not resolver._step(part, False):
                        raise FileNotFoundError(errno.ENOENT, f"{_q(path)} not found in root")
                return os.open(".", _DIR_PATH_FLAGS, dir_fd=resolver.fd)
            for part in parts[:-1]:
                if not resolver._step(part, False):
                    raise FileNotFoundError(errno.ENOENT, f"{_q(path)} not found in root")
            final = parts[-1]
    finally:
        resolver.close()


def safe_join(root: str | os.PathLike[str], path: str | bytes) -> str:
    """Join ``path`` to ``root`` the way a rootfs sees it (like Go's securejoin).

    Symlinks in the existing part of the path are resolved inside ``root``; missing
    components are taken lexically.  The final component is not followed.  The answer
    is a plain path: use :func:`resolve_in_root` where races matter.
    """
    base = os.fsencode(os.path.abspath(root))
    pending = list(reversed(_clean(os.fsencode(path))))
    phys: list[bytes] = []
    links = 0
    while pending:
        comp = pending.pop()
        if comp in (b"", b"."):
            continue
        if comp == b"..":
            if phys:
                phys.pop()
            continue
        if not pending:
            phys.append(comp)
            break
        full = b"/".join([base, *phys, comp])
        try:
            st = os.lstat(full)
        except (FileNotFoundError, NotADirectoryError):
            phys.append(comp)
            continue
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > _MAX_SYMLINKS:
                raise OSError(errno.ELOOP, "too many levels of symbolic links")
            target = os.readlink(full)
            if target.startswith(b"/"):
                phys = []
            pending.extend(reversed(target.split(b"/")))
            continue
        phys.append(comp)
    return os.fsdecode(b"/".join([base, *phys]) if phys else base)


# ---------------------------------------------------------------------------------
# Applying


@dataclass
class ApplyOptions:
    """How :func:`apply_layer` writes a layer."""

    whiteouts: Literal["delete", "overlay"] = "delete"
    """``delete``: the root holds the parent's full tree (native snapshotter) and
    whiteouts remove things.  ``overlay``: the root is an empty overlayfs upper dir;
    ``.wh.X`` becomes a 0:0 character device X and ``.wh..wh..opq`` sets the xattr
    ``trusted.overlay.opaque=y`` (``user.overlay.opaque`` when not root) on its dir."""
    same_owner: bool = field(default_factory=lambda: os.geteuid() == 0)
    """Apply uid/gid from the tar; when False nothing is chowned and device nodes are
    skipped with a warning."""
    on_warning: Callable[[str], None] | None = None
    """Called with a one-line message for everything skipped; default: logging."""
    on_progress: Callable[[int, int], None] | None = None
    """Called after every entry with (entries done, uncompressed tar bytes done)."""


@dataclass
class ApplyResult:
    """What :func:`apply_layer` read."""

    entries: int
    size: int
    """Bytes of the uncompressed tar stream, including padding after its end."""
    diff_id: str
    """``sha256:<hex>`` of the whole uncompressed tar stream (the layer's diffID)."""


@dataclass
class _DirFix:
    mode: int
    mtime_ns: int
    atime_ns: int
    dev: int
    ino: int


class _Applier:
    def __init__(self, root_fd: int, options: ApplyOptions) -> None:
        self.root_fd = root_fd
        self.opts = options
        self.overlay = options.whiteouts == "overlay"
        self.same_owner = options.same_owner
        self.euid = os.geteuid()
        self.egid = os.getegid()
        self.is_root = self.euid == 0
        self.opaque_xattr = b"trusted.overlay.opaque" if self.is_root else b"user.overlay.opaque"
        self.umask = _read_umask()
        self.resolver = _Resolver(root_fd, on_nondir=self._whiteout_to_dir if self.overlay else None)
        self.link_resolver = _Resolver(root_fd)
        self.upper: set[bytes] = set()
        self.dirs: dict[bytes, _DirFix] = {}
        self.made_writable: dict[bytes, tuple[int, int, int]] = {}  # rel -> (mode, dev, ino)
        self.warned: set[str] = set()
        self._parent_gen = -1  # resolver generation the two facts below describe
        self._parent_sgid: bool | None = None
        self._parent_acl: bool | None = None
        self.name = b""

    def close(self) -> None:
        self.resolver.close()
        self.link_resolver.close()

    # -- plumbing -----------------------------------------------------------------
    def warn(self, msg: str, *, once: str | None = None) -> None:
        if once is not None:
            if once in self.warned:
                return
            self.warned.add(once)
        if self.opts.on_warning is not None:
            self.opts.on_warning(msg)
        else:
            _log.warning("%s", msg)

    def invalid(self, msg: str) -> InvalidArchive:
        return InvalidArchive(f"layer entry {_q(self.name)}: {msg}")

    def removed(self) -> None:
        """Something left the tree: cached path resolutions may be stale now."""
        self.resolver.dirty = True
        self.link_resolver.dirty = True

    def mark_upper(self, rel: bytes) -> None:
        upper = self.upper
        while rel and rel not in upper:
            upper.add(rel)
            cut = rel.rfind(b"/")
            if cut < 0:
                break
            rel = rel[:cut]

    def parent(self, comps: list[bytes]) -> tuple[int, bytes]:
        """Resolve (creating) the parent directory of an entry; (fd, physical rel)."""
        self.resolver.resolve(comps, create=True)
        return self.resolver.fd, self.resolver.rel

    def _whiteout_to_dir(self, dir_fd: int, name: bytes) -> bool:
        """overlay mode: a whiteout device on the way to an entry becomes an opaque dir."""
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if not (stat.S_ISCHR(st.st_mode) and st.st_rdev == 0):
            return False
        os.unlink(name, dir_fd=dir_fd)
        os.mkdir(name, 0o755, dir_fd=dir_fd)
        os.setxattr(_fd_path(dir_fd, name), self.opaque_xattr, b"y", follow_symlinks=False)
        return True

    def writable(self, dir_fd: int, rel: bytes) -> bool:
        """Non-root: make a directory we own writable for the rest of the layer."""
        if self.is_root or rel in self.made_writable:
            return False
        st = os.fstat(dir_fd)
        if st.st_uid != self.euid or st.st_mode & 0o700 == 0o700:
            return False
        os.chmod(_fd_path(dir_fd), stat.S_IMODE(st.st_mode) | 0o700)
        self.made_writable[rel] = (stat.S_IMODE(st.st_mode), st.st_dev, st.st_ino)
        return True

    # -- removal ------------------------------------------------------------------
    def remove(self, dir_fd: int, name: bytes, dir_rel: bytes) -> None:
        """Remove whatever is at name (a whole tree for a directory); missing is fine.

        ``dir_rel`` is the physical path of ``dir_fd``, to make it writable (and
        restore it at the end) when not root."""
        self.removed()
        try:
            self._remove(dir_fd, name)
        except PermissionError:
            if not self.writable(dir_fd, dir_rel):
                raise
            self._remove(dir_fd, name)

    def _remove(self, dir_fd: int, name: bytes) -> None:
        try:
            os.unlink(name, dir_fd=dir_fd)
            return
        except FileNotFoundError:
            return
        except IsADirectoryError:
            pass
        except PermissionError:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            if not stat.S_ISDIR(st.st_mode):
                raise
        self._remove_tree(dir_fd, name, None)

    def _open_dir_rw(self, dir_fd: int, name: bytes, keep_rel: bytes | None) -> int:
        """Open a directory to empty it; not root: make it rwx for us first.

        A directory that stays (``keep_rel``) gets its mode back at the end."""
        if self.is_root:
            return os.open(name, _DIR_READ_FLAGS, dir_fd=dir_fd)
        path_fd = os.open(name, _DIR_PATH_FLAGS, dir_fd=dir_fd)
        try:
            if keep_rel is not None:
                self.writable(path_fd, keep_rel)
            else:
                st = os.fstat(path_fd)
                if st.st_uid == self.euid and st.st_mode & 0o700 != 0o700:
                    os.chmod(_fd_path(path_fd), stat.S_IMODE(st.st_mode) | 0o700)
            return os.open(b".", _DIR_READ_FLAGS, dir_fd=path_fd)
        finally:
            os.close(path_fd)

    def _remove_tree(self, parent_fd: int, name: bytes, keep: bytes | None) -> None:
        """Remove the directory ``name`` and everything under it, iteratively.

        With ``keep`` (the directory's physical rel path), act as a whiteout: remove
        only what this layer did not write, descending into directories it did write,
        and keep the directory itself.
        """
        top = self._open_dir_rw(parent_fd, name, keep)
        stack: list[tuple[int, Iterator[str], bytes, bytes | None]] = []
        try:
            stack.append((top, iter(sorted(os.listdir(top))), name, keep))
        except BaseException:
            os.close(top)
            raise
        try:
            self._empty_tree(parent_fd, stack)
        finally:
            for fd, *_rest in stack:
                os.close(fd)

    def _empty_tree(
        self, parent_fd: int, stack: list[tuple[int, Iterator[str], bytes, bytes | None]]
    ) -> None:
        upper = self.upper
        while stack:
            fd, names, dname, drel = stack[-1]
            for entry in names:
                child = os.fsencode(entry)
                crel = None if drel is None else (drel + b"/" + child if drel else child)
                if crel is not None and crel in upper:
                    try:
                        sub = self._open_dir_rw(fd, child, crel)
                    except OSError as exc:
                        if exc.errno in (errno.ENOTDIR, errno.ELOOP):
                            continue  # a non-directory this layer wrote: keep it
                        raise
                    stack.append((sub, iter(sorted(os.listdir(sub))), child, crel))
                    break
                try:
                    os.unlink(child, dir_fd=fd)
                    continue
                except FileNotFoundError:
                    continue
                except IsADirectoryError:
                    pass
                except PermissionError:
                    st = os.stat(child, dir_fd=fd, follow_symlinks=False)
                    if not stat.S_ISDIR(st.st_mode):
                        raise
                sub = self._open_dir_rw(fd, child, None)
                stack.append((sub, iter(sorted(os.listdir(sub))), child, None))
                break
            else:
                stack.pop()
                os.close(fd)
                if drel is None:
                    os.rmdir(dname, dir_fd=stack[-1][0] if stack else parent_fd)

    # -- metadata -----------------------------------------------------------------
    def check_ids(self, hdr: TarHeader) -> None:
        if not (0 <= hdr.uid < _MAX_ID and 0 <= hdr.gid < _MAX_ID):
            raise self.invalid(f"uid/gid {hdr.uid}:{hdr.gid} out of range")

    def times(self, hdr: TarHeader) -> tuple[int, int]:
        mtime = hdr.mtime_ns
        return (mtime if hdr.atime_ns is None else hdr.atime_ns), mtime

    def set_xattrs(self, hdr: TarHeader, target: int | bytes, kind: str, *, follow: bool = False) -> None:
        """Set pax xattrs on an fd (files, dirs) or a /proc path (other types).

        A path is used without following its final component unless ``follow`` (only
        for ``/proc/self/fd/N`` itself, whose magic link must be followed)."""
        for name, value in hdr.xattrs:
            shown = name.decode("utf-8", "backslashreplace")
            if kind != "file" and kind != "dir" and name.startswith(b"user."):
                self.warn(
                    f"layer entry {_q(self.name)}: xattr {shown} ignored "
                    f"(Linux refuses user.* xattrs on a {kind})"
                )
                continue
            try:
                if isinstance(target, int) or follow:
                    os.setxattr(target, name, value)
                else:
                    os.setxattr(target, name, value, follow_symlinks=False)
            except OSError as exc:
                if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
                    self.warn(
                        f"layer entry {_q(self.name)}: xattr {shown} ignored: the "
                        "filesystem does not support extended attributes",
                        once="enotsup",
                    )
                    continue
                if exc.errno in (errno.EPERM, errno.EACCES) and (
                    name.startswith(b"trusted.") or not self.is_root
                ):
                    self.warn(
                        f"layer entry {_q(self.name)}: xattr {shown} ignored: not permitted",
                        once=f"eperm:{shown}",
                    )
                    continue
                raise

    def _parent_facts(self) -> None:
        if self._parent_gen != self.resolver.gen:
            self._parent_gen = self.resolver.gen
            self._parent_sgid = self._parent_acl = None

    def parent_sgid(self) -> bool:
        """Is the directory last resolved setgid (new files then take its group)?"""
        self._parent_facts()
        if self._parent_sgid is None:
            self._parent_sgid = bool(os.fstat(self.resolver.fd).st_mode & stat.S_ISGID)
        return self._parent_sgid

    def parent_acl(self) -> bool:
        """Has the directory last resolved a default ACL (which overrides the umask)?"""
        self._parent_facts()
        if self._parent_acl is None:
            try:
                os.getxattr(_fd_path(self.resolver.fd), "system.posix_acl_default")
                self._parent_acl = True
            except OSError:
                self._parent_acl = False
        return self._parent_acl

    def meta_fd(self, fd: int, hdr: TarHeader, kind: str, *, fresh: bool, mode_set: bool) -> None:
        """Owner, xattrs, mode, times through an open (non-O_PATH) descriptor.

        ``fresh``: we just created the file in the directory last resolved, so its owner
        is ours unless that directory is setgid.  ``mode_set``: it was created with its
        final mode already (see regular()).
        """
        if self.same_owner and (
            not fresh or hdr.uid != self.euid or hdr.gid != self.egid or self.parent_sgid()
        ):
            os.fchown(fd, hdr.uid, hdr.gid)
        if hdr.xattrs:
            self.set_xattrs(hdr, fd, kind)
        if not mode_set:
            os.fchmod(fd, hdr.mode)
        os.utime(fd, ns=self.times(hdr))

    # -- entries ------------------------------------------------------------------
    def entry(self, hdr: TarHeader) -> None:
        name = hdr.name
        self.name = name
        if b"\0" in name or b"\0" in hdr.linkname:
            raise self.invalid("NUL byte in name")
        comps = _clean(name)
        typ = hdr.type
        if not comps:
            if typ != _DIR:
                raise self.invalid(
                    "resolves to the root directory but is not a directory "
                    "(refusing to change the type of the root)"
                )
            self.check_ids(hdr)
            self.directory_meta(self.root_fd, b".", b"", hdr, replaced_whiteout=False)
            return
        base = comps[-1]
        if base.startswith(_WH_PREFIX):
            self.whiteout(comps, hdr)
            return
        for comp in comps[:-1]:
            if comp.startswith(_WH_META_PREFIX):
                return  # inside aufs metadata (.wh..wh.plnk etc.): not content
        if typ == _REG:
            self.check_ids(hdr)
            self.regular(comps, hdr)
        elif typ in (_DIR, _GNU_DUMPDIR):
            self.check_ids(hdr)
            self.directory(comps, hdr)
        elif typ == _SYM:
            self.check_ids(hdr)
            self.symlink(comps, hdr)
        elif typ == _LNK:
            self.hardlink(comps, hdr)
        elif typ in (_CHR, _BLK, _FIFO):
            self.check_ids(hdr)
            self.special(comps, hdr)
        else:
            what = _TYPE_NAMES.get(typ, f"unknown type {typ!r}")
            self.warn(f"layer entry {_q(name)}: skipped ({what})")

    def create_in(self, dir_fd: int, rel: bytes, op: Callable[[], int]) -> int:
        """Run a creating op in dir_fd; non-root retries once after making it writable."""
        try:
            return op()
        except PermissionError:
            if not self.writable(dir_fd, rel):
                raise
            return op()

    def regular(self, comps: list[bytes], hdr: TarHeader) -> None:
        pfd, prel = self.parent(comps[:-1])
        base = comps[-1]
        rel = prel + b"/" + base if prel else base

        # Create with the final mode when the umask cannot change it (no special bits,
        # no default ACL), which saves an fchmod per file; else 0600 and fchmod later.
        mode = hdr.mode
        direct = not (mode & 0o7000 or mode & self.umask) and not self.parent_acl()
        initial = mode if direct else 0o600

        def create() -> int:
            return os.open(base, _FILE_CREATE_FLAGS, initial, dir_fd=pfd)

        try:
            fd = self.create_in(pfd, prel, create)
        except FileExistsError:
            self.remove(pfd, base, prel)
            fd = self.create_in(pfd, prel, create)
        try:
            if hdr.sparse is None:
                if hdr.size:
                    self.reader.write_data_to(fd, hdr.size)
            else:
                for offset, length in hdr.sparse:
                    os.lseek(fd, offset, os.SEEK_SET)
                    self.reader.write_data_to(fd, length)
                os.ftruncate(fd, hdr.realsize)
            self.meta_fd(fd, hdr, "file", fresh=True, mode_set=direct)
        finally:
            os.close(fd)
        self.mark_upper(rel)

    def directory(self, comps: list[bytes], hdr: TarHeader) -> None:
        pfd, prel = self.parent(comps[:-1])
        base = comps[-1]
        rel = prel + b"/" + base if prel else base
        replaced_whiteout = False

        def create() -> int:
            os.mkdir(base, 0o700, dir_fd=pfd)
            return 0

        try:
            self.create_in(pfd, prel, create)
        except FileExistsError:
            st = os.stat(base, dir_fd=pfd, follow_symlinks=False)
            if not stat.S_ISDIR(st.st_mode):
                replaced_whiteout = self.overlay and stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
                self.remove(pfd, base, prel)
                self.create_in(pfd, prel, create)
        self.directory_meta(pfd, base, rel, hdr, replaced_whiteout=replaced_whiteout)
        self.mark_upper(rel)

    def directory_meta(
        self, pfd: int, base: bytes, rel: bytes, hdr: TarHeader, *, replaced_whiteout: bool
    ) -> None:
        """Owner and xattrs now; mode and times at the end (see finish())."""
        try:
            fd = os.open(base, _DIR_READ_FLAGS, dir_fd=pfd)
            target: int | bytes = fd
        except PermissionError:  # not root, no read permission: go through O_PATH
            fd = os.open(base, _DIR_PATH_FLAGS, dir_fd=pfd)
            target = _fd_path(fd)
        try:
            if self.same_owner:
                os.chown(target, hdr.uid, hdr.gid)
            if hdr.xattrs:
                self.set_xattrs(hdr, target, "dir", follow=True)
            if replaced_whiteout:
                # overlayfs: a directory replacing a whiteout hides the lower one.
                os.setxattr(target, self.opaque_xattr, b"y")
            st = os.fstat(fd)
        finally:
            os.close(fd)
        atime, mtime = self.times(hdr)
        self.dirs[rel] = _DirFix(hdr.mode, mtime, atime, st.st_dev, st.st_ino)

    def symlink(self, comps: list[bytes], hdr: TarHeader) -> None:
        pfd, prel = self.parent(comps[:-1])
        base = comps[-1]
        rel = prel + b"/" + base if prel else base
        target = hdr.linkname
        if not target:
            raise self.invalid("symlink with an empty target")

        def create() -> int:
            os.symlink(target, base, dir_fd=pfd)
            return 0

        try:
            self.create_in(pfd, prel, create)
        except FileExistsError:
            self.remove(pfd, base, prel)
            self.create_in(pfd, prel, create)
        if self.same_owner:
            os.chown(base, hdr.uid, hdr.gid, dir_fd=pfd, follow_symlinks=False)
        if hdr.xattrs:
            self.set_xattrs(hdr, _fd_path(pfd, base), "symlink")
        # No chmod: a symlink has no mode of its own, and chmod would follow it.
        os.utime(base, ns=self.times(hdr), dir_fd=pfd, follow_symlinks=False)
        self.mark_upper(rel)

    def hardlink(self, comps: list[bytes], hdr: TarHeader) -> None:
        tcomps = _clean(hdr.linkname)
        if not tcomps:
            raise self.invalid("hardlink to the root directory")
        links = self.link_resolver
        try:
            found = links.resolve(tcomps[:-1], create=False)
        except NotADirectoryError:
            found = False
        tname = tcomps[-1]
        try:
            if not found:
                raise FileNotFoundError
            tst = os.stat(tname, dir_fd=links.fd, follow_symlinks=False)
        except FileNotFoundError:
            if self.overlay:
                # The upper dir only holds this layer: a link to a lower file would need
                # a copy-up first, which only a mounted overlay can do.
                raise UnpackError(
                    f"layer entry {_q(self.name)}: hardlink target {_q(hdr.linkname)} is not in "
                    "this layer (overlay mode cannot link to files of lower layers)"
                ) from None
            raise self.invalid(
                f"hardlink target {_q(hdr.linkname)} does not exist in the layer or below"
            ) from None
        if stat.S_ISDIR(tst.st_mode):
            raise self.invalid(f"hardlink target {_q(hdr.linkname)} is a directory")
        pfd, prel = self.parent(comps[:-1])
        base = comps[-1]
        rel = prel + b"/" + base if prel else base

        def create() -> int:
            # linkat() without AT_SYMLINK_FOLLOW: a link to a symlink links the symlink.
            os.link(tname, base, src_dir_fd=links.fd, dst_dir_fd=pfd, follow_symlinks=False)
            return 0

        try:
            self.create_in(pfd, prel, create)
        except FileExistsError:
            est = os.stat(base, dir_fd=pfd, follow_symlinks=False)
            if (est.st_dev, est.st_ino) != (tst.st_dev, tst.st_ino):
                self.remove(pfd, base, prel)
                self.create_in(pfd, prel, create)
        # Like umoci (and unlike containerd), the hardlink header's mode, owner and
        # times are NOT applied: they belong to the shared inode, which its first entry
        # already set.  Re-applying would also let a hardlink header chmod an inode
        # that is really a symlink's.
        self.mark_upper(rel)

    def special(self, comps: list[bytes], hdr: TarHeader) -> None:
        typ = hdr.type
        kind = {_CHR: "character device", _BLK: "block device", _FIFO: "fifo"}[typ]
        if typ != _FIFO:
            if not (0 <= hdr.devmajor < _MAX_MAJOR and 0 <= hdr.devminor < _MAX_MINOR):
                raise self.invalid(f"device number {hdr.devmajor}:{hdr.devminor} out of range")
            if not self.same_owner:
                self.warn(f"layer entry {_q(self.name)}: {kind} skipped (not applying owners)")
                return
        pfd, prel = self.parent(comps[:-1])
        base = comps[-1]
        rel = prel + b"/" + base if prel else base
        fmt = {_CHR: stat.S_IFCHR, _BLK: stat.S_IFBLK, _FIFO: stat.S_IFIFO}[typ]
        dev = os.makedev(hdr.devmajor, hdr.devminor) if typ != _FIFO else 0

        def create() -> int:
            os.mknod(base, fmt | 0o600, dev, dir_fd=pfd)
            return 0

        try:
            try:
                self.create_in(pfd, prel, create)
            except FileExistsError:
                self.remove(pfd, base, prel)
                self.create_in(pfd, prel, create)
        except PermissionError:
            if typ == _FIFO:
                raise
            self.warn(f"layer entry {_q(self.name)}: {kind} skipped (mknod not permitted)")
            return
        self.meta_node(pfd, base, hdr, kind)
        self.mark_upper(rel)

    def meta_node(self, pfd: int, base: bytes, hdr: TarHeader, kind: str) -> None:
        """Metadata of a device or fifo: never opened for I/O, only via O_PATH."""
        fd = os.open(base, os.O_PATH | os.O_NOFOLLOW | _O_CLOEXEC, dir_fd=pfd)
        try:
            mode = os.fstat(fd).st_mode
            if stat.S_ISLNK(mode) or stat.S_ISDIR(mode) or stat.S_ISREG(mode):
                raise OSError(errno.EEXIST, "node replaced while being created")
            if self.same_owner:
                os.chown(base, hdr.uid, hdr.gid, dir_fd=pfd, follow_symlinks=False)
            if hdr.xattrs:
                self.set_xattrs(hdr, _fd_path(pfd, base), kind)
            os.chmod(_fd_path(fd), hdr.mode)
        finally:
            os.close(fd)
        os.utime(base, ns=self.times(hdr), dir_fd=pfd, follow_symlinks=False)

    # -- whiteouts ----------------------------------------------------------------
    def whiteout(self, comps: list[bytes], hdr: TarHeader) -> None:
        base = comps[-1]
        opaque = base == _WH_OPAQUE
        if not opaque and base.startswith(_WH_META_PREFIX):
            return  # other aufs metadata (.wh..wh.plnk, .wh..wh.aufs): not content
        victim = base[len(_WH_PREFIX) :]
        if not opaque and victim in (b"", b".", b".."):
            raise self.invalid("invalid whiteout name")
        pfd, prel = self.parent(comps[:-1])
        self.mark_upper(prel)
        if self.overlay:
            self.overlay_whiteout(pfd, prel, None if opaque else victim, hdr)
            return
        before = os.fstat(pfd)
        if opaque:
            self._remove_tree(pfd, b".", prel)
            self.removed()
        else:
            vrel = prel + b"/" + victim if prel else victim
            if vrel in self.upper:
                try:
                    self._remove_tree(pfd, victim, vrel)
                except OSError as exc:
                    if exc.errno not in (errno.ENOTDIR, errno.ELOOP, errno.ENOENT):
                        raise
                self.removed()
            else:
                self.remove(pfd, victim, prel)
        # A whiteout must not change its directory's times (umoci checks this too).
        os.utime(
            b".",
            ns=(before.st_atime_ns, before.st_mtime_ns),
            dir_fd=pfd,
            follow_symlinks=False,
        )

    def overlay_whiteout(self, pfd: int, prel: bytes, victim: bytes | None, hdr: TarHeader) -> None:
        if victim is None:
            os.setxattr(_fd_path(pfd), self.opaque_xattr, b"y")
            return
        vrel = prel + b"/" + victim if prel else victim
        if vrel in self.upper:
            # Written by this layer: the whiteout only hides what is below, which for
            # a directory means making it opaque.
            st = os.stat(victim, dir_fd=pfd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                os.setxattr(_fd_path(pfd, victim), self.opaque_xattr, b"y", follow_symlinks=False)
            return
        self.remove(pfd, victim, prel)
        os.mknod(victim, stat.S_IFCHR, 0, dir_fd=pfd)
        if self.same_owner:
            self.check_ids(hdr)
            os.chown(victim, hdr.uid, hdr.gid, dir_fd=pfd, follow_symlinks=False)

    # -- the end ------------------------------------------------------------------
    def finish(self) -> None:
        """Apply directory modes and times, deepest first, through descriptors."""
        fixes: list[tuple[bytes, int, tuple[int, int] | None, int, int]] = [
            (rel, fix.mode, (fix.atime_ns, fix.mtime_ns), fix.dev, fix.ino) for rel, fix in self.dirs.items()
        ]
        for rel, (mode, dev, ino) in self.made_writable.items():
            if rel not in self.dirs:
                fixes.append((rel, mode, None, dev, ino))
        fixes.sort(key=lambda f: -1 if not f[0] else f[0].count(b"/"), reverse=True)
        resolver = self.resolver
        for rel, mode, times, dev, ino in fixes:
            self.name = rel or b"."
            comps = rel.split(b"/") if rel else []
            try:
                if not resolver.resolve(comps[:-1], create=False):
                    continue
                fd = os.open(comps[-1] if comps else b".", _DIR_PATH_FLAGS, dir_fd=resolver.fd)
            except OSError as exc:
                if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                    continue  # replaced later in the layer: its new entry rules
                raise
            try:
                st = os.fstat(fd)
                if (st.st_dev, st.st_ino) != (dev, ino):
                    continue
                path = _fd_path(fd)
                os.chmod(path, mode)
                if times is not None:
                    os.utime(path, ns=times)
            finally:
                os.close(fd)

    reader: _TarReader


def apply_layer(
    root: str | os.PathLike[str],
    tar_stream: BinaryIO,
    options: ApplyOptions | None = None,
) -> ApplyResult:
    """Apply the uncompressed layer tar ``tar_stream`` onto the directory ``root``.

    The stream is read once, forward only, to its very end (the diffID covers any
    padding after the end-of-archive blocks).  Malformed or unsafe archives raise
    :class:`InvalidArchive`; failures to write raise :class:`UnpackError`; both name
    the tar entry.  The tree under ``root`` is then partially applied: throw it away.
    """
    opts = options if options is not None else ApplyOptions()
    if opts.whiteouts not in ("delete", "overlay"):
        raise InvalidArgument(f"unknown whiteout mode {opts.whiteouts!r} (valid: delete, overlay)")
    hashing = HashingReader(tar_stream)
    try:
        root_fd = os.open(root, _DIR_READ_FLAGS & ~os.O_NOFOLLOW)
    except OSError as exc:
        raise UnpackError(f"cannot open layer root {_q(os.fsdecode(root))}: {exc.strerror}") from exc
    applier = _Applier(root_fd, opts)
    reader = applier.reader = _TarReader(hashing)
    entries = 0
    on_progress = opts.on_progress
    try:
        while True:
            try:
                hdr = reader.next()
            except OSError as exc:  # reading the stream itself failed
                raise UnpackError(f"reading the layer: {exc.strerror or exc}") from exc
            if hdr is None:
                break
            try:
                applier.entry(hdr)
            except OSError as exc:
                detail = exc.strerror or str(exc)
                if isinstance(exc.filename, (str, bytes)) and exc.errno in (errno.ENOTDIR, errno.ELOOP):
                    detail = f"{detail} ({_q(exc.filename)})"
                raise UnpackError(f"layer entry {_q(hdr.name)}: {detail}") from exc
            except (ValueError, OverflowError) as exc:  # a name or number os.* refuses
                raise InvalidArchive(f"layer entry {_q(hdr.name)}: {exc}") from exc
            entries += 1
            if on_progress is not None:
                on_progress(entries, reader.offset)
        try:
            applier.finish()
        except OSError as exc:
            raise UnpackError(
                f"layer entry {_q(applier.name)}: setting directory metadata: {exc.strerror}"
            ) from exc
        try:
            hashing.drain()
        except OSError as exc:
            raise UnpackError(f"reading the layer: {exc.strerror or exc}") from exc
    finally:
        applier.close()
        os.close(root_fd)
    return ApplyResult(entries=entries, size=hashing.size, diff_id=hashing.digest)
