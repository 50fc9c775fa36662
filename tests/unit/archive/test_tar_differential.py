"""Differential tests of the tar reader (``ctrpy/archive/tar.py``): the same streams go to
ctrpy's ``iter_tar``, to Python's ``tarfile`` in stream mode (``r|``) and to GNU tar
(``tar -tv --full-time --numeric-owner``, and ``tar -x`` into a temp dir for contents and
xattr values), and the three must agree on every entry's name, type, size, link target,
mode, uid/gid, mtime, device numbers, xattrs and contents.

ctrpy keeps its own strict forward-only reader because tarfile silently ends an archive on
a bad header after offset 0; the malformed cases at the end pin where the readers disagree:
tarfile stops without a word, GNU tar complains and exits non-zero, ctrpy raises
``InvalidArchive`` naming the offset or the entry.

Streams are built with ``tests.builders`` (ustar, pax, GNU, raw headers) and with
``tar -c`` itself (GNU and pax sparse files, files from a real directory).
"""

from __future__ import annotations

import calendar
import io
import os
import re
import shutil
import stat
import subprocess
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ctrpy.archive import iter_tar
from ctrpy.archive.tar import BLK, CHR, DIR, FIFO, LNK, REG, SYM
from ctrpy.errors import InvalidArchive
from tests.builders import (
    Entry,
    Tar,
    blockdev,
    chardev,
    dir,
    fifo,
    file,
    hardlink,
    header_checksum,
    layer_tar,
    pad,
    raw_header,
    symlink,
)
from tests.helpers import GNU_SPARSE_FORMATS, gnu_tar_create, raises_naming, sparse_tree

pytestmark = pytest.mark.skipif(shutil.which("tar") is None, reason="GNU tar is not installed")

GNU_ENV = {**os.environ, "TZ": "UTC", "LC_ALL": "C"}


@dataclass(frozen=True)
class Member:
    """One entry as a reader reports it; ``xattrs`` maps a name to its value (GNU tar's
    listing shows only value lengths: compared as such)."""

    name: str
    type: str
    size: int = 0
    linkname: str = ""
    mode: int = 0
    uid: int = 0
    gid: int = 0
    mtime: int = 0
    dev: tuple[int, int] | None = None
    xattrs: dict[str, bytes | int] = field(default_factory=dict, compare=False)

    def without_xattr_values(self) -> tuple[object, ...]:
        return (self.name, self.type, self.size, self.linkname, self.mode, self.uid, self.gid, self.mtime, self.dev)


def _text(name: bytes | str) -> str:
    text = name.decode("utf-8", "surrogateescape") if isinstance(name, bytes) else name
    return text.rstrip("/") or text


# --------------------------------------------------------------------------- the three readers
_CTRPY_TYPES = {REG: "file", LNK: "hardlink", SYM: "symlink", CHR: "char", BLK: "block", DIR: "dir", FIFO: "fifo"}


def read_ctrpy(data: bytes, contents_too: bool = True) -> tuple[list[Member], dict[str, bytes]]:
    """ctrpy's iter_tar: the members, and every regular file's contents (sparse holes filled)."""
    members, contents = [], {}
    for hdr, read in iter_tar(io.BytesIO(data)):
        kind = _CTRPY_TYPES[hdr.type]
        name = _text(hdr.name)
        if kind == "file" and contents_too:
            stored = read(hdr.size)
            if hdr.sparse is not None:
                body = bytearray(hdr.realsize)
                pos = 0
                for offset, length in hdr.sparse:
                    body[offset : offset + length] = stored[pos : pos + length]
                    pos += length
                stored = bytes(body)
            contents[name] = stored
        members.append(Member(
            name, kind, hdr.realsize if kind == "file" else 0, _text(hdr.linkname) if hdr.linkname else "",
            hdr.mode, hdr.uid, hdr.gid, hdr.mtime_ns // 1_000_000_000,
            (hdr.devmajor, hdr.devminor) if kind in ("char", "block") else None,
            {_text(k): v for k, v in hdr.xattrs},
        ))
    return members, contents


_TARFILE_TYPES = {
    tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.CONTTYPE: "file", tarfile.GNUTYPE_SPARSE: "file",
    tarfile.LNKTYPE: "hardlink", tarfile.SYMTYPE: "symlink", tarfile.CHRTYPE: "char", tarfile.BLKTYPE: "block",
    tarfile.DIRTYPE: "dir", tarfile.FIFOTYPE: "fifo",
}


