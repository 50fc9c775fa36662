"""The layer stream decompressed and hashed on a second thread (Prefetched): the same bytes
and digest as reading it directly, bounded memory, errors raised where the applier reads,
and a thread that never outlives its reader."""

from __future__ import annotations

import gzip
import hashlib
import io
import threading
import time
from pathlib import Path

import pytest

from ctrpy.archive import ApplyOptions, apply_layer, open_decompressed
from ctrpy.archive.pipeline import Prefetched
from ctrpy.errors import InvalidArchive
from tests.builders import Tar, sha256_digest

KIB = 1024


class Source(io.RawIOBase):
    """A stream of ``chunks`` reads of ``size`` bytes each (counting the reads made), then
    optionally an error instead of the end."""

    def __init__(self, chunks: int, size: int = KIB, error: BaseException | None = None) -> None:
        super().__init__()
        self.left = chunks
        self.size = size
        self.error = error
        self.reads = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        self.reads += 1
        if self.left == 0:
            if self.error is not None:
                raise self.error
            return b""
        self.left -= 1
        return bytes([self.reads % 256]) * self.size


def reader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "ctrpy-layer-reader"]


def wait_until_full(p: Prefetched) -> None:
    for _ in range(1000):  # bounded: 10 s at most
        if p._queue.full():
            return
        time.sleep(0.01)
    raise AssertionError("the producer never filled its queue")


def test_the_bytes_digest_and_size_are_those_of_the_stream() -> None:
    data = bytes(range(256)) * 5000
    with Prefetched(io.BytesIO(data), chunk=4096) as p:
        out = b"".join(iter(lambda: p.read(1000), b""))
        assert out == data
        assert p.digest == sha256_digest(data)
        assert p.size == len(data)


def test_reads_of_any_size_return_the_stream_in_order() -> None:
    data = bytes(range(256)) * 100
    with Prefetched(io.BytesIO(data), chunk=3000) as p:
        parts = [p.read(n) for n in (1, 511, 5000, 7, 3000)]
        parts.append(p.read())
        assert b"".join(parts) == data
        assert p.read(10) == b""


def test_drain_reads_and_hashes_the_rest() -> None:
    data = b"x" * 100_000
    with Prefetched(io.BytesIO(data), chunk=4096) as p:
        assert p.read(10) == b"x" * 10
        assert p.drain() == len(data) - 10
        assert p.digest == "sha256:" + hashlib.sha256(data).hexdigest()


def test_the_producer_is_at_most_depth_chunks_ahead() -> None:
    source = Source(1000)
    with Prefetched(source, chunk=KIB, depth=3) as p:  # type: ignore[arg-type]
        wait_until_full(p)
        assert source.reads <= 3 + 1  # the queue, plus the chunk waiting for room


def test_an_error_of_the_stream_is_raised_by_read_and_by_every_read_after() -> None:
    with Prefetched(Source(2, error=InvalidArchive("gzip stream: corrupt data")), chunk=KIB) as p:  # type: ignore[arg-type]
        assert len(p.read(KIB)) == KIB
        assert len(p.read(KIB)) == KIB
        for _ in range(2):
            with pytest.raises(InvalidArchive, match="corrupt data"):
                p.read(KIB)


def test_finish_runs_after_the_end_and_its_error_is_the_readers() -> None:
    calls: list[int] = []
    source = Source(2)

    def finish() -> None:
        calls.append(source.reads)
        raise InvalidArchive("blob does not match its digest")

    with Prefetched(source, finish=finish, chunk=KIB) as p:  # type: ignore[arg-type]
        assert p.read(KIB) and p.read(KIB)
        with pytest.raises(InvalidArchive, match="does not match"):
            p.read(KIB)
    assert calls == [3]  # after the read that saw the end


def test_close_stops_a_producer_waiting_for_room() -> None:
    p = Prefetched(Source(10_000), chunk=KIB, depth=2)  # type: ignore[arg-type]
    wait_until_full(p)
    p.close()
    assert not p._thread.is_alive()


def test_leaving_the_block_on_an_error_leaves_no_thread() -> None:
    with pytest.raises(KeyboardInterrupt), Prefetched(Source(10_000), chunk=KIB, depth=2) as p:  # type: ignore[arg-type]
        p.read(KIB)
        raise KeyboardInterrupt
    assert not p._thread.is_alive()


def test_a_gzip_layer_applied_through_it_has_the_diff_id_of_its_tar(rootfs: Path) -> None:
    tar = Tar().dir("etc").file("etc/big", bytes(3 << 20)).file("etc/small", b"s").build()
    _kind, stream = open_decompressed(io.BytesIO(gzip.compress(tar)))
    with Prefetched(stream) as p:
        result = apply_layer(rootfs, p, ApplyOptions())
    assert result.diff_id == sha256_digest(tar)
    assert result.size == len(tar)
    assert (rootfs / "etc" / "small").read_bytes() == b"s"
    assert (rootfs / "etc" / "big").stat().st_size == 3 << 20


def test_a_corrupt_gzip_layer_fails_as_invalid_archive_and_leaves_no_thread(rootfs: Path) -> None:
    tar = Tar().file("a", bytes(range(256)) * 4000).build()
    blob = bytearray(gzip.compress(tar))
    blob[len(blob) // 2] ^= 0xFF
    _kind, stream = open_decompressed(io.BytesIO(bytes(blob)))
    with pytest.raises(InvalidArchive, match="gzip"), Prefetched(stream) as p:
        apply_layer(rootfs, p, ApplyOptions())
    assert not p._thread.is_alive()
    assert reader_threads() == []


def test_without_hashing_the_bytes_pass_through_and_the_stream_verifies_itself() -> None:
    from ctrpy.content.store import VerifyingReader
    from ctrpy.errors import DigestMismatch

    data = bytes(range(256)) * 5000
    good = VerifyingReader(io.BytesIO(data), sha256_digest(data), len(data))  # type: ignore[arg-type]
    with Prefetched(good, hashing=False) as ahead:  # type: ignore[arg-type]
        assert ahead.read() == data
        assert ahead.digest == "sha256:" + hashlib.sha256(b"").hexdigest()  # it hashed nothing itself
    bad = VerifyingReader(io.BytesIO(data[:-1] + b"x"), sha256_digest(data), len(data))  # type: ignore[arg-type]
    with Prefetched(bad, hashing=False) as ahead, pytest.raises(DigestMismatch):  # type: ignore[arg-type]
        ahead.read()
