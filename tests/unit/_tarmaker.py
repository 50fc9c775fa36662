"""Build layer tars in code for the archive tests, malicious ones included.

``TarMaker`` writes whatever names it is given (``../x``, ``/etc/passwd``, ``..``),
which is the point: the tests feed these to ``apply_layer`` and check nothing escapes.
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ctrpy.archive import ApplyOptions, ApplyResult, apply_layer

MTIME = 1_600_000_000  # a fixed, recognisable time


class TarMaker:
    """Chainable tar builder: ``TarMaker().dir("etc").file("etc/x", b"1").build()``."""

    def __init__(self, fmt: int = tarfile.PAX_FORMAT) -> None:
        self._buf = io.BytesIO()
        self._tar = tarfile.open(  # noqa: SIM115 - closed by build()
            fileobj=self._buf,
            mode="w",
            format=fmt,
            encoding="utf-8",
            errors="surrogateescape",
        )
        self.uid = os.getuid()
        self.gid = os.getgid()

    def _info(
        self,
        name: str,
        kind: bytes,
        mode: int,
        *,
        uid: int | None = None,
        gid: int | None = None,
        mtime: float = MTIME,
        xattrs: Mapping[str, bytes | str] | None = None,
        pax: Mapping[str, str] | None = None,
    ) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.mode = mode
        info.uid = self.uid if uid is None else uid
        info.gid = self.gid if gid is None else gid
        info.mtime = mtime
        info.uname = info.gname = ""
        headers: dict[str, str] = dict(pax or {})
        for key, value in (xattrs or {}).items():
            raw = value.encode() if isinstance(value, str) else value
            headers["SCHILY.xattr." + key] = raw.decode("utf-8", "surrogateescape")
        info.pax_headers = headers
        return info

    def dir(self, name: str, mode: int = 0o755, **kw: Any) -> TarMaker:
        self._tar.addfile(self._info(name, tarfile.DIRTYPE, mode, **kw))
        return self

    def file(self, name: str, data: bytes = b"", mode: int = 0o644, **kw: Any) -> TarMaker:
        info = self._info(name, tarfile.REGTYPE, mode, **kw)
        info.size = len(data)
        self._tar.addfile(info, io.BytesIO(data))
        return self

    def symlink(self, name: str, target: str, **kw: Any) -> TarMaker:
        info = self._info(name, tarfile.SYMTYPE, kw.pop("mode", 0o777), **kw)
        info.linkname = target
        self._tar.addfile(info)
        return self

    def hardlink(self, name: str, target: str, **kw: Any) -> TarMaker:
        info = self._info(name, tarfile.LNKTYPE, kw.pop("mode", 0o644), **kw)
        info.linkname = target
        self._tar.addfile(info)
        return self

    def device(
        self, name: str, kind: bytes, major: int = 0, minor: int = 0, mode: int = 0o666, **kw: Any
    ) -> TarMaker:
        info = self._info(name, kind, mode, **kw)
        info.devmajor, info.devminor = major, minor
        self._tar.addfile(info)
        return self

    def chardev(self, name: str, major: int, minor: int, **kw: Any) -> TarMaker:
        return self.device(name, tarfile.CHRTYPE, major, minor, **kw)

    def blockdev(self, name: str, major: int, minor: int, **kw: Any) -> TarMaker:
        return self.device(name, tarfile.BLKTYPE, major, minor, **kw)

    def fifo(self, name: str, **kw: Any) -> TarMaker:
        return self.device(name, tarfile.FIFOTYPE, **kw)

    def entry(self, name: str, kind: bytes, data: bytes = b"", mode: int = 0o644, **kw: Any) -> TarMaker:
        """An entry of any type flag, with data (e.g. unknown types)."""
        info = self._info(name, kind, mode, **kw)
        info.size = len(data)
        self._tar.addfile(info, io.BytesIO(data) if data else None)
        return self

    def whiteout(self, path: str) -> TarMaker:
        """``dir/.wh.name`` for ``dir/name``."""
        head, _, base = path.rpartition("/")
        return self.file((head + "/" if head else "") + ".wh." + base)

    def opaque(self, directory: str) -> TarMaker:
        return self.file(directory.rstrip("/") + "/.wh..wh..opq" if directory else ".wh..wh..opq")

    def build(self) -> bytes:
        self._tar.close()
        return self._buf.getvalue()


def apply_bytes(root: Path, data: bytes, **options: Any) -> ApplyResult:
    """Apply a tar given as bytes to ``root`` (created if missing)."""
    root.mkdir(exist_ok=True)
    return apply_layer(root, io.BytesIO(data), ApplyOptions(**options))


def snapshot(base: Path, exclude: Path) -> dict[str, tuple[Any, ...]]:
    """Everything under ``base`` except ``exclude``: path -> (mode, uid, gid, size, mtime, content)."""
    result: dict[str, tuple[Any, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(base):
        if Path(dirpath) == exclude:
            dirnames[:] = []
            continue
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            if path == exclude:
                continue
            st = path.lstat()
            if path.is_symlink():
                content: Any = os.readlink(path)
            elif path.is_file():
                content = path.read_bytes()
            else:
                content = None
            result[str(path.relative_to(base))] = (
                st.st_mode,
                st.st_uid,
                st.st_gid,
                st.st_size if not path.is_dir() else 0,
                st.st_mtime_ns if not path.is_dir() else 0,
                content,
            )
        st = Path(dirpath).lstat()
        result[str(Path(dirpath).relative_to(base)) + "/"] = (st.st_mode, st.st_uid, st.st_gid)
    return result


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
    checksum: bytes | None = None,
) -> bytes:
    """A hand-made ustar header block, for fields tarfile refuses to write."""
    block = bytearray(512)
    block[0 : len(name)] = name
    block[100:108] = mode
    block[108:116] = uid
    block[116:124] = gid
    block[124:136] = b"%011o\0" % size
    block[136:148] = mtime
    block[148:156] = b" " * 8
    block[156:157] = kind
    block[157 : 157 + len(linkname)] = linkname
    block[257:265] = b"ustar\x0000"
    if checksum is None:
        checksum = b"%06o\0 " % sum(block)
    block[148:156] = checksum
    return bytes(block)


def pad(data: bytes) -> bytes:
    return data + bytes(-len(data) % 512)


class Sandbox:
    """``tmp/root`` to apply layers into, next to ``tmp/outside`` holding a sentinel.

    ``assert_outside_unchanged()`` checks that nothing under ``tmp`` but the root was
    created, removed or modified since the sandbox was made.
    """

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.root = tmp / "root"
        self.root.mkdir()
        self.outside = tmp / "outside"
        self.outside.mkdir()
        self.sentinel = self.outside / "sentinel"
        self.sentinel.write_bytes(b"host data")
        self.sentinel.chmod(0o640)
        (self.outside / "subdir").mkdir(mode=0o750)
        self._before = snapshot(tmp, exclude=self.root)

    def apply(self, data: bytes, **options: Any) -> ApplyResult:
        return apply_bytes(self.root, data, **options)

    def assert_outside_unchanged(self) -> None:
        assert snapshot(self.tmp, exclude=self.root) == self._before
        assert self.sentinel.stat().st_nlink == 1