def read_tarfile(data: bytes, contents_too: bool = True) -> tuple[list[Member], dict[str, bytes]]:
    """Python's tarfile in stream mode (``r|``), as a pipe would be read."""
    members, contents = [], {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r|", encoding="utf-8", errors="surrogateescape") as tf:
        for ti in tf:
            kind = _TARFILE_TYPES[ti.type]
            name = _text(ti.name)
            if kind == "file" and contents_too:
                f = tf.extractfile(ti)
                assert f is not None
                contents[name] = f.read()
            xattrs: dict[str, bytes | int] = {
                k[len("SCHILY.xattr."):]: v.encode("utf-8", "surrogateescape")
                for k, v in ti.pax_headers.items() if k.startswith("SCHILY.xattr.")
            }
            members.append(Member(
                name, kind, ti.size if kind == "file" else 0, _text(ti.linkname) if ti.linkname else "",
                ti.mode & 0o7777, ti.uid, ti.gid, int(ti.mtime // 1),
                (ti.devmajor, ti.devminor) if kind in ("char", "block") else None, xattrs,
            ))
    return members, contents


# (GNU tar pads each time to the widest it has printed so far: after "12:00:00.123456789",
# a file whose nanoseconds end in zeros lists as "12:00:00.5        name")
_GNU_LINE = re.compile(
    r"^(?P<mode>[-hdlcbp][-rwxsStT]{9})[*+.]?\s+(?P<uid>\d+)/(?P<gid>\d+)\s+"
    r"(?P<size>\d+|\d+,\s*\d+)\s+(?P<date>\d{4}-\d\d-\d\d) (?P<time>\d\d:\d\d:\d\d)(?:\.\d+)? +(?P<rest>.*)$"
)
_GNU_TYPES = {"-": "file", "h": "hardlink", "d": "dir", "l": "symlink", "c": "char", "b": "block", "p": "fifo"}


def _perm_bits(perm: str) -> int:
    bits = 0
    for i, ch in enumerate(perm):
        bit = 1 << (8 - i)  # r w x of user, group, other
        if ch in "rwxst":
            bits |= bit
        if ch in "sStT":  # the x column also carries setuid, setgid, sticky
            bits |= (stat.S_ISUID, stat.S_ISGID, stat.S_ISVTX)[i // 3]
    return bits


@dataclass
class GnuListing:
    members: list[Member]
    returncode: int
    stderr: str


def gnu_list(data: bytes) -> GnuListing:
    """``tar --xattrs -tvv --full-time --numeric-owner``: one Member per entry line, xattr
    lengths from the ``  x: LEN NAME`` lines under it."""
    proc = subprocess.run(
        ["tar", "--xattrs", "--xattrs-include=*", "--quoting-style=literal", "-tvv", "--full-time", "--numeric-owner", "-f", "-"],
        input=data, capture_output=True, env=GNU_ENV, check=False,
    )
    members: list[Member] = []
    for line in proc.stdout.decode("utf-8", "surrogateescape").splitlines():
        if line.startswith("  x: "):
            length, name = line[5:].split(" ", 1)
            members[-1].xattrs[name] = int(length)
            continue
        m = _GNU_LINE.match(line)
        assert m, f"unparsed GNU tar line {line!r}"
        kind = _GNU_TYPES[m["mode"][0]]
        rest, link = m["rest"], ""
        if kind == "symlink":
            rest, link = rest.split(" -> ", 1)
        elif kind == "hardlink":
            rest, link = rest.split(" link to ", 1)
        size, dev = 0, None
        if kind in ("char", "block"):
            major, minor = m["size"].split(",")
            dev = (int(major), int(minor.strip()))
        elif kind == "file":
            size = int(m["size"])
        mtime = calendar.timegm(time.strptime(f"{m['date']} {m['time']}", "%Y-%m-%d %H:%M:%S"))
        members.append(Member(
            _text(rest), kind, size, _text(link) if link else "", _perm_bits(m["mode"][1:]),
            int(m["uid"]), int(m["gid"]), mtime, dev, {},
        ))
    return GnuListing(members, proc.returncode, proc.stderr.decode("utf-8", "replace"))


def gnu_extract(data: bytes, dest: Path) -> dict[str, tuple[bytes, dict[str, bytes]]]:
    """``tar -x --xattrs`` into ``dest``: every regular file's contents and user xattrs."""
    dest.mkdir()
    subprocess.run(
        ["tar", "-x", "--xattrs", "--xattrs-include=user.*", "--numeric-owner", "-C", str(dest), "-f", "-"],
        input=data, capture_output=True, env=GNU_ENV, check=True,
    )
    out = {}
    for path in sorted(dest.rglob("*")):
        if path.is_file() and not path.is_symlink():
            xattrs = {n: os.getxattr(path, n, follow_symlinks=False) for n in os.listxattr(path, follow_symlinks=False)}
            out[str(path.relative_to(dest))] = (path.read_bytes(), xattrs)
    return out


def assert_all_agree(data: bytes, *, contents_too: bool = True) -> list[Member]:
    """ctrpy, tarfile and GNU tar read ``data`` the same way; returns ctrpy's members.
    ``contents_too=False`` compares the headers only (for a huge sparse file)."""
    ours, our_contents = read_ctrpy(data, contents_too)
    theirs, their_contents = read_tarfile(data, contents_too)
    gnu = gnu_list(data)
    assert gnu.returncode == 0, gnu.stderr
    assert ours == theirs
    assert [m.xattrs for m in ours] == [m.xattrs for m in theirs]
    assert our_contents == their_contents
    assert [m.without_xattr_values() for m in ours] == [m.without_xattr_values() for m in gnu.members]
    assert [{k: len(v) for k, v in m.xattrs.items() if isinstance(v, bytes)} for m in ours] == [
        m.xattrs for m in gnu.members
    ]
    return ours


# --------------------------------------------------------------------------- streams the readers agree on
def features(**kw: int) -> list[Entry]:
    """One of each entry type, with owners, modes, times and (pax) xattrs."""
    return [
        dir("etc", 0o755, mtime=1_500_000_000),
        file("etc/hello", b"hello\n", 0o644, uid=1000, gid=1001),
        file("bin/su", b"#!/bin/false\n", 0o4755),
        file("bin/sg", b"#!/bin/false\n", 0o2711),
        dir("tmp", 0o1777),
        symlink("etc/link", "/etc/hello"),
        hardlink("etc/hard", "etc/hello", uid=1000, gid=1001),
        chardev("dev/null", 1, 3),
        blockdev("dev/loop7", 7, 7),
        fifo("run/pipe", 0o600),
        file("empty"),
        file("big", bytes(range(256)) * 100, mtime=1_234_567_890, **kw),
    ]


@pytest.mark.parametrize(
    "fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT], ids=["ustar", "gnu", "pax"]
)
def test_every_entry_type_reads_the_same(fmt: int) -> None:
    members = assert_all_agree(layer_tar(features(), format=fmt))
    assert [m.type for m in members][:10] == [
        "dir", "file", "file", "file", "dir", "symlink", "hardlink", "char", "block", "fifo",
    ]


def test_pax_xattrs_read_the_same() -> None:
    entries = [
        file("f", b"x", xattrs={"user.comment": b"\x00binary\xff", "security.capability": b"\x01\x00\x00\x02"}),
        dir("d", xattrs={"user.empty": b""}),
    ]
    members = assert_all_agree(layer_tar(entries))
    assert members[0].xattrs == {"user.comment": b"\x00binary\xff", "security.capability": b"\x01\x00\x00\x02"}


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT], ids=["gnu", "pax"])
def test_long_names_and_long_link_names_read_the_same(fmt: int) -> None:
    deep = "/".join(["component-" + "x" * 40] * 8)  # over 255 bytes: no ustar prefix can hold it
    entries = [
        dir(deep),
        file(deep + "/file", b"deep"),
        symlink("sym", "t" * 300),
        hardlink("hl", deep + "/file"),
    ]
    members = assert_all_agree(layer_tar(entries, format=fmt))
    assert members[1].name == deep + "/file" and members[2].linkname == "t" * 300


def test_a_ustar_prefix_reads_the_same() -> None:
    members = assert_all_agree(layer_tar([file("p" * 120 + "/" + "n" * 80, b"x")], format=tarfile.USTAR_FORMAT))
    assert members[0].name == "p" * 120 + "/" + "n" * 80


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT], ids=["gnu", "pax"])
def test_non_ascii_names_read_the_same(fmt: int) -> None:
    entries = [dir("données"), file("données/日本語.txt", b"x"), symlink("ü", "日本語")]
    members = assert_all_agree(layer_tar(entries, format=fmt))
    assert [m.name for m in members] == ["données", "données/日本語.txt", "ü"]


