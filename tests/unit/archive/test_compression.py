"""Compression sniffing, strict streaming decompression, compressing."""

from __future__ import annotations

import gzip
import io
import os
import zlib

import pytest
import zstandard

from ctrpy.archive import Compression, compress_stream, open_decompressed, sniff
from ctrpy.errors import InvalidArchive
from tests.helpers import PipeLike

PAYLOAD = os.urandom(300_000) + b"\0" * 3_000_000 + b"the end"




def decompress(data: bytes) -> tuple[Compression, bytes]:
    kind, reader = open_decompressed(PipeLike(data))  # type: ignore[arg-type]
    return kind, reader.read()


def gz(data: bytes) -> bytes:
    comp = zlib.compressobj(6, zlib.DEFLATED, 31)
    return comp.compress(data) + comp.flush()


def zst(data: bytes) -> bytes:
    return zstandard.ZstdCompressor(level=3).compress(data)


# -- sniff -----------------------------------------------------------------------------


def test_sniff_recognises_gzip_magic() -> None:
    assert sniff(b"\x1f\x8b\x08\x00") is Compression.GZIP


def test_sniff_recognises_zstd_magic() -> None:
    assert sniff(b"\x28\xb5\x2f\xfd") is Compression.ZSTD


def test_sniff_calls_anything_else_uncompressed() -> None:
    assert sniff(b"ustar") is Compression.NONE
    assert sniff(b"") is Compression.NONE
    assert sniff(b"\x1f\x8b\x07") is Compression.NONE  # gzip magic but not deflate


def test_compression_values_are_the_names_used_in_media_types() -> None:
    assert [c.value for c in Compression] == ["none", "gzip", "zstd"]


# -- gzip ------------------------------------------------------------------------------


def test_gzip_stream_is_decompressed_from_a_pipe() -> None:
    assert decompress(gz(PAYLOAD)) == (Compression.GZIP, PAYLOAD)


def test_gzip_written_by_the_gzip_module_is_decompressed() -> None:
    assert decompress(gzip.compress(b"hello", mtime=0)) == (Compression.GZIP, b"hello")


def test_multi_member_gzip_yields_all_members_in_order() -> None:
    assert decompress(gz(b"first ") + gz(b"second ") + gz(b"third"))[1] == b"first second third"


def test_gzip_followed_by_nul_padding_is_accepted() -> None:
    assert decompress(gz(b"data") + b"\0" * 1000)[1] == b"data"


def test_gzip_followed_by_trailing_garbage_is_rejected() -> None:
    with pytest.raises(InvalidArchive, match=r"gzip stream: .*not gzip"):
        decompress(gz(b"data") + b"garbage")


