"""The stream helpers every reader of blobs and layers is built from."""

from __future__ import annotations

import hashlib
import io
import os

from ctrpy.streams import HashingReader

PAYLOAD = os.urandom(300_000) + b"\0" * 3_000_000 + b"the end"


def test_hashing_reader_hashes_and_counts_what_is_read() -> None:
    reader = HashingReader(io.BytesIO(b"hello world"))
    assert reader.read(5) == b"hello"
    assert reader.size == 5
    assert reader.digest == "sha256:" + hashlib.sha256(b"hello").hexdigest()


def test_hashing_reader_drain_reads_to_the_end() -> None:
    reader = HashingReader(io.BytesIO(PAYLOAD))
    reader.read(10)
    assert reader.drain() == len(PAYLOAD) - 10
    assert reader.size == len(PAYLOAD)
    assert reader.digest == "sha256:" + hashlib.sha256(PAYLOAD).hexdigest()


def test_hashing_reader_readinto_is_hashed_too() -> None:
    reader = HashingReader(io.BytesIO(b"abc"))
    buf = bytearray(8)
    assert reader.readinto(buf) == 3
    assert reader.digest == "sha256:" + hashlib.sha256(b"abc").hexdigest()


def test_hashing_reader_supports_other_algorithms() -> None:
    reader = HashingReader(io.BytesIO(b"abc"), algo="sha512")
    reader.drain()
    assert reader.digest == "sha512:" + hashlib.sha512(b"abc").hexdigest()