def test_large_owner_ids_read_the_same_from_pax_records() -> None:
    members = assert_all_agree(layer_tar([file("f", b"x", uid=(1 << 31) - 1, gid=3_000_000)]))
    assert (members[0].uid, members[0].gid) == ((1 << 31) - 1, 3_000_000)


def test_base256_numbers_read_the_same() -> None:
    entries = [file("f", b"x", uid=1 << 22, gid=1 << 23, mtime=8**11 + 5)]  # beyond what octal fields hold
    data = layer_tar(entries, format=tarfile.GNU_FORMAT)
    assert data[108] & 0x80 and data[116] & 0x80 and data[136] & 0x80  # base-256 fields, not pax
    members = assert_all_agree(data)
    assert (members[0].uid, members[0].gid, members[0].mtime) == (1 << 22, 1 << 23, 8**11 + 5)


def test_a_pax_fractional_mtime_reads_as_the_same_second() -> None:
    members = assert_all_agree(layer_tar([file("f", b"x", pax={"mtime": "1600000000.987654321"})]))
    assert members[0].mtime == 1_600_000_000


def test_an_empty_archive_reads_the_same() -> None:
    assert assert_all_agree(bytes(1024)) == []
    assert assert_all_agree(bytes(10240)) == []


def test_an_archive_without_end_blocks_reads_the_same() -> None:
    members = assert_all_agree(layer_tar([file("a", b"1"), file("b", b"2")], eof=False))
    assert [m.name for m in members] == ["a", "b"]


