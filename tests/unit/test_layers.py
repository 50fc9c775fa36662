"""``ctrpy.layers``: an uncompressed layer tar in, a stored layer blob out; and reusing a
stored compressed copy only once its bytes are checked."""

from __future__ import annotations

import gzip
import threading
from pathlib import Path

import pytest

from ctrpy.archive.compression import Compression
from ctrpy.content.blobs import BlobStore
from ctrpy.errors import DigestMismatch, InvalidArchive, InvalidArgument
from ctrpy.layers import (
    Writable,
    check_level,
    compression_of,
    layer_media_type,
    reuse_compressed,
    write_layer,
)
from ctrpy.oci import mediatypes
from tests.builders import compress, decompress, file, layer_tar, sha256_digest
from tests.helpers import raises_naming

TAR = layer_tar([file("etc/hosts", b"127.0.0.1 localhost\n" * 500)])


@pytest.fixture
def blobs(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "content")


def writes(data: bytes, chunk: int = 4096):  # type: ignore[no-untyped-def]
    def produce(out: Writable) -> None:
        for i in range(0, len(data), chunk):
            out.write(data[i : i + chunk])

    return produce


@pytest.mark.parametrize("kind", list(Compression), ids=lambda k: k.value)
def test_a_layer_is_stored_compressed_and_its_diff_id_is_the_tars_digest(blobs: BlobStore, kind: Compression) -> None:
    layer = write_layer(blobs, writes(TAR), kind)
    stored = blobs.path(layer.digest).read_bytes()
    assert layer.diff_id == sha256_digest(TAR)
    assert (layer.digest, layer.size) == (sha256_digest(stored), len(stored))
    assert decompress(stored) == TAR
    assert layer.new and layer.compression is kind


def test_an_uncompressed_layer_is_the_tar_itself(blobs: BlobStore) -> None:
    layer = write_layer(blobs, writes(TAR), Compression.NONE)
    assert layer.digest == layer.diff_id == sha256_digest(TAR)


def test_a_layer_already_stored_is_not_new(blobs: BlobStore) -> None:
    write_layer(blobs, writes(TAR), Compression.GZIP)
    assert not write_layer(blobs, writes(TAR), Compression.GZIP).new


def test_the_same_tar_gives_the_same_blob(blobs: BlobStore) -> None:
    one = write_layer(blobs, writes(TAR, 100), Compression.ZSTD, level=7)
    two = write_layer(blobs, writes(TAR, 9999), Compression.ZSTD, level=7)
    assert one.digest == two.digest


def test_the_level_changes_the_bytes_not_the_diff_id(blobs: BlobStore) -> None:
    fast = write_layer(blobs, writes(TAR), Compression.GZIP, level=0)
    small = write_layer(blobs, writes(TAR), Compression.GZIP, level=3)
    assert fast.digest != small.digest and fast.diff_id == small.diff_id


def test_the_producer_runs_on_another_thread(blobs: BlobStore) -> None:
    seen: list[threading.Thread] = []

    def produce(out: Writable) -> None:
        seen.append(threading.current_thread())
        out.write(TAR)

    write_layer(blobs, produce, Compression.GZIP)
    assert seen and seen[0] is not threading.current_thread()


def test_a_producer_error_is_raised_and_nothing_is_stored(blobs: BlobStore) -> None:
    def produce(out: Writable) -> None:
        out.write(TAR[:1000])
        raise InvalidArchive("the source broke")

    with raises_naming(InvalidArchive, "the source broke"):
        write_layer(blobs, produce, Compression.GZIP)
    assert blobs.digests() == []
    assert not any(blobs.ingest_dir.iterdir())


def test_a_producer_writing_more_than_the_pipe_holds_ends_when_the_consumer_fails(
    blobs: BlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ctrpy.layers

    def broken(src: object, dst: object, kind: Compression, *, level: int | None = None) -> None:
        raise InvalidArgument("compressor refused")

    monkeypatch.setattr(ctrpy.layers, "compress_stream", broken)
    with raises_naming(InvalidArgument, "compressor refused"):
        write_layer(blobs, writes(TAR * 50), Compression.GZIP)


def test_an_unexpected_diff_id_is_a_mismatch_naming_both(blobs: BlobStore) -> None:
    other = sha256_digest(b"another tar")
    with raises_naming(DigestMismatch, other, sha256_digest(TAR)):
        write_layer(blobs, writes(TAR), Compression.ZSTD, expected_diff_id=other)
    assert blobs.digests() == []


@pytest.mark.parametrize(
    ("kind", "level"),
    [(Compression.GZIP, 4), (Compression.GZIP, -1), (Compression.ZSTD, 0), (Compression.ZSTD, 23),
     (Compression.NONE, 1)],
)
def test_a_level_out_of_range_is_refused_before_any_work(blobs: BlobStore, kind: Compression, level: int) -> None:
    with raises_naming(InvalidArgument, str(level)):
        check_level(kind, level)
    with pytest.raises(InvalidArgument):
        write_layer(blobs, writes(TAR), kind, level=level)
    assert blobs.digests() == []


def test_media_types_say_the_compression() -> None:
    for kind in Compression:
        assert compression_of(layer_media_type(kind)) is kind
        assert compression_of(layer_media_type(kind, docker=True)) is kind
    assert layer_media_type(Compression.GZIP, docker=True) == mediatypes.DOCKER_LAYER_GZIP
    assert compression_of(mediatypes.OCI_LAYER_ND_GZIP) is None
    assert compression_of("application/vnd.oci.image.layer.v1.tar+encrypted") is None


# --------------------------------------------------------------------------- reusing a stored copy
def stored(blobs: BlobStore, data: bytes) -> str:
    with blobs.writer() as w:
        w.write(data)
        return w.commit()[0]


def test_a_stored_copy_that_is_the_layer_is_reused(blobs: BlobStore) -> None:
    copy = stored(blobs, gzip.compress(TAR, mtime=7))
    found = reuse_compressed(blobs, [copy], sha256_digest(TAR), [Compression.GZIP])
    assert found is not None
    assert (found.digest, found.diff_id, found.compression, found.new) == (
        copy, sha256_digest(TAR), Compression.GZIP, False)


def test_a_copy_of_another_compression_is_not_reused(blobs: BlobStore) -> None:
    copy = stored(blobs, compress(TAR, "zstd"))
    assert reuse_compressed(blobs, [copy], sha256_digest(TAR), [Compression.GZIP]) is None


def test_a_label_that_lies_about_the_diff_id_is_not_trusted(blobs: BlobStore) -> None:
    liar = stored(blobs, compress(layer_tar([file("other")]), "gzip"))
    assert reuse_compressed(blobs, [liar], sha256_digest(TAR), [Compression.GZIP]) is None


def test_a_corrupt_copy_is_passed_over_for_a_good_one(blobs: BlobStore) -> None:
    bad = stored(blobs, compress(TAR, "gzip", level=1))
    good = stored(blobs, compress(TAR, "gzip", level=9))
    path = blobs.path(bad)
    path.chmod(0o644)
    path.write_bytes(path.read_bytes()[:-10])
    found = reuse_compressed(blobs, ["sha256:" + "0" * 64, bad, good], sha256_digest(TAR), [Compression.GZIP])
    assert found is not None and found.digest == good
