"""Leases: what holds content, snapshots and partial writes that no image holds yet.

As in containerd, a lease is a named, labelled record per namespace; resources added to it
(``content`` digests, ``snapshot`` keys as ``<snapshotter>/<key>``, ``ingest`` names) are
roots for the garbage collector until the lease is deleted or expires (the label
``containerd.io/gc.expire``, RFC 3339).

Beyond containerd: a lease an operation takes for itself (import, unpack, export, pull)
records its **owner**, the process, as ``<boot id>/<pid>/<start time>``.  When that
process is gone (killed, or the machine rebooted), the lease is dead and the next
collection drops it at once, instead of waiting for an expiry.
"""

from __future__ import annotations

import builtins
import os
import re
import secrets
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ctrpy.errors import AlreadyExists, InvalidArgument, NotFound
from ctrpy.metadata.db import Database, dumps, loads_map, now
from ctrpy.metadata.labels import merge as merge_labels

LABEL_EXPIRE = "containerd.io/gc.expire"
CONTENT, SNAPSHOT, INGEST = "content", "snapshot", "ingest"
KINDS = (CONTENT, SNAPSHOT, INGEST)
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class LeaseNotFound(NotFound):
    def __init__(self, lease_id: str) -> None:
        super().__init__(f"lease {lease_id!r} not found")
        self.lease_id = lease_id


@dataclass
class Lease:
    id: str
    labels: dict[str, str] = field(default_factory=dict)
    created_at: str = ""
    owner: str = ""  # "" for leases a user made; else the process holding it

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "createdAt": self.created_at, "labels": self.labels, "owner": self.owner}

    def expires_at(self) -> datetime | None:
        text = self.labels.get(LABEL_EXPIRE)
        if not text:
            return None
        try:
            return datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None  # containerd ignores an invalid expiry too

    def expired(self, at: datetime | None = None) -> bool:
        exp = self.expires_at()
        return exp is not None and (at or datetime.now(UTC)) > exp

    def alive(self, at: datetime | None = None) -> bool:
        return not self.expired(at) and not abandoned(self.id) and (not self.owner or owner_alive(self.owner))


# --------------------------------------------------------------------------- owners
def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return "unknown-boot"


