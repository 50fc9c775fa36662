"""The strict tar reader (``ctrpy/archive/tar.py``), seen through ``iter_tar`` and
``apply_layer``: every format it reads, and every malformed or truncated stream it refuses
with an ``InvalidArchive`` naming the offset or the entry (its differential tests against
Python's tarfile and GNU tar are in ``test_tar_differential.py``)."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from ctrpy.archive import iter_tar
from ctrpy.errors import InvalidArchive
from tests.builders import Tar, pad, raw_header, sha256_digest
from tests.helpers import apply_bytes, raises_naming


def sample() -> bytes:
    return Tar().dir("etc").file("etc/hosts", b"127.0.0.1 localhost\n").symlink("link", "etc").build()


# -- formats ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT], ids=["ustar", "gnu", "pax"]
)
def test_every_tar_format_applies(rootfs: Path, fmt: int) -> None:
    apply_bytes(rootfs, Tar(fmt).dir("d").file("d/f", b"x").symlink("d/s", "f").build())
    assert (rootfs / "d" / "f").read_bytes() == b"x"
    assert os.readlink(rootfs / "d" / "s") == "f"


def test_v7_header_without_magic_applies(rootfs: Path) -> None:
    block = bytearray(raw_header(b"v7file", size=2))
    block[257:265] = bytes(8)
    block[148:156] = b"%06o\0 " % (sum(block[:148]) + 256 + sum(block[156:]))
    apply_bytes(rootfs, pad(bytes(block) + b"hi") + bytes(1024))
    assert (rootfs / "v7file").read_bytes() == b"hi"


def test_signed_checksums_of_old_tars_are_accepted(rootfs: Path) -> None:
    block = bytearray(raw_header("café".encode("latin-1"), size=0))
    signed = sum(b - 256 if b > 127 else b for b in block[:148]) + 256
    signed += sum(b - 256 if b > 127 else b for b in block[156:])
    block[148:156] = b"%06o\0 " % signed
    apply_bytes(rootfs, bytes(block) + bytes(1024))
    assert os.listdir(bytes(rootfs)) == ["café".encode("latin-1")]


def test_base256_numbers_are_read(rootfs: Path) -> None:
    data = Tar(tarfile.GNU_FORMAT).file("f", b"x", mtime=8**11 + 5).build()
    apply_bytes(rootfs, data)
    assert (rootfs / "f").stat().st_mtime == 8**11 + 5


def test_an_empty_stream_is_an_empty_layer(rootfs: Path) -> None:
    result = apply_bytes(rootfs, b"")
    assert (result.entries, result.size, result.diff_id) == (0, 0, sha256_digest(b""))


def test_end_of_archive_blocks_alone_are_an_empty_layer(rootfs: Path) -> None:
    assert apply_bytes(rootfs, bytes(1024)).entries == 0


def test_a_single_zero_block_ends_the_archive(rootfs: Path) -> None:
    data = pad(raw_header(b"f", size=1) + b"x") + bytes(512)
    assert apply_bytes(rootfs, data).entries == 1


def test_missing_end_of_archive_blocks_are_tolerated(rootfs: Path) -> None:
    data = pad(raw_header(b"f", size=1) + b"x")
    assert apply_bytes(rootfs, data).entries == 1


# -- malformed and truncated -----------------------------------------------------------


def test_garbage_is_an_invalid_archive(rootfs: Path) -> None:
    with pytest.raises(InvalidArchive, match="not a tar archive"):
        apply_bytes(rootfs, os.urandom(4096))


def test_text_is_an_invalid_archive(rootfs: Path) -> None:
    with raises_naming(InvalidArchive, "offset 0"):
        apply_bytes(rootfs, b"This is not a tar file.\n" * 100)


def test_bad_checksum_names_the_previous_entry(rootfs: Path) -> None:
    data = sample()
    good = Tar().file("first", b"1").build()[:1024]
    broken = bytearray(raw_header(b"second", size=0))
    broken[0] ^= 1
    with raises_naming(InvalidArchive, "1024", '"first"', "checksum"):
        apply_bytes(rootfs, good + bytes(broken) + data)


def test_truncated_file_data_names_the_entry(rootfs: Path) -> None:
    data = Tar().file("etc/big", os.urandom(100_000)).build()
    with raises_naming(InvalidArchive, '"etc/big"', "truncated"):
        apply_bytes(rootfs, data[:50_000])


def test_truncated_header_is_an_invalid_archive(rootfs: Path) -> None:
    data = Tar().file("a", b"1").file("b", b"2").build()
    with pytest.raises(InvalidArchive, match="truncated"):
        apply_bytes(rootfs, data[: 1024 + 100])


def test_truncated_padding_is_an_invalid_archive(rootfs: Path) -> None:
    data = Tar().file("a", b"123").build()
    with raises_naming(InvalidArchive, '"a"', "truncated"):
        apply_bytes(rootfs, data[:515])


def test_archive_ending_after_an_extended_header_is_invalid(rootfs: Path) -> None:
    data = Tar().file("x" * 200, b"1").build()
    pax_only = data[:1024]  # the pax header block and its records, no entry
    with pytest.raises(InvalidArchive):
        apply_bytes(rootfs, pax_only + bytes(1024))


def test_data_after_a_zero_block_is_invalid(rootfs: Path) -> None:
    data = bytes(512) + raw_header(b"hidden", size=0)
    with raises_naming(InvalidArchive, "offset 512", "zero block"):
        apply_bytes(rootfs, data)


def test_malformed_pax_record_is_invalid(rootfs: Path) -> None:
    records = b"99 path=short\n"
    data = pad(raw_header(b"PaxHeader", kind=b"x", size=len(records)) + records)
    data += pad(raw_header(b"f", size=0)) + bytes(1024)
    with pytest.raises(InvalidArchive, match="pax record"):
        apply_bytes(rootfs, data)


def test_huge_pax_header_is_invalid(rootfs: Path) -> None:
    data = raw_header(b"PaxHeader", kind=b"x", size=10 << 20)
    with pytest.raises(InvalidArchive, match="too large"):
        apply_bytes(rootfs, data + bytes(1024))


def test_non_octal_size_is_invalid(rootfs: Path) -> None:
    block = bytearray(raw_header(b"f"))
    block[124:136] = b"12345678z90\0"
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    with raises_naming(InvalidArchive, '"f"', "size"):
        apply_bytes(rootfs, bytes(block) + bytes(1024))


def test_bad_pax_number_is_invalid(rootfs: Path) -> None:
    with raises_naming(InvalidArchive, '"f"', "uid"):
        apply_bytes(rootfs, Tar().file("f", pax={"uid": "12abc"}).build())


# -- iter_tar --------------------------------------------------------------------------


def test_iter_tar_yields_headers_and_their_data() -> None:
    seen = [(h.name, h.type, read(h.size)) for h, read in iter_tar(io.BytesIO(sample()))]
    assert seen == [
        (b"etc/", b"5", b""),
        (b"etc/hosts", b"0", b"127.0.0.1 localhost\n"),
        (b"link", b"2", b""),
    ]


def test_iter_tar_skips_unread_data() -> None:
    data = Tar().file("a", b"x" * 5000).file("b", b"y").build()
    assert [h.name for h, _ in iter_tar(io.BytesIO(data))] == [b"a", b"b"]


