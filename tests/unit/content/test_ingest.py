"""Resumable partial writes (``ctrpy.content.ingest.ResumableWriter``): the sink a registry
download streams into.

Not in the writer conformance suite of ``test_store.py``: its contract differs on purpose
(the digest and size are always known in advance; a writer closed without a commit keeps
its file for the next writer of the blob to adopt)."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ctrpy.client import Client
from ctrpy.content.ingest import Cancelled, ResumableWriter, partial_name
from ctrpy.errors import DigestMismatch, SizeMismatch
from ctrpy.metadata.leases import CONTENT, Held

DATA = bytes(range(256)) * 400  # 102,400 bytes
DIGEST = "sha256:" + hashlib.sha256(DATA).hexdigest()


@contextmanager
def writer(client: Client, data: bytes = DATA, cancelled: Callable[[], bool] = lambda: False) -> Iterator[ResumableWriter]:
    with client.lease("pull") as held:
        w = ResumableWriter(client.root.blobs, "sha256:" + hashlib.sha256(data).hexdigest(), len(data), held, cancelled)
        try:
            yield w
        finally:
            w.close()


def ingest(client: Client) -> list[str]:
    d = client.root.blobs.ingest_dir
    return sorted(p.name for p in d.iterdir()) if d.is_dir() else []


def dead_partial(client: Client, data: bytes, dgst: str = DIGEST) -> Path:
    """A partial write of a writer whose process is gone."""
    lease = client.leases.create("ctrpy-pull-00000000000000aa", owner="no-such-boot/1/1")
    path = client.root.blobs.ingest_dir / partial_name(Held(client.leases, lease.id), dgst)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_a_committed_download_is_the_blob_read_only_and_leaves_no_partial(client: Client) -> None:
    with writer(client) as w:
        w.write(DATA[:1000])
        w.write(DATA[1000:])
        w.commit()
    path = client.root.blobs.path(DIGEST)
    assert path.read_bytes() == DATA and path.stat().st_mode & 0o777 == 0o444
    assert ingest(client) == []


def test_the_partial_file_is_named_after_the_lease_and_made_at_the_first_byte(client: Client) -> None:
    with writer(client) as w:
        assert ingest(client) == []
        w.write(DATA[:10])
        assert ingest(client) == [w.path.name]
        assert w.path.name.startswith(w.lease.tag) and w.path.name.endswith(DIGEST.split(":")[1])


def test_the_lease_holds_the_digest_from_the_start(client: Client) -> None:
    with writer(client) as w:
        assert (CONTENT, DIGEST) in client.leases.resources(w.lease.id)


def test_bytes_past_the_size_are_refused_before_they_are_written(client: Client) -> None:
    with writer(client) as w:
        w.write(DATA)
        with pytest.raises(SizeMismatch):
            w.write(b"x")
        assert w.path.stat().st_size == len(DATA)


def test_wrong_bytes_fail_the_commit_and_delete_the_partial_file(client: Client) -> None:
    with writer(client) as w:
        w.write(b"\0" * len(DATA))
        with pytest.raises(DigestMismatch) as e:
            w.commit()
    assert (e.value.expected, e.value.actual) == (DIGEST, "sha256:" + hashlib.sha256(b"\0" * len(DATA)).hexdigest())
    assert ingest(client) == [] and not client.root.blobs.exists(DIGEST)


def test_too_few_bytes_fail_the_commit_and_delete_the_partial_file(client: Client) -> None:
    with writer(client) as w:
        w.write(DATA[:5])
        with pytest.raises(SizeMismatch):
            w.commit()
    assert ingest(client) == []


def test_restart_drops_what_was_written(client: Client) -> None:
    with writer(client) as w:
        w.write(b"garbage")
        w.restart()
        assert (w.offset, w.path.stat().st_size) == (0, 0)
        w.write(DATA)
        w.commit()
    assert client.root.blobs.path(DIGEST).read_bytes() == DATA


def test_an_empty_blob_commits(client: Client) -> None:
    with writer(client, b"") as w:
        w.commit()
    assert client.root.blobs.path("sha256:" + hashlib.sha256(b"").hexdigest()).read_bytes() == b""


def test_closing_keeps_the_partial_file(client: Client) -> None:
    with writer(client) as w:
        w.write(DATA[:100])
    assert len(ingest(client)) == 1


def test_a_dead_writers_partial_file_is_adopted_and_resumed(client: Client) -> None:
    dead_partial(client, DATA[:40_000])
    with writer(client) as w:
        assert (w.offset, w.adopted) == (40_000, 40_000)
        assert ingest(client) == [w.path.name]  # renamed to this writer's lease
        w.write(DATA[40_000:])
        w.commit()
    assert client.root.blobs.path(DIGEST).read_bytes() == DATA


def test_an_adopted_file_longer_than_the_blob_starts_over(client: Client) -> None:
    dead_partial(client, DATA + b"more")
    with writer(client) as w:
        assert (w.offset, w.path.stat().st_size) == (0, 0)


def test_a_live_writers_partial_file_is_not_adopted(client: Client) -> None:
    with writer(client) as first:
        first.write(DATA[:10])
        with writer(client) as second:
            assert second.offset == 0
            second.write(DATA)
            second.commit()
        assert first.path.read_bytes() == DATA[:10]


def test_a_partial_file_of_another_blob_is_not_adopted(client: Client) -> None:
    dead_partial(client, b"other", "sha256:" + "ab" * 32)
    with writer(client) as w:
        assert w.offset == 0


def test_a_cancelled_download_stops_at_its_next_write(client: Client) -> None:
    with writer(client, cancelled=lambda: True) as w, pytest.raises(Cancelled):
        w.write(DATA[:10])


def test_a_blob_stored_meanwhile_makes_the_commit_drop_the_partial(client: Client) -> None:
    with writer(client) as w:
        w.write(DATA)
        client.ingest(io.BytesIO(DATA))  # another writer stored the same bytes
        w.commit()
    assert ingest(client) == []


def test_a_collection_keeps_a_live_writers_partial_file_and_removes_a_dead_ones(client: Client) -> None:
    dead = dead_partial(client, b"x", "sha256:" + "cd" * 32)
    with writer(client) as w:
        w.write(DATA[:10])
        freed = client.collect()
        assert w.path.exists() and not dead.exists()
        assert freed.partial == 1
    client.collect()
    assert ingest(client) == []
