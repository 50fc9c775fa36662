"""Snapshots: directory trees keyed by name, committed ones immutable and keyed by chainID.

Every snapshotter keeps its metadata in the ``snapshots`` table (per namespace) and its
trees under ``ROOT/snapshots/<name>/snapshots/<id>/``.  A snapshot is *active* while a
layer is being applied into it (or while it is mounted read-write) and *committed* after;
only committed rows are trusted by unpack, so a killed unpack leaves at most an active
row (key ``extract-...``, kind active) and a directory, which ``snapshots rm KEY`` removes.
"""

from __future__ import annotations

import builtins
import secrets
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from ctrpy.archive.treeops import remove_tree, tree_usage
from ctrpy.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from ctrpy.metadata import namespaces
from ctrpy.metadata.db import Database, dumps, loads_map, now
from ctrpy.metadata.labels import Labelled, stored
from ctrpy.metadata.labels import merge as merge_labels
from ctrpy.metadata.leases import Held, rename_snapshot

Kind = Literal["active", "committed", "view"]


@dataclass
class Snapshot(Labelled):
    key: str
    parent: str
    kind: Kind
    dir: str = ""  # the snapshot's directory name under snapshots/

    def to_json(self, snapshotter: str) -> dict[str, Any]:
        """One ``snapshots ls --json`` item (the envelope's lower camel case keys)."""
        return {"key": self.key, "parent": self.parent, "kind": self.kind, **self.labelled_json(),
                "snapshotter": snapshotter}


@dataclass
class Usage:
    size: int
    inodes: int


def dir_usage(path: Path) -> Usage:
    """Bytes (allocated blocks) and inodes under ``path``; hardlinks counted once (see
    :func:`ctrpy.archive.treeops.tree_usage`: iterative, any depth)."""
    return Usage(*tree_usage(path))