def _start_time(pid: int) -> str | None:
    """A process's start time in clock ticks since boot (field 22 of /proc/PID/stat)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may hold spaces or ')'
    rest = stat[stat.rfind(b")") + 2 :].split()
    return rest[19].decode() if len(rest) > 19 else None


def this_process() -> str:
    pid = os.getpid()
    return f"{_boot_id()}/{pid}/{_start_time(pid) or '?'}"


def owner_alive(owner: str) -> bool:
    """Is the process ``owner`` names still running (same boot, same pid, same start)?"""
    boot, _, rest = owner.partition("/")
    pid_text, _, started = rest.partition("/")
    if boot != _boot_id() or not pid_text.isdigit():
        return False
    return _start_time(int(pid_text)) == started


# leases this process took for itself and then could not delete (the database could not be
# written, e.g. on a full disk): their operation is over, so they hold nothing for this
# process's own collections either (other processes see them die with it)
_abandoned: set[str] = set()


def abandon(lease_id: str) -> None:
    _abandoned.add(lease_id)


def abandoned(lease_id: str) -> bool:
    return lease_id in _abandoned


def new_id(purpose: str) -> str:
    return f"ctrpy-{purpose}-{secrets.token_hex(8)}"


def expiry_label(seconds: float) -> str:
    at = datetime.fromtimestamp(datetime.now(UTC).timestamp() + seconds, UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------- the store
class LeaseStore:
    def __init__(self, db: Database, namespace: str):
        self.db = db
        self.namespace = namespace

    def create(
        self, lease_id: str | None = None, labels: dict[str, str] | None = None, *, owner: str = ""
    ) -> Lease:
        lid = lease_id or new_id("lease")
        if not _ID.fullmatch(lid):
            raise InvalidArgument(f"invalid lease id {lid!r}: want [A-Za-z0-9][A-Za-z0-9._-]*")
        initial = merge_labels({}, labels or {})
        t = now()
        with self.db.transaction() as conn:  # no namespace row: a lease alone makes none
            try:
                conn.execute(
                    "INSERT INTO leases (namespace, id, labels, created_at, owner) VALUES (?, ?, ?, ?, ?)",
                    (self.namespace, lid, dumps(initial), t, owner),
                )
            except sqlite3.IntegrityError:
                raise AlreadyExists(f"lease {lid!r} already exists") from None
        return Lease(lid, initial, t, owner)

    def list(self) -> builtins.list[Lease]:
        rows = self.db.query(
            "SELECT id, labels, created_at, owner FROM leases WHERE namespace = ? ORDER BY created_at, id",
            (self.namespace,),
        )
        return [Lease(r["id"], loads_map(r["labels"]), r["created_at"], r["owner"]) for r in rows]

    def get(self, lease_id: str) -> Lease:
        rows = self.db.query(
            "SELECT id, labels, created_at, owner FROM leases WHERE namespace = ? AND id = ?",
            (self.namespace, lease_id),
        )
        if not rows:
            raise LeaseNotFound(lease_id)
        r = rows[0]
        return Lease(r["id"], loads_map(r["labels"]), r["created_at"], r["owner"])

    def delete(self, lease_id: str) -> None:
        with self.db.transaction() as conn:
            cur = conn.execute("DELETE FROM leases WHERE namespace = ? AND id = ?", (self.namespace, lease_id))
            if cur.rowcount == 0:
                raise LeaseNotFound(lease_id)
            conn.execute(
                "DELETE FROM lease_resources WHERE namespace = ? AND lease = ?", (self.namespace, lease_id)
            )

    def add(self, lease_id: str, kind: str, keys: Iterable[str], conn: sqlite3.Connection | None = None) -> None:
        """Hold ``keys`` of ``kind`` under the lease (in ``conn``'s transaction, or its own)."""
        if kind not in KINDS:
            raise InvalidArgument(f"unknown lease resource kind {kind!r}")
        rows = [(self.namespace, lease_id, kind, k) for k in keys]
        if not rows:
            return
        sql = "INSERT OR IGNORE INTO lease_resources (namespace, lease, kind, key) VALUES (?, ?, ?, ?)"
        if conn is not None:
            conn.executemany(sql, rows)
            return
        with self.db.transaction() as own:
            own.executemany(sql, rows)

    def resources(self, lease_id: str) -> builtins.list[tuple[str, str]]:
        rows = self.db.query(
            "SELECT kind, key FROM lease_resources WHERE namespace = ? AND lease = ? ORDER BY kind, key",
            (self.namespace, lease_id),
        )
        return [(r["kind"], r["key"]) for r in rows]


def rename_snapshot(conn: sqlite3.Connection, namespace: str, snapshotter: str, old: str, new: str) -> None:
    """A committed snapshot keeps the leases its active key had (inside the commit)."""
    conn.execute(
        "UPDATE OR REPLACE lease_resources SET key = ? WHERE namespace = ? AND kind = ? AND key = ?",
        (f"{snapshotter}/{new}", namespace, SNAPSHOT, f"{snapshotter}/{old}"),
    )


class Held:
    """An operation's own lease, as the writers see it: each adds what it writes (a blob's
    digest before the blob becomes visible, a snapshot in the transaction that creates its
    row), and names its partial files after the lease so a collection knows whose they are."""

    def __init__(self, store: LeaseStore, lease_id: str):
        self.store = store
        self.id = lease_id
        self._content: set[str] = set()

    @property
    def tag(self) -> str:
        """The prefix of this lease's partial writes and scratch directories."""
        return f"{self.id}@"

    def content(self, digest: str) -> None:
        if digest not in self._content:
            self.store.add(self.id, CONTENT, [digest])
            self._content.add(digest)

    def contents(self, digests: Iterable[str]) -> None:
        new = [d for d in digests if d not in self._content]
        self.store.add(self.id, CONTENT, new)
        self._content.update(new)

    def snapshot(self, conn: sqlite3.Connection, snapshotter: str, key: str) -> None:
        self.store.add(self.id, SNAPSHOT, [f"{snapshotter}/{key}"], conn)

    def snapshots(self, snapshotter: str, keys: Iterable[str]) -> None:
        """Hold snapshots the operation builds on but did not make (in a transaction of
        their own), before it looks whether they exist."""
        self.store.add(self.id, SNAPSHOT, [f"{snapshotter}/{k}" for k in keys])

    def ingest(self, name: str) -> None:
        self.store.add(self.id, INGEST, [name])
