"""Leases: named, labelled records per namespace that hold content, snapshots and partial
writes, and the owner a lease an operation takes for itself records (its process)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ctrpy.errors import AlreadyExists, InvalidArgument
from ctrpy.metadata.db import Database
from ctrpy.metadata.leases import (
    CONTENT,
    INGEST,
    LABEL_EXPIRE,
    SNAPSHOT,
    Held,
    Lease,
    LeaseNotFound,
    LeaseStore,
    expiry_label,
    owner_alive,
    rename_snapshot,
    this_process,
)
from tests.helpers import killed_when_ready

DIGEST = "sha256:" + "a" * 64


@pytest.fixture
def leases(db: Database) -> LeaseStore:
    return LeaseStore(db, "default")


def _rfc3339(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------- records
def test_a_lease_is_created_with_its_id_and_labels(leases: LeaseStore) -> None:
    made = leases.create("build-1", {"team": "ci"})
    assert (made.id, made.labels, made.owner) == ("build-1", {"team": "ci"}, "")
    assert leases.get("build-1") == made


def test_a_lease_without_an_id_gets_a_new_one(leases: LeaseStore) -> None:
    a, b = leases.create(), leases.create()
    assert a.id != b.id
    assert {lease.id for lease in leases.list()} == {a.id, b.id}


def test_leases_are_listed_oldest_first(leases: LeaseStore) -> None:
    for name in ("c", "a", "b"):
        leases.create(name)
    assert [lease.id for lease in leases.list()] == ["c", "a", "b"]


def test_leases_belong_to_their_namespace(db: Database) -> None:
    LeaseStore(db, "one").create("x")
    assert LeaseStore(db, "two").list() == []
    LeaseStore(db, "two").create("x")  # the same id in another namespace is another lease


def test_creating_a_lease_that_exists_is_already_exists(leases: LeaseStore) -> None:
    leases.create("x")
    with pytest.raises(AlreadyExists):
        leases.create("x")


@pytest.mark.parametrize("bad", ["-x", "a b", "a/b", "x" * 129, "ü"])
def test_an_invalid_lease_id_is_refused(leases: LeaseStore, bad: str) -> None:
    with pytest.raises(InvalidArgument):
        leases.create(bad)


def test_deleting_a_lease_drops_what_it_held(leases: LeaseStore) -> None:
    leases.create("x")
    leases.add("x", CONTENT, [DIGEST])
    leases.delete("x")
    assert leases.resources("x") == []
    with pytest.raises(LeaseNotFound) as info:
        leases.get("x")
    assert info.value.lease_id == "x"


def test_deleting_a_missing_lease_is_lease_not_found(leases: LeaseStore) -> None:
    with pytest.raises(LeaseNotFound):
        leases.delete("nothing")


# --------------------------------------------------------------------------- resources
def test_a_lease_holds_content_snapshots_and_partial_writes(leases: LeaseStore) -> None:
    leases.create("x")
    leases.add("x", CONTENT, [DIGEST, DIGEST])
    leases.add("x", SNAPSHOT, ["native/key"])
    leases.add("x", INGEST, ["x@part"])
    assert leases.resources("x") == [(CONTENT, DIGEST), (INGEST, "x@part"), (SNAPSHOT, "native/key")]


def test_an_unknown_resource_kind_is_refused(leases: LeaseStore) -> None:
    leases.create("x")
    with pytest.raises(InvalidArgument):
        leases.add("x", "volume", ["v"])


def test_a_committed_snapshot_keeps_the_lease_its_active_key_had(leases: LeaseStore, db: Database) -> None:
    leases.create("x")
    leases.add("x", SNAPSHOT, ["native/extract-1"])
    with db.transaction() as conn:
        rename_snapshot(conn, "default", "native", "extract-1", "sha256:chain")
    assert leases.resources("x") == [(SNAPSHOT, "native/sha256:chain")]


def test_held_names_partial_writes_after_its_lease(leases: LeaseStore) -> None:
    held = Held(leases, leases.create("op").id)
    held.content(DIGEST)
    held.contents([DIGEST, "sha256:" + "b" * 64])
    assert held.tag == "op@"
    assert leases.resources("op") == [(CONTENT, DIGEST), (CONTENT, "sha256:" + "b" * 64)]


# --------------------------------------------------------------------------- expiry
def test_a_lease_past_its_expiry_label_is_expired() -> None:
    now = datetime.now(UTC)
    assert Lease("x", {LABEL_EXPIRE: _rfc3339(now - timedelta(minutes=1))}).expired()
    assert not Lease("x", {LABEL_EXPIRE: _rfc3339(now + timedelta(minutes=1))}).expired()
    assert not Lease("x").expired()


def test_an_invalid_expiry_label_is_ignored_as_containerd_does() -> None:
    assert not Lease("x", {LABEL_EXPIRE: "tomorrow"}).expired()
    assert Lease("x", {LABEL_EXPIRE: "tomorrow"}).alive()


def test_expiry_label_is_rfc3339_utc_that_far_ahead() -> None:
    lease = Lease("x", {LABEL_EXPIRE: expiry_label(3600)})
    at = lease.expires_at()
    assert at is not None
    assert timedelta(minutes=59) < at - datetime.now(UTC) <= timedelta(hours=1)


# --------------------------------------------------------------------------- owners
def test_this_process_is_alive() -> None:
    assert owner_alive(this_process())
    assert Lease("x", owner=this_process()).alive()


def test_a_killed_process_is_dead(tmp_path: Path) -> None:
    """The owner a real process wrote for itself is not alive once it is killed -9 (its
    pid may be reused: the start time tells)."""
    code = (
        "import time\n"
        "from ctrpy.metadata.leases import this_process\n"
        "open(READY, 'w').write(this_process())\n"
        "time.sleep(600)\n"
    )
    owner = killed_when_ready(code, tmp_path / "owner")
    assert not owner_alive(owner)
    assert not Lease("x", owner=owner).alive()


def test_a_reused_pid_is_not_the_owner() -> None:
    """Same boot, same pid, another start time: another process that got the pid."""
    boot, pid, started = this_process().split("/")
    assert not owner_alive(f"{boot}/{pid}/{int(started) + 1}")


def test_an_owner_from_another_boot_is_dead() -> None:
    _boot, pid, started = this_process().split("/")
    assert not owner_alive(f"00000000-0000-0000-0000-000000000000/{pid}/{started}")


@pytest.mark.parametrize("owner", ["", "garbage", "boot/notapid/1", "//"])
def test_a_malformed_owner_is_dead(owner: str) -> None:
    assert not owner_alive(owner)