class Snapshotter:
    """Shared bookkeeping; subclasses say how a tree is prepared, applied to and mounted."""

    name: ClassVar[str] = ""
    whiteouts: ClassVar[Literal["delete", "overlay"]] = "delete"
    # True when a layer is applied into an empty directory whatever its parent holds, so
    # layers can be applied side by side and given their parents at commit time.
    independent_layers: ClassVar[bool] = False

    def __init__(self, root: Path, db: Database, namespace: str):
        self.root = root  # ROOT/snapshots/<name>
        self.db = db
        self.namespace = namespace

    # paths ----------------------------------------------------------------
    def snapshot_path(self, snap: Snapshot) -> Path:
        return self.root / "snapshots" / snap.dir

    def fs_path(self, snap: Snapshot) -> Path:
        return self.snapshot_path(snap) / "fs"

    # metadata ---------------------------------------------------------------
    def _row(self, key: str) -> Snapshot | None:
        rows = self.db.query(
            "SELECT key, parent, kind, labels, dir, created_at, updated_at FROM snapshots "
            "WHERE snapshotter = ? AND namespace = ? AND key = ?",
            (self.name, self.namespace, key),
        )
        if not rows:
            return None
        r = rows[0]
        return Snapshot(r["key"], r["parent"], r["kind"], r["dir"], **stored(r))

    def stat(self, key: str) -> Snapshot:
        snap = self._row(key)
        if snap is None:
            raise NotFound(f"snapshot {key!r} not found")
        return snap

    def exists(self, key: str, kind: Kind = "committed") -> bool:
        snap = self._row(key)
        return snap is not None and snap.kind == kind and self.fs_path(snap).is_dir()

    def forget_broken(self, key: str) -> bool:
        """Drop a committed row whose tree has gone (deleted by hand); True if one was dropped.

        Its children keep their rows: re-applying the layer under the same key restores them.
        """
        snap = self._row(key)
        if snap is None or self.fs_path(snap).is_dir():
            return False
        with self.db.transaction() as conn:
            conn.execute(
                "DELETE FROM snapshots WHERE snapshotter = ? AND namespace = ? AND key = ?",
                (self.name, self.namespace, key),
            )
        self._remove_dir(snap)
        return True

    def list(self) -> builtins.list[Snapshot]:
        rows = self.db.query(
            "SELECT key, parent, kind, labels, dir, created_at, updated_at FROM snapshots "
            "WHERE snapshotter = ? AND namespace = ? ORDER BY key",
            (self.name, self.namespace),
        )
        return [Snapshot(r["key"], r["parent"], r["kind"], r["dir"], **stored(r)) for r in rows]

    def chain(self, key: str) -> builtins.list[Snapshot]:
        """The snapshot and its ancestors, topmost first."""
        out: builtins.list[Snapshot] = []
        while key:
            snap = self.stat(key)
            out.append(snap)
            key = snap.parent
            if len(out) > 1000:
                raise FailedPrecondition("snapshot parent chain is too long (a cycle?)")
        return out

    # lifecycle ----------------------------------------------------------------
    def find(self, key: str) -> Snapshot | None:
        return self._row(key)

    def prepare(
        self,
        key: str,
        parent: str = "",
        labels: dict[str, str] | None = None,
        *,
        kind: Kind = "active",
        lease: Held | None = None,
    ) -> Snapshot:
        """Create an active snapshot on top of committed ``parent``; returns it with its dir.

        ``kind="view"`` records a read-only use of ``parent`` (a mount): its row makes
        ``parent`` a snapshot with a child, so it cannot be removed under the mount; its
        directory stays empty."""
        if not key:
            raise InvalidArgument("snapshot key must not be empty")
        if parent:
            p = self.stat(parent)
            if p.kind != "committed":
                raise FailedPrecondition(f"parent snapshot {parent!r} is not committed")
        dirname = secrets.token_hex(8)
        snap = Snapshot(key, parent, kind, dirname, labels=dict(labels or {}))
        with self.db.transaction() as conn:
            if self._exists_in(conn, key):
                raise AlreadyExists(f"snapshot {key!r} already exists")
            namespaces.ensure(conn, self.namespace)
            t = now()
            conn.execute(
                "INSERT INTO snapshots (snapshotter, namespace, key, parent, kind, labels, dir, "
                "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (self.name, self.namespace, key, parent, kind, dumps(snap.labels), dirname, t, t),
            )
            if lease is not None:
                lease.snapshot(conn, self.name, key)
        path = self.snapshot_path(snap)
        try:
            path.mkdir(parents=True)
            if kind != "view":
                self._populate(snap, parent)
        except BaseException:
            self._drop(snap)
            raise
        return snap

    def _exists_in(self, conn: sqlite3.Connection, key: str) -> bool:
        return conn.execute(
            "SELECT 1 FROM snapshots WHERE snapshotter = ? AND namespace = ? AND key = ?",
            (self.name, self.namespace, key),
        ).fetchone() is not None

    def commit(
        self, name: str, key: str, labels: dict[str, str] | None = None, *, parent: str | None = None
    ) -> Snapshot:
        """Turn active ``key`` into committed ``name`` (one transaction).

        ``parent`` re-parents the snapshot on commit; only snapshotters with
        ``independent_layers`` allow it (their trees do not contain the parent's).
        """
        snap = self.stat(key)
        if snap.kind != "active":
            raise FailedPrecondition(f"snapshot {key!r} is not active")
        if parent is not None and parent != snap.parent:
            if not self.independent_layers:
                raise FailedPrecondition(f"snapshotter {self.name} cannot re-parent {key!r}")
            if parent and self.stat(parent).kind != "committed":
                raise FailedPrecondition(f"parent snapshot {parent!r} is not committed")
        new_parent = snap.parent if parent is None else parent
        merged = {**snap.labels, **(labels or {})}
        with self.db.transaction() as conn:
            if self._exists_in(conn, name):
                raise AlreadyExists(f"snapshot {name!r} already exists")
            conn.execute(
                "UPDATE snapshots SET key = ?, parent = ?, kind = 'committed', labels = ?, updated_at = ? "
                "WHERE snapshotter = ? AND namespace = ? AND key = ?",
                (name, new_parent, dumps(merged), now(), self.name, self.namespace, key),
            )
            rename_snapshot(conn, self.namespace, self.name, key, name)
        return self.stat(name)

    def set_labels(self, key: str, labels: dict[str, str]) -> Snapshot:
        """Merge labels into a snapshot's (an empty value removes that label)."""
        with self.db.transaction() as conn:
            row = conn.execute(
                "SELECT labels FROM snapshots WHERE snapshotter = ? AND namespace = ? AND key = ?",
                (self.name, self.namespace, key),
            ).fetchone()
            if row is None:
                raise NotFound(f"snapshot {key!r} not found")
            conn.execute(
                "UPDATE snapshots SET labels = ?, updated_at = ? WHERE snapshotter = ? AND namespace = ? AND key = ?",
                (dumps(merge_labels(loads_map(row[0]), labels)), now(), self.name, self.namespace, key),
            )
        return self.stat(key)

    def remove(self, key: str) -> None:
        snap = self.stat(key)
        with self.db.transaction() as conn:
            child = conn.execute(
                "SELECT key FROM snapshots WHERE snapshotter = ? AND namespace = ? AND parent = ? LIMIT 1",
                (self.name, self.namespace, key),
            ).fetchone()
            if child is not None:
                raise FailedPrecondition(f"snapshot {key!r} has a child {child[0]!r}; remove that first")
            conn.execute(
                "DELETE FROM snapshots WHERE snapshotter = ? AND namespace = ? AND key = ?",
                (self.name, self.namespace, key),
            )
        self._remove_dir(snap)

    def _drop(self, snap: Snapshot) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "DELETE FROM snapshots WHERE snapshotter = ? AND namespace = ? AND key = ?",
                (self.name, self.namespace, snap.key),
            )
        self._remove_dir(snap)

    def _remove_dir(self, snap: Snapshot) -> None:
        remove_tree(self.snapshot_path(snap), best_effort=True)

    def usage(self, key: str) -> Usage:
        return dir_usage(self.fs_path(self.stat(key)))

    # what subclasses provide --------------------------------------------------
    def _populate(self, snap: Snapshot, parent: str) -> None:
        """Fill a new snapshot's directory so a layer can be applied into ``fs``."""
        raise NotImplementedError

    def lowerdirs(self, key: str) -> builtins.list[Path]:
        """Directories that, stacked (topmost first), give the committed snapshot's tree."""
        raise NotImplementedError