def test_truncated_gzip_is_rejected() -> None:
    data = gz(PAYLOAD)
    with pytest.raises(InvalidArchive, match="truncated"):
        decompress(data[: len(data) // 2])


def test_gzip_missing_only_its_trailer_is_rejected() -> None:
    with pytest.raises(InvalidArchive, match="truncated"):
        decompress(gz(b"hello world")[:-4])


def test_corrupt_gzip_is_rejected() -> None:
    data = bytearray(gz(PAYLOAD))
    data[100:110] = b"\xff" * 10
    with pytest.raises(InvalidArchive, match="gzip"):
        decompress(bytes(data))


def test_gzip_crc_mismatch_is_rejected() -> None:
    data = bytearray(gz(b"hello world"))
    data[-8] ^= 0xFF  # CRC32 in the trailer
    with pytest.raises(InvalidArchive, match="gzip"):
        decompress(bytes(data))


def test_gzip_bomb_is_decompressed_in_bounded_pieces() -> None:
    bomb = gz(b"\0" * 50_000_000)
    _, reader = open_decompressed(io.BytesIO(bomb))
    first = reader.read1(1 << 30)  # type: ignore[attr-defined]
    assert 0 < len(first) <= 4 << 20


# -- zstd ------------------------------------------------------------------------------


def test_zstd_stream_is_decompressed_from_a_pipe() -> None:
    assert decompress(zst(PAYLOAD)) == (Compression.ZSTD, PAYLOAD)


def test_multi_frame_zstd_yields_all_frames() -> None:
    assert decompress(zst(b"one ") + zst(b"two"))[1] == b"one two"


def test_zstd_skippable_frame_is_ignored() -> None:
    skippable = (0x184D2A50).to_bytes(4, "little") + (3).to_bytes(4, "little") + b"abc"
    assert decompress(zst(b"one") + skippable + zst(b"two"))[1] == b"onetwo"


def test_zstd_written_as_a_stream_without_content_size_is_decompressed() -> None:
    out = io.BytesIO()
    with zstandard.ZstdCompressor().stream_writer(out, closefd=False) as w:
        w.write(PAYLOAD)
    assert decompress(out.getvalue())[1] == PAYLOAD


@pytest.mark.parametrize("cut", [5, 100, -3, -1])
def test_truncated_zstd_is_rejected(cut: int) -> None:
    data = zst(PAYLOAD)
    with pytest.raises(InvalidArchive, match="zstd"):
        decompress(data[:cut])


def test_zstd_followed_by_garbage_is_rejected() -> None:
    with pytest.raises(InvalidArchive, match="zstd"):
        decompress(zst(b"data") + b"garbage!")


def test_corrupt_zstd_with_a_checksum_is_rejected() -> None:
    # Without a frame checksum, bytes flipped inside a raw block decode "fine": the
    # layer's diffID check catches that later.
    data = bytearray(zstandard.ZstdCompressor(write_checksum=True).compress(PAYLOAD))
    data[len(data) // 2 : len(data) // 2 + 16] = b"\xa5" * 16
    with pytest.raises(InvalidArchive, match="zstd"):
        decompress(bytes(data))


# -- none ------------------------------------------------------------------------------


def test_uncompressed_stream_passes_through_unchanged() -> None:
    assert decompress(PAYLOAD) == (Compression.NONE, PAYLOAD)


def test_stream_shorter_than_the_magic_passes_through() -> None:
    assert decompress(b"ab") == (Compression.NONE, b"ab")


def test_empty_stream_is_an_empty_uncompressed_stream() -> None:
    assert decompress(b"") == (Compression.NONE, b"")


def test_garbage_is_passed_through_as_uncompressed_for_the_tar_reader_to_reject() -> None:
    assert decompress(b"\x00\x01garbage") == (Compression.NONE, b"\x00\x01garbage")


def test_decompressed_reader_supports_readinto() -> None:
    _, reader = open_decompressed(io.BytesIO(gz(b"abcdef")))
    buf = bytearray(4)
    assert reader.readinto(buf) == 4  # type: ignore[attr-defined]
    assert bytes(buf) == b"abcd"


# -- compress_stream -------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(Compression))
def test_compress_stream_round_trips(kind: Compression) -> None:
    out = io.BytesIO()
    compress_stream(io.BytesIO(PAYLOAD), out, kind)
    assert decompress(out.getvalue()) == (kind, PAYLOAD)


@pytest.mark.parametrize("kind", [Compression.GZIP, Compression.ZSTD])
def test_compress_stream_is_deterministic(kind: Compression) -> None:
    first, second = io.BytesIO(), io.BytesIO()
    compress_stream(io.BytesIO(PAYLOAD), first, kind)
    compress_stream(io.BytesIO(PAYLOAD), second, kind)
    assert first.getvalue() == second.getvalue()


def test_compressed_gzip_has_no_mtime_and_no_file_name() -> None:
    out = io.BytesIO()
    compress_stream(io.BytesIO(b"x"), out, Compression.GZIP)
    header = out.getvalue()[:10]
    assert header[3] & 0x08 == 0  # FNAME flag
    assert header[4:8] == b"\0\0\0\0"  # MTIME