def test_trailing_garbage_after_the_end_blocks_is_ignored_by_all() -> None:
    data = layer_tar([file("a", b"1")]) + b"trailing garbage after the end" * 20
    assert [m.name for m in assert_all_agree(data)] == ["a"]


def test_a_v7_header_without_magic_reads_the_same() -> None:
    block = bytearray(raw_header(b"v7file", size=2, magic=bytes(8)))
    block[148:156] = header_checksum(block)
    members = assert_all_agree(pad(bytes(block) + b"hi") + bytes(1024))
    assert (members[0].name, members[0].size) == ("v7file", 2)


# --------------------------------------------------------------------------- streams GNU tar writes
@pytest.mark.parametrize("args", GNU_SPARSE_FORMATS)
def test_sparse_files_written_by_gnu_tar_read_the_same(tmp_path: Path, args: list[str]) -> None:
    src = sparse_tree(tmp_path / "src")
    data = gnu_tar_create(src, "--sparse", *args, names=("sparse", "plain"))
    members = assert_all_agree(data)
    assert [(m.name, m.size) for m in members] == [("sparse", 20 * 65536), ("plain", 21)]
    _ours, contents = read_ctrpy(data)
    assert contents["sparse"] == (src / "sparse").read_bytes()
    extracted = gnu_extract(data, tmp_path / "gnu")
    assert extracted["sparse"][0] == contents["sparse"]


