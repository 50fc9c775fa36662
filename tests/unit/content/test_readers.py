"""The content reader conformance suite (containerd's ``core/content/testsuite`` habit).

Every object the library reads content through runs the same tests: the namespaced
``ContentStore``, ``RawContent`` (the bytes regardless of namespace, read mid-import and by
unpack) and ``ImportContext.read_json`` (what importers read the archive's JSON with).
Each adapter says which of ``open`` / ``read_json`` / ``exists`` its reader has, and each
test runs over the readers that have what it uses (``opener``, ``json_reader``, ``exister``). The contract:

- a good blob reads back (whole, or in small chunks) and parses as JSON;
- a corrupt blob raises ``DigestMismatch`` at EOF (the chunks before it read fine), and so
  does a short one or one with bytes appended;
- a missing blob is ``NotFound``;
- JSON over the 20 MiB cap is refused (``InvalidArchive``, naming the limit);
- an invalid digest is refused (``InvalidArgument``) before any path is built from it: a
  file planted where ``sha256:../..`` would lead is never read.

To add a reader, write an adapter, add it to ``READERS`` and to the fixtures of what it has.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ctrpy.content import MAX_JSON, BlobStore, ContentStore, RawContent
from ctrpy.errors import DigestMismatch, InvalidArchive, InvalidArgument, NotFound
from ctrpy.formats import ImportContext, ImportOptions
from ctrpy.metadata.db import Database
from tests.builders import sha256_digest
from tests.helpers import INVALID_DIGESTS, blob_path, raises_naming, tamper

DOC = {"schemaVersion": 2, "note": "a small JSON document"}
DATA = json.dumps(DOC).encode()


class Adapter:
    """A reader over a store in ``tmp``: ``put`` stores bytes where the reader sees them."""

    name = ""
    open: Callable[[str], Any] | None = None
    read_json: Callable[[str], Any] | None = None
    exists: Callable[[str], bool] | None = None

    def __init__(self, tmp: Path) -> None:
        self.root = tmp / "content"
        self.blobs = BlobStore(self.root)

    def put(self, data: bytes) -> str:
        with self.blobs.writer() as w:
            w.write(data)
            dgst, _size = w.commit()
        return dgst

    def close(self) -> None:
        pass


class ContentStoreReader(Adapter):
    name = "ContentStore"

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp)
        self.db = Database(tmp / "metadata.db")
        self.store = ContentStore(self.blobs, self.db, "default")
        self.open, self.read_json, self.exists = self.store.open, self.store.read_json, self.store.exists

    def put(self, data: bytes) -> str:
        return self.store.ingest(io.BytesIO(data)).digest

    def close(self) -> None:
        self.db.close()


class RawContentReader(Adapter):
    name = "RawContent"

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp)
        raw = RawContent(self.blobs)
        self.open, self.read_json, self.exists = raw.open, raw.read_json, raw.exists


class ImportContextReader(Adapter):
    name = "ImportContext"

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp)
        self.read_json = ImportContext(self.blobs, ImportOptions()).read_json


READERS: dict[str, type[Adapter]] = {a.name: a for a in (ContentStoreReader, RawContentReader, ImportContextReader)}


def _reader(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Adapter]:
    r = READERS[request.param](tmp_path)
    yield r
    r.close()


opener = pytest.fixture(params=["ContentStore", "RawContent"])(_reader)  # readers with open()
json_reader = pytest.fixture(params=sorted(READERS))(_reader)  # readers with read_json()
exister = pytest.fixture(params=["ContentStore", "RawContent"])(_reader)  # readers with exists()


def can(reader: Adapter, what: str) -> Callable[..., Any]:
    fn = getattr(reader, what)
    assert fn is not None, f"{reader.name} has no {what}"
    return fn  # type: ignore[no-any-return]


def read_all(reader: Adapter, dgst: str, chunk: int = -1) -> bytes:
    with can(reader, "open")(dgst) as f:
        if chunk < 0:
            return f.read()  # type: ignore[no-any-return]
        out = b""
        while data := f.read(chunk):
            out += data
        return out


def corrupted(reader: Adapter, data: bytes, bad: bytes) -> str:
    """Store ``data``, then replace its file's bytes with ``bad``; returns the digest."""
    dgst = reader.put(data)
    tamper(blob_path(reader.root.parent, dgst), bad)
    return dgst


# --------------------------------------------------------------------------- good blobs
def test_a_good_blob_reads_back_verbatim(opener: Adapter) -> None:
    assert read_all(opener, opener.put(DATA)) == DATA


def test_a_good_blob_reads_back_in_small_chunks(opener: Adapter) -> None:
    data = bytes(range(256)) * 64
    assert read_all(opener, opener.put(data), chunk=1000) == data


def test_an_empty_blob_reads_back_empty(opener: Adapter) -> None:
    assert read_all(opener, opener.put(b"")) == b""


def test_a_good_json_blob_parses(json_reader: Adapter) -> None:
    assert can(json_reader, "read_json")(json_reader.put(DATA)) == DOC


