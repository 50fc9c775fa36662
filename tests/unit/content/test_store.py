"""Content store conformance suite: writing (reading is ``test_readers.py``'s suite).

Every store implementation runs the same tests through a small adapter (containerd's
``content/testsuite`` habit).  ``store`` is parametrised over all implementations of the
byte-level contract (write, commit, verify, dedup, read); ``nstore`` over the namespaced
ones (labels, visibility per namespace, shared bytes).  To add an implementation, write an
adapter class and add it to ``STORES`` (and to ``NAMESPACED_STORES`` if it has namespaces).
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest

from ctrpy import filters
from ctrpy.content import BlobStore, ContentStore, RawContent
from ctrpy.errors import DigestMismatch, InvalidArgument, NotFound, SizeMismatch
from ctrpy.metadata.db import Database
from tests.helpers import INVALID_DIGESTS


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


HELLO = b"hello, content store\n"
HELLO_DIGEST = sha(HELLO)


# --------------------------------------------------------------------------- adapters
class StoreUnderTest(Protocol):
    content_root: Path  # holds blobs/sha256/<hex> and ingest/

    def write(self, data: bytes, expected: str | None = None, expected_size: int | None = None) -> str: ...

    def open_writer(self, expected: str | None = None, expected_size: int | None = None) -> Any: ...

    def open(self, dgst: str) -> Any: ...

    def read(self, dgst: str) -> bytes: ...

    def exists(self, dgst: str) -> bool: ...


class BlobStoreAdapter:
    """The namespace-free bytes: BlobStore writers, read back through RawContent."""

    def __init__(self, tmp: Path):
        self.content_root = tmp / "content"
        self.blobs = BlobStore(self.content_root)

    def open_writer(self, expected: str | None = None, expected_size: int | None = None) -> Any:
        return self.blobs.writer(expected, expected_size)

    def write(self, data: bytes, expected: str | None = None, expected_size: int | None = None) -> str:
        with self.blobs.writer(expected, expected_size) as w:
            w.write(data)
            dgst, _size = w.commit()
        return dgst

    def open(self, dgst: str) -> Any:
        return RawContent(self.blobs).open(dgst)

    def read(self, dgst: str) -> bytes:
        with self.open(dgst) as f:
            return f.read()

    def exists(self, dgst: str) -> bool:
        return self.blobs.exists(dgst)


class ContentStoreAdapter:
    """The namespaced store over SQLite."""

    def __init__(self, tmp: Path, namespace: str = "default", *, shared: ContentStoreAdapter | None = None):
        self.content_root = tmp / "content"
        if shared is None:
            self.db = Database(tmp / "metadata.db")
            self.blobs = BlobStore(self.content_root)
        else:
            self.db, self.blobs = shared.db, shared.blobs
        self.store = ContentStore(self.blobs, self.db, namespace)

    def in_namespace(self, namespace: str) -> ContentStoreAdapter:
        return ContentStoreAdapter(self.content_root.parent, namespace, shared=self)

    def open_writer(self, expected: str | None = None, expected_size: int | None = None) -> Any:
        return self.blobs.writer(expected, expected_size)

    def write(self, data: bytes, expected: str | None = None, expected_size: int | None = None,
              **store_options: Any) -> str:
        """As the suite writes, and with what the namespaced store takes besides (``labels``)."""
        return self.store.ingest(io.BytesIO(data), expected=expected, expected_size=expected_size, **store_options).digest

    def open(self, dgst: str) -> Any:
        return self.store.open(dgst)

    def read(self, dgst: str) -> bytes:
        with self.open(dgst) as f:
            return f.read()

    def exists(self, dgst: str) -> bool:
        return self.store.exists(dgst)

    def close(self) -> None:
        self.db.close()


STORES: dict[str, Callable[[Path], Any]] = {
    "BlobStore": BlobStoreAdapter,
    "ContentStore": ContentStoreAdapter,
}
NAMESPACED_STORES: dict[str, Callable[[Path], Any]] = {
    "ContentStore": ContentStoreAdapter,
}


@pytest.fixture(params=sorted(STORES))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    s = STORES[request.param](tmp_path)
    yield s
    if hasattr(s, "close"):
        s.close()


@pytest.fixture(params=sorted(NAMESPACED_STORES))
def nstore(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    s = NAMESPACED_STORES[request.param](tmp_path)
    yield s
    s.close()


# --------------------------------------------------------------------------- helpers
def blob_files(content_root: Path) -> list[str]:
    d = content_root / "blobs" / "sha256"
    return sorted(p.name for p in d.iterdir()) if d.is_dir() else []


def ingest_files(content_root: Path) -> list[str]:
    d = content_root / "ingest"
    return sorted(p.name for p in d.iterdir()) if d.is_dir() else []


def blob_path(content_root: Path, dgst: str) -> Path:
    return content_root / "blobs" / "sha256" / dgst.split(":", 1)[1]


def stat_key(p: Path) -> tuple[int, int, int]:
    st = p.stat()
    return st.st_ino, st.st_mtime_ns, st.st_size


def all_files(top: Path) -> set[str]:
    return {str(p.relative_to(top)) for p in top.rglob("*")}


# --------------------------------------------------------------------------- write, commit, read
def test_committed_blob_reads_back_verbatim(store: Any) -> None:
    dgst = store.write(HELLO)
    assert store.read(dgst) == HELLO


def test_commit_names_the_blob_by_its_sha256(store: Any) -> None:
    assert store.write(HELLO) == HELLO_DIGEST
    assert blob_files(store.content_root) == [HELLO_DIGEST.split(":")[1]]


def test_writer_commit_returns_digest_and_size(store: Any) -> None:
    with store.open_writer() as w:
        w.write(b"abc")
        w.write(memoryview(b"def"))
        assert w.commit() == (sha(b"abcdef"), 6)


def test_committed_blob_file_is_read_only(store: Any) -> None:
    dgst = store.write(HELLO)
    assert blob_path(store.content_root, dgst).stat().st_mode & 0o777 == 0o444


def test_empty_blob_is_a_valid_blob(store: Any) -> None:
    dgst = store.write(b"", expected=sha(b""), expected_size=0)
    assert dgst == sha(b"")
    assert store.read(dgst) == b""


def test_blob_larger_than_one_chunk_is_hashed_over_all_chunks(store: Any) -> None:
    data = bytes(range(256)) * (3 * 4096 + 7)  # a little over 3 MiB
    assert store.write(data) == sha(data)
    assert store.read(sha(data)) == data


def test_commit_leaves_no_ingest_file(store: Any) -> None:
    store.write(HELLO)
    assert ingest_files(store.content_root) == []


def test_writer_closed_without_commit_leaves_nothing(store: Any) -> None:
    with store.open_writer() as w:
        w.write(HELLO)
    assert blob_files(store.content_root) == []
    assert ingest_files(store.content_root) == []
    assert not store.exists(HELLO_DIGEST)


# --------------------------------------------------------------------------- dedup
def test_writing_existing_bytes_again_never_rewrites_the_blob(store: Any) -> None:
    dgst = store.write(HELLO)
    before = stat_key(blob_path(store.content_root, dgst))
    assert store.write(HELLO) == dgst
    assert stat_key(blob_path(store.content_root, dgst)) == before
    assert ingest_files(store.content_root) == []


def test_writing_existing_bytes_with_expected_digest_never_rewrites_the_blob(store: Any) -> None:
    dgst = store.write(HELLO)
    before = stat_key(blob_path(store.content_root, dgst))
    assert store.write(HELLO, expected=dgst, expected_size=len(HELLO)) == dgst
    assert stat_key(blob_path(store.content_root, dgst)) == before
    assert ingest_files(store.content_root) == []


def test_wrong_bytes_offered_for_an_existing_digest_fail_and_leave_the_blob_intact(store: Any) -> None:
    dgst = store.write(HELLO)
    before = stat_key(blob_path(store.content_root, dgst))
    with pytest.raises(DigestMismatch):
        store.write(b"x" * len(HELLO), expected=dgst, expected_size=len(HELLO))
    assert stat_key(blob_path(store.content_root, dgst)) == before
    assert store.read(dgst) == HELLO


# --------------------------------------------------------------------------- expectations
def test_fewer_bytes_than_expected_size_is_a_size_mismatch(store: Any) -> None:
    with pytest.raises(SizeMismatch):
        store.write(HELLO[:-1], expected_size=len(HELLO))
    assert blob_files(store.content_root) == []
    assert ingest_files(store.content_root) == []


def test_more_bytes_than_expected_size_is_a_size_mismatch(store: Any) -> None:
    with pytest.raises(SizeMismatch):
        store.write(HELLO + b"!", expected_size=len(HELLO))
    assert blob_files(store.content_root) == []
    assert ingest_files(store.content_root) == []


def test_more_bytes_than_expected_size_fail_while_writing_not_at_commit(store: Any) -> None:
    with store.open_writer(expected_size=3) as w:
        w.write(b"abc")
        with pytest.raises(SizeMismatch):
            w.write(b"d")
    assert ingest_files(store.content_root) == []


def test_expected_digest_mismatch_leaves_nothing_in_blobs_and_cleans_ingest(store: Any) -> None:
    with pytest.raises(DigestMismatch):
        store.write(HELLO, expected=sha(b"something else"))
    assert blob_files(store.content_root) == []
    assert ingest_files(store.content_root) == []
    assert not store.exists(sha(b"something else"))
    assert not store.exists(HELLO_DIGEST)


def test_matching_expected_digest_and_size_commit(store: Any) -> None:
    assert store.write(HELLO, expected=HELLO_DIGEST, expected_size=len(HELLO)) == HELLO_DIGEST


# --------------------------------------------------------------------------- digests as paths


@pytest.mark.parametrize("bad", INVALID_DIGESTS)
def test_invalid_digest_is_refused_as_expected_digest(store: Any, bad: str, tmp_path: Path) -> None:
    before = all_files(tmp_path)
    with pytest.raises(InvalidArgument):
        store.write(HELLO, expected=bad)
    assert all_files(tmp_path) - before <= {"content", "content/ingest"}
    assert blob_files(store.content_root) == []


# --------------------------------------------------------------------------- labels
def test_ingest_with_labels_records_them(nstore: Any) -> None:
    dgst = nstore.write(HELLO, labels={"a": "1"})
    assert nstore.store.info(dgst).labels == {"a": "1"}


def test_set_labels_merges_with_existing_labels(nstore: Any) -> None:
    dgst = nstore.write(HELLO, labels={"a": "1", "b": "2"})
    assert nstore.store.set_labels(dgst, {"b": "20", "c": "3"}) == {"a": "1", "b": "20", "c": "3"}
    assert nstore.store.info(dgst).labels == {"a": "1", "b": "20", "c": "3"}


def test_label_with_empty_value_removes_it(nstore: Any) -> None:
    dgst = nstore.write(HELLO, labels={"a": "1", "b": "2"})
    assert nstore.store.set_labels(dgst, {"a": ""}) == {"b": "2"}
    assert nstore.store.info(dgst).labels == {"b": "2"}


def test_removing_a_label_that_is_not_there_changes_nothing(nstore: Any) -> None:
    dgst = nstore.write(HELLO, labels={"a": "1"})
    assert nstore.store.set_labels(dgst, {"zzz": ""}) == {"a": "1"}


def test_labels_on_a_missing_blob_are_not_found(nstore: Any) -> None:
    with pytest.raises(NotFound):
        nstore.store.set_labels(HELLO_DIGEST, {"a": "1"})


def test_label_with_empty_key_is_invalid(nstore: Any) -> None:
    dgst = nstore.write(HELLO)
    with pytest.raises(InvalidArgument):
        nstore.store.set_labels(dgst, {"": "x"})
    assert nstore.store.info(dgst).labels == {}


def test_label_key_and_value_over_4096_bytes_is_invalid(nstore: Any) -> None:
    dgst = nstore.write(HELLO)
    nstore.store.set_labels(dgst, {"k": "v" * 4095})  # exactly 4096 bytes: allowed
    with pytest.raises(InvalidArgument):
        nstore.store.set_labels(dgst, {"k2": "v" * 4095})
    assert set(nstore.store.info(dgst).labels) == {"k"}


def test_labels_are_per_namespace(nstore: Any) -> None:
    other = nstore.in_namespace("other")
    dgst = nstore.write(HELLO, labels={"a": "1"})
    other.write(HELLO)
    assert other.store.info(dgst).labels == {}
    other.store.set_labels(dgst, {"b": "2"})
    assert nstore.store.info(dgst).labels == {"a": "1"}


def test_labels_are_validated_on_ingest(nstore: Any) -> None:
    with pytest.raises(InvalidArgument):
        nstore.write(HELLO, labels={"": "x"})
    assert not nstore.exists(HELLO_DIGEST)


# --------------------------------------------------------------------------- namespaces
def test_blob_ingested_in_one_namespace_is_not_visible_in_another(nstore: Any) -> None:
    other = nstore.in_namespace("other")
    dgst = nstore.write(HELLO)
    assert nstore.exists(dgst)
    assert not other.exists(dgst)
    assert [i.digest for i in other.store.list()] == []
    with pytest.raises(NotFound):
        other.store.info(dgst)
    with pytest.raises(NotFound):
        other.read(dgst)


def test_same_bytes_in_two_namespaces_share_one_blob_file(nstore: Any) -> None:
    other = nstore.in_namespace("other")
    dgst = nstore.write(HELLO)
    before = stat_key(blob_path(nstore.content_root, dgst))
    assert other.write(HELLO) == dgst
    assert stat_key(blob_path(nstore.content_root, dgst)) == before
    assert blob_files(nstore.content_root) == [dgst.split(":")[1]]


def test_list_shows_this_namespaces_blobs_sorted_by_digest(nstore: Any) -> None:
    digests = sorted(nstore.write(bytes([i]) * 10) for i in range(5))
    nstore.in_namespace("other").write(b"only in other")
    assert [i.digest for i in nstore.store.list()] == digests
    assert [i.size for i in nstore.store.list()] == [10] * 5


@pytest.mark.parametrize(
    ("text", "which"),
    [
        ("labels.team==infra", [0]),
        ('labels."containerd.io/uncompressed"', [1]),
        ("labels.team!=infra", [1, 2]),
        ("digest", [0, 1, 2]),  # always present
        ("size", []),  # known to containerd, never present
        ("labels", []),
    ],
)
def test_list_keeps_the_blobs_a_filter_matches(nstore: Any, text: str, which: list[int]) -> None:
    digests = [
        nstore.write(b"a", labels={"team": "infra"}),
        nstore.write(b"b", labels={"containerd.io/uncompressed": "sha256:" + "0" * 64}),
        nstore.write(b"c"),
    ]
    assert [i.digest for i in nstore.store.list(filters.parse(text))] == sorted(digests[i] for i in which)


def test_list_filters_on_the_digest(nstore: Any) -> None:
    dgst = nstore.write(HELLO)
    nstore.write(b"other")
    prefix = dgst[: len("sha256:") + 6]
    assert [i.digest for i in nstore.store.list(filters.parse(f"digest~=^{prefix}"))] == [dgst]


def test_rm_hides_the_blob_in_this_namespace_only(nstore: Any) -> None:
    other = nstore.in_namespace("other")
    dgst = nstore.write(HELLO)
    other.write(HELLO)
    nstore.store.delete(dgst)
    assert not nstore.exists(dgst)
    assert other.exists(dgst)
    assert other.read(dgst) == HELLO
    assert blob_path(nstore.content_root, dgst).exists()


def test_rm_in_the_last_namespace_removes_the_bytes(nstore: Any) -> None:
    other = nstore.in_namespace("other")
    dgst = nstore.write(HELLO)
    other.write(HELLO)
    nstore.store.delete(dgst)
    other.store.delete(dgst)
    assert not blob_path(nstore.content_root, dgst).exists()
    assert blob_files(nstore.content_root) == []


def test_rm_of_a_blob_this_namespace_does_not_have_is_not_found(nstore: Any) -> None:
    other = nstore.in_namespace("other")
    dgst = nstore.write(HELLO)
    with pytest.raises(NotFound):
        other.store.delete(dgst)
    assert nstore.exists(dgst)
    assert blob_path(nstore.content_root, dgst).exists()


@pytest.mark.parametrize("bad", INVALID_DIGESTS[:4])
def test_rm_refuses_an_invalid_digest(nstore: Any, bad: str, tmp_path: Path) -> None:
    outside = tmp_path / "x"
    outside.write_bytes(b"keep me")
    with pytest.raises(InvalidArgument):
        nstore.store.delete(bad)
    assert outside.read_bytes() == b"keep me"


def test_blob_whose_file_vanished_is_not_listed(nstore: Any) -> None:
    dgst = nstore.write(HELLO)
    os.unlink(blob_path(nstore.content_root, dgst))
    assert nstore.store.list() == []
    assert not nstore.exists(dgst)