def test_a_sparse_file_larger_than_an_octal_size_field_reads_the_same(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    size = (8 << 30) + 4096  # over 8 GiB: the size only fits a pax record (or base-256)
    with open(src / "huge", "wb") as f:
        f.write(b"head")
        f.seek(size - 4)
        f.write(b"tail")
    for fmt in ("gnu", "posix"):
        members = assert_all_agree(gnu_tar_create(src, "--sparse", f"--format={fmt}", names=("huge",)), contents_too=False)
        assert members[0].size == size


@pytest.mark.parametrize("fmt", ["gnu", "posix", "ustar"])
def test_a_tree_archived_by_gnu_tar_reads_the_same(tmp_path: Path, fmt: str) -> None:
    src = tmp_path / "src"
    (src / "etc").mkdir(parents=True)
    (src / "etc" / "hosts").write_bytes(b"127.0.0.1 localhost\n")
    os.chmod(src / "etc" / "hosts", 0o640)
    os.link(src / "etc" / "hosts", src / "etc" / "hosts.bak")
    os.symlink("etc/hosts", src / "hosts")
    os.mkfifo(src / "fifo")
    (src / "bin").mkdir()
    (src / "bin" / "tool").write_bytes(b"tool")
    os.chmod(src / "bin" / "tool", 0o4755)
    if fmt != "ustar":
        (src / ("long-" + "n" * 150)).write_bytes(b"long name")
    for path in [src, *src.rglob("*")]:
        os.utime(path, (1_600_000_000, 1_600_000_000), follow_symlinks=False)
    data = gnu_tar_create(src, f"--format={fmt}", "--sort=name")
    members = assert_all_agree(data)
    by_name = {m.name: m for m in members}
    assert by_name["./etc/hosts.bak"].type == "hardlink" and by_name["./etc/hosts.bak"].linkname == "./etc/hosts"
    assert by_name["./bin/tool"].mode == 0o4755


def test_xattr_values_read_by_ctrpy_are_what_gnu_tar_extracts(tmp_path: Path) -> None:
    data = layer_tar([file("f", b"x", xattrs={"user.comment": b"value \xff\x00 bytes"})])
    extracted = gnu_extract(data, tmp_path / "gnu")
    members, _contents = read_ctrpy(data)
    if not extracted["f"][1]:
        pytest.skip("no user xattrs on this filesystem")
    assert members[0].xattrs == extracted["f"][1]


# --------------------------------------------------------------------------- where the readers disagree
@dataclass
class Outcome:
    names: list[str]
    error: BaseException | None


def tarfile_outcome(data: bytes) -> Outcome:
    names: list[str] = []
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r|") as tf:
            for ti in tf:
                names.append(ti.name)
                if ti.isreg():
                    f = tf.extractfile(ti)
                    assert f is not None
                    f.read()
    except tarfile.TarError as e:
        return Outcome(names, e)
    return Outcome(names, None)


def ctrpy_reads(data: bytes) -> list[str]:
    """Every name ctrpy's reader yields, reading each entry's data."""
    names: list[str] = []
    for hdr, read in iter_tar(io.BytesIO(data)):
        names.append(_text(hdr.name))
        read(hdr.size)
    return names


def test_a_bad_checksum_after_the_first_entry_ends_tarfile_silently_and_is_an_error_for_ctrpy_and_gnu_tar() -> None:
    first = layer_tar([file("first", b"1")], eof=False)
    broken = bytearray(raw_header(b"second", size=0))
    broken[0] ^= 1  # the checksum no longer matches
    data = first + bytes(broken) + layer_tar([file("third", b"3")])
    assert tarfile_outcome(data) == Outcome(["first"], None)  # the archive just "ends"
    gnu = gnu_list(data)
    assert gnu.returncode != 0 and "Skipping to next header" in gnu.stderr
    assert [m.name for m in gnu.members][:1] == ["first"]
    with raises_naming(InvalidArchive, "offset 1024", '"first"', "checksum"):
        ctrpy_reads(data)


def test_truncated_data_is_an_error_for_all_three() -> None:
    data = layer_tar([file("etc/big", bytes(100_000))])[:50_000]
    outcome = tarfile_outcome(data)
    assert outcome.names == ["etc/big"] and isinstance(outcome.error, tarfile.ReadError)
    gnu = gnu_list(data)
    assert gnu.returncode != 0 and "Unexpected EOF" in gnu.stderr
    with raises_naming(InvalidArchive, '"etc/big"', "truncated"):
        ctrpy_reads(data)


def test_a_truncated_header_ends_tarfile_and_gnu_tar_silently_and_is_an_error_for_ctrpy() -> None:
    data = layer_tar([file("a", b"1"), file("b", b"2")])[: 1024 + 100]
    assert tarfile_outcome(data) == Outcome(["a"], None)
    gnu = gnu_list(data)
    assert (gnu.returncode, [m.name for m in gnu.members]) == (0, ["a"])  # 100 bytes of "b": ignored
    with raises_naming(InvalidArchive, "truncated", '"a"'):
        ctrpy_reads(data)


def test_garbage_from_offset_0_is_an_error_for_all_three() -> None:
    data = b"This is not a tar file.\n" * 100
    outcome = tarfile_outcome(data)
    assert outcome.names == [] and isinstance(outcome.error, tarfile.ReadError)
    assert gnu_list(data).returncode != 0
    with raises_naming(InvalidArchive, "offset 0"):
        ctrpy_reads(data)


def test_a_builder_stream_with_a_raw_header_in_it_reads_the_same() -> None:
    data = Tar().file("before", b"b").raw(pad(raw_header(b"raw", size=3) + b"raw")).file("after", b"a").build()
    assert [m.name for m in assert_all_agree(data)] == ["before", "raw", "after"]