def test_a_stored_blob_exists_and_another_does_not(exister: Adapter) -> None:
    exists = can(exister, "exists")
    assert exists(exister.put(DATA))
    assert not exists(sha256_digest(b"never stored"))


# --------------------------------------------------------------------------- damaged blobs
def test_corrupted_blob_of_the_same_size_is_detected_on_read(opener: Adapter) -> None:
    dgst = corrupted(opener, DATA, b"J" + DATA[1:])
    with raises_naming(DigestMismatch, dgst):
        read_all(opener, dgst)


def test_corruption_is_detected_at_eof_when_read_in_small_chunks(opener: Adapter) -> None:
    data = bytes(range(256)) * 64
    dgst = corrupted(opener, data, data[:-1] + bytes([data[-1] ^ 1]))
    got = b""
    with can(opener, "open")(dgst) as f, raises_naming(DigestMismatch, dgst):
        while chunk := f.read(1000):
            got += chunk
    assert got == data[: len(got)] and len(got) >= len(data) - 1000  # every chunk before the end read fine


def test_truncated_blob_is_detected_on_read(opener: Adapter) -> None:
    dgst = corrupted(opener, DATA, DATA[:-3])
    with raises_naming(DigestMismatch, dgst):
        read_all(opener, dgst)


def test_blob_with_bytes_appended_is_detected_on_read(opener: Adapter) -> None:
    dgst = corrupted(opener, DATA, DATA + b"tail")
    with raises_naming(DigestMismatch, dgst):
        read_all(opener, dgst)


@pytest.mark.parametrize("damage", ["flipped", "short", "long"])
def test_a_damaged_json_blob_is_a_digest_mismatch(json_reader: Adapter, damage: str) -> None:
    bad = {"flipped": b"{" + DATA[1:-1] + b" ", "short": DATA[:-1], "long": DATA + b" "}[damage]
    dgst = corrupted(json_reader, DATA, bad)
    with raises_naming(DigestMismatch, dgst):
        can(json_reader, "read_json")(dgst)


# --------------------------------------------------------------------------- missing blobs
ABSENT = sha256_digest(b"never stored")


def test_opening_a_missing_blob_is_not_found(opener: Adapter) -> None:
    with raises_naming(NotFound, ABSENT):
        read_all(opener, ABSENT)


def test_reading_a_missing_json_blob_is_not_found(json_reader: Adapter) -> None:
    with raises_naming(NotFound, ABSENT):
        can(json_reader, "read_json")(ABSENT)


def test_a_missing_blob_read_for_an_import_names_the_digest(tmp_path: Path) -> None:
    with raises_naming(InvalidArchive, ABSENT):
        ImportContext(BlobStore(tmp_path / "content"), ImportOptions()).read_json(ABSENT)


# --------------------------------------------------------------------------- the JSON cap
def test_json_over_20_mib_is_refused(json_reader: Adapter) -> None:
    big = json.dumps({"pad": "x" * MAX_JSON}).encode()
    assert len(big) > MAX_JSON == 20 << 20
    with raises_naming(InvalidArchive, str(MAX_JSON)):
        can(json_reader, "read_json")(json_reader.put(big))


def test_json_of_exactly_20_mib_is_read(json_reader: Adapter) -> None:
    head, tail = b'{"pad": "', b'"}'
    exact = head + b"x" * (MAX_JSON - len(head) - len(tail)) + tail
    assert len(exact) == MAX_JSON
    assert len(can(json_reader, "read_json")(json_reader.put(exact))["pad"]) == MAX_JSON - len(head) - len(tail)


# --------------------------------------------------------------------------- digests as paths
def _refuses(reader: Adapter, what: str, bad: str, tmp_path: Path) -> None:
    reader.put(DATA)
    (tmp_path / "secret").write_bytes(DATA)  # where sha256:../../../secret leads from blobs/sha256/
    with pytest.raises(InvalidArgument):
        can(reader, what)(bad)


@pytest.mark.parametrize("bad", [*INVALID_DIGESTS, "sha256:../../../secret"])
def test_open_refuses_an_invalid_digest_before_it_becomes_a_path(opener: Adapter, bad: str, tmp_path: Path) -> None:
    _refuses(opener, "open", bad, tmp_path)


@pytest.mark.parametrize("bad", [*INVALID_DIGESTS, "sha256:../../../secret"])
def test_read_json_refuses_an_invalid_digest_before_it_becomes_a_path(
    json_reader: Adapter, bad: str, tmp_path: Path
) -> None:
    _refuses(json_reader, "read_json", bad, tmp_path)


@pytest.mark.parametrize("bad", [*INVALID_DIGESTS, "sha256:../../../secret"])
def test_exists_refuses_an_invalid_digest_before_it_becomes_a_path(exister: Adapter, bad: str, tmp_path: Path) -> None:
    _refuses(exister, "exists", bad, tmp_path)
