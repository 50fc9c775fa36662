"""Garbage collection: mark from the roots, sweep what nothing holds (containerd's model).

**Roots**, in every namespace: image records (unless their ``containerd.io/gc.expire``
has passed); live leases (not expired, and, when a process owns one, that process still
running) with the content, snapshots and partial writes they hold; content and snapshots
labelled ``containerd.io/gc.root``; the snapshots of mounts (``mount:`` keys).

**References**: a content row's ``containerd.io/gc.ref.content[.|/]*`` labels name content
of its namespace, ``containerd.io/gc.ref.snapshot.<snapshotter>[/...]`` a snapshot; a
snapshot holds its parent (and its own reference labels).  Import, unpack and pull write
these labels as ctr does (see :func:`ctrpy.images.walk.reference_labels`).

**Sweep**, in two write transactions, so no writer interleaves with either: the first
deletes the rows (unmarked content and snapshot rows, dead leases) and changes nothing on
disk; the second, once those deletions are committed, changes no row and removes what no
row holds any more: blob files no row (of any namespace) and no lease holds are unlinked,
snapshot directories that no row names (committed, active, or left by an interrupted run)
are moved to ``ROOT/tmp`` and deleted after it, partial writes whose lease is gone (and
older than ``grace``) are deleted.  A collection killed at any point leaves no row naming
something whose bytes are gone (the first transaction rolls back whole; the second has
nothing to roll back), and the next one removes what it did not.  Writers add what they write
to their lease *before* it becomes visible (a blob before its rename, a snapshot in the
transaction that creates its row), so a collection running at the same moment in another
process never takes what an operation in flight has written.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ctrpy.archive.treeops import remove_tree, tree_usage
from ctrpy.errors import CtrpyError
from ctrpy.metadata.db import loads_map
from ctrpy.metadata.leases import CONTENT, INGEST, SNAPSHOT, Lease
from ctrpy.root import Root

LABEL_ROOT = "containerd.io/gc.root"
LABEL_EXPIRE = "containerd.io/gc.expire"
REF_CONTENT = "containerd.io/gc.ref.content"
REF_SNAPSHOT = "containerd.io/gc.ref.snapshot."
MOUNT_PREFIX = "mount:"
INGEST_SEP = "@"  # partial writes are named <lease id>@<random>

ContentNode = tuple[str, str]  # (namespace, digest)
SnapshotNode = tuple[str, str, str]  # (namespace, snapshotter, key)


def root_label() -> dict[str, str]:
    """``containerd.io/gc.root`` with this moment as its value: what keeps a thing that no
    image holds (hand-ingested content, snapshots and layers made by hand)."""
    return {LABEL_ROOT: datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}


@dataclass
class Collected:
    """What one collection freed."""

    blobs: int = 0
    blob_bytes: int = 0
    snapshots: int = 0
    snapshot_bytes: int = 0
    content_rows: int = 0
    leases: int = 0
    partial: int = 0
    partial_bytes: int = 0
    digests: list[str] = field(default_factory=list)  # the blob files deleted

    @property
    def bytes(self) -> int:
        return self.blob_bytes + self.snapshot_bytes + self.partial_bytes


def _expired(labels: dict[str, str], at: datetime) -> bool:
    text = labels.get(LABEL_EXPIRE)
    if not text:
        return False
    try:
        return at > datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False


def references(labels: dict[str, str]) -> tuple[list[str], list[tuple[str, str]]]:
    """The content digests and (snapshotter, key) pairs a row's labels hold."""
    content: list[str] = []
    snaps: list[tuple[str, str]] = []
    for k, v in labels.items():
        if k.startswith(REF_CONTENT) and (len(k) == len(REF_CONTENT) or k[len(REF_CONTENT)] in "./"):
            content.append(v)
        elif k.startswith(REF_SNAPSHOT):
            snapshotter = k[len(REF_SNAPSHOT):].split("/", 1)[0]
            if snapshotter:
                snaps.append((snapshotter, v))
    return content, snaps


class _Mark:
    def __init__(self, conn: sqlite3.Connection, at: datetime):
        self.conn = conn
        self.at = at
        self.content: set[ContentNode] = set()
        self.snapshots: set[SnapshotNode] = set()
        self.content_labels: dict[ContentNode, dict[str, str]] = {}
        self.snapshot_rows: dict[SnapshotNode, tuple[str, dict[str, str], str]] = {}  # -> parent, labels, dir
        self._todo_content: list[ContentNode] = []
        self._todo_snap: list[SnapshotNode] = []

    def load(self) -> None:
        for ns, dgst, labels in self.conn.execute("SELECT namespace, digest, labels FROM content"):
            self.content_labels[(ns, dgst)] = loads_map(labels)
        for sn, ns, key, parent, labels, d in self.conn.execute(
            "SELECT snapshotter, namespace, key, parent, labels, dir FROM snapshots"
        ):
            self.snapshot_rows[(ns, sn, key)] = (parent, loads_map(labels), d)

    def drop_dead_leases(self) -> int:
        dead: list[tuple[str, str]] = []
        for ns, lid, labels, owner in self.conn.execute("SELECT namespace, id, labels, owner FROM leases"):
            lease = Lease(lid, loads_map(labels), owner=owner)
            if not lease.alive(self.at):
                dead.append((ns, lid))
        for ns, lid in dead:
            self.conn.execute("DELETE FROM leases WHERE namespace = ? AND id = ?", (ns, lid))
            self.conn.execute("DELETE FROM lease_resources WHERE namespace = ? AND lease = ?", (ns, lid))
        return len(dead)

    def roots(self) -> None:
        for ns, dgst, labels in self.conn.execute("SELECT namespace, digest, labels FROM images"):
            if not _expired(loads_map(labels), self.at):
                self.add_content(ns, dgst)
        for ns, kind, key in self.conn.execute("SELECT namespace, kind, key FROM lease_resources"):
            if kind == CONTENT:
                self.add_content(ns, key)
            elif kind == SNAPSHOT:
                sn, _, skey = key.partition("/")
                self.add_snapshot(ns, sn, skey)
        for (ns, dgst), labels in self.content_labels.items():
            if LABEL_ROOT in labels:
                self.add_content(ns, dgst)
        for (ns, sn, key), (_parent, labels, _d) in self.snapshot_rows.items():
            if LABEL_ROOT in labels or key.startswith(MOUNT_PREFIX):
                self.add_snapshot(ns, sn, key)

    def add_content(self, ns: str, dgst: str) -> None:
        node = (ns, dgst)
        if node not in self.content:
            self.content.add(node)
            self._todo_content.append(node)

    def add_snapshot(self, ns: str, sn: str, key: str) -> None:
        node = (ns, sn, key)
        if key and node not in self.snapshots:
            self.snapshots.add(node)
            self._todo_snap.append(node)

    def propagate(self) -> None:
        while self._todo_content or self._todo_snap:
            while self._todo_content:
                ns, dgst = self._todo_content.pop()
                self._follow(ns, self.content_labels.get((ns, dgst), {}))
            while self._todo_snap:
                ns, sn, key = self._todo_snap.pop()
                row = self.snapshot_rows.get((ns, sn, key))
                if row is None:
                    continue
                parent, labels, _d = row
                self.add_snapshot(ns, sn, parent)
                self._follow(ns, labels)

    def _follow(self, ns: str, labels: dict[str, str]) -> None:
        content, snaps = references(labels)
        for dgst in content:
            self.add_content(ns, dgst)
        for sn, key in snaps:
            self.add_snapshot(ns, sn, key)


def collect(root: Root, *, grace: float = 0.0) -> Collected:
    """One full collection of every namespace of ``root``; see the module's docstring.
    ``grace``: partial writes younger than this many seconds stay even when nothing holds
    them (``content prune --older-than``)."""
    out = Collected()
    if not (root.path / "metadata.db").exists():
        return out
    db = root.db
    trash = root.path / "tmp" / f"trash-{secrets.token_hex(6)}"
    moved: list[Path] = []
    with db.transaction() as conn:  # the rows; nothing on disk changes here
        mark = _Mark(conn, datetime.now(UTC))
        out.leases = mark.drop_dead_leases()
        mark.load()
        mark.roots()
        mark.propagate()
        gone_content = [node for node in mark.content_labels if node not in mark.content]
        conn.executemany("DELETE FROM content WHERE namespace = ? AND digest = ?", gone_content)
        out.content_rows = len(gone_content)
        gone_snaps = [node for node in mark.snapshot_rows if node not in mark.snapshots]
        conn.executemany(
            "DELETE FROM snapshots WHERE namespace = ? AND snapshotter = ? AND key = ?", gone_snaps
        )
        out.snapshots = len(gone_snaps)
    with db.transaction() as conn:  # the files no row holds now (rows written meanwhile included)
        held = _Held.read(conn)
        _sweep_blobs(root, held.digests, out)
        moved = _move_snapshot_dirs(root, held.dirs, trash)
        _sweep_partials(root, held.leases, held.ingests, grace, out)
        stale = _stale_tmp(root, held.leases, trash)  # decided while no lease can start
    for path in moved:
        out.snapshot_bytes += _usage(path)
    for path in (trash, *stale):
        remove_tree(path, best_effort=True)
    return out


@dataclass
class _Held:
    """What the rows hold, read under the write lock after the rows were collected: every
    blob a content row (of any namespace) or a lease names, every snapshot directory a row
    names, every lease and the partial writes leases name."""

    digests: set[str]
    dirs: set[tuple[str, str]]  # (snapshotter, directory)
    leases: set[str]
    ingests: set[str]

    @classmethod
    def read(cls, conn: sqlite3.Connection) -> _Held:
        resources = conn.execute("SELECT kind, key FROM lease_resources").fetchall()
        return cls(
            {d for (d,) in conn.execute("SELECT DISTINCT digest FROM content")}
            | {key for kind, key in resources if kind == CONTENT},
            {(sn, d) for sn, d in conn.execute("SELECT snapshotter, dir FROM snapshots")},
            {lid for (lid,) in conn.execute("SELECT id FROM leases")},
            {key for kind, key in resources if kind == INGEST},
        )


def _sweep_blobs(root: Root, kept: set[str], out: Collected) -> None:
    for dgst in root.blobs.digests():
        if dgst in kept:
            continue
        try:
            size = root.blobs.path(dgst).stat().st_size
        except FileNotFoundError:
            continue
        if root.blobs.delete(dgst):
            out.blobs += 1
            out.blob_bytes += size
            out.digests.append(dgst)


def _snapshot_dirs(root: Root) -> Iterable[tuple[str, Path]]:
    base = root.path / "snapshots"
    if not base.is_dir():
        return
    for sn_dir in sorted(base.iterdir()):
        trees = sn_dir / "snapshots"
        if sn_dir.name.startswith(".") or not trees.is_dir():
            continue
        for tree in sorted(trees.iterdir()):
            yield sn_dir.name, tree


def _move_snapshot_dirs(root: Root, kept: set[tuple[str, str]], trash: Path) -> list[Path]:
    """Every snapshot directory no kept row names, moved into ``trash`` (fast, inside the
    transaction); deleting the trees can wait until after the commit."""
    moved: list[Path] = []
    for snapshotter, tree in _snapshot_dirs(root):
        if (snapshotter, tree.name) in kept:
            continue
        trash.mkdir(parents=True, exist_ok=True)
        dest = trash / f"{snapshotter}-{tree.name}"
        try:
            os.rename(tree, dest)
        except OSError:
            continue  # e.g. a mount point: left for the next collection
        moved.append(dest)
    return moved


def _sweep_partials(root: Root, live: set[str], leased: set[str], grace: float, out: Collected) -> None:
    ingest = root.blobs.ingest_dir
    if not ingest.is_dir():
        return
    cutoff = time.time() - grace
    for p in ingest.iterdir():
        owner = p.name.split(INGEST_SEP, 1)[0] if INGEST_SEP in p.name else None
        if (owner is not None and owner in live) or p.name in leased:
            continue
        try:
            st = p.stat()
            # named after a lease that is gone: garbage now; unnamed (an older ctrpy's, or a
            # writer without a lease): only once older than the grace period
            if owner is not None or st.st_mtime <= cutoff:
                p.unlink()
                out.partial += 1
                out.partial_bytes += st.st_size
        except OSError:
            pass


def _stale_tmp(root: Root, live: set[str], trash: Path) -> list[Path]:
    """Scratch trees (``flatten``'s) whose lease is gone, and the trash of other collections
    (killed, or deleting theirs after their commit: ours holds the write lock now)."""
    tmp = root.path / "tmp"
    if not tmp.is_dir():
        return []
    stale: list[Path] = []
    for p in tmp.iterdir():
        owner = p.name.split(INGEST_SEP, 1)[0] if INGEST_SEP in p.name else None
        if p == trash or (owner is not None and owner in live):
            continue
        if p.name.startswith("trash-") or owner is not None:
            stale.append(p)
    return stale


def _usage(path: Path) -> int:
    return tree_usage(path)[0]


def backfill_labels(root: Root) -> None:
    """Write containerd's reference labels for content imported before ctrpy wrote them
    (a root made by an older ctrpy), so the collector sees what its images hold: every
    present index and manifest of every image, in every namespace, for every platform,
    and each config's unpacked snapshot.  Runs once (the migration notes it as to do)."""
    from ctrpy.content import ContentStore
    from ctrpy.images.walk import Walker
    from ctrpy.oci import Descriptor, Matcher, digest, mediatypes

    db = root.db
    everything = Matcher(all_platforms=True)
    planned: dict[tuple[str, str], dict[str, str]] = {}
    snapshots = {(ns, sn, key) for ns, sn, key in db.conn.execute(
        "SELECT namespace, snapshotter, key FROM snapshots WHERE kind = 'committed'")}
    for ns, media_type, dgst, size in db.conn.execute("SELECT namespace, media_type, digest, size FROM images"):
        content = ContentStore(root.blobs, db, ns)
        walker = Walker(content.read_json, content.exists)
        try:
            for item in walker.content(Descriptor(media_type, dgst, size), everything):
                d = item.descriptor
                if not walker.exists(d.digest):
                    continue
                if mediatypes.is_index(d.media_type) or mediatypes.is_manifest(d.media_type):
                    planned.setdefault((ns, d.digest), {}).update(walker.reference_labels(d))
                if mediatypes.is_image_config(d.media_type):
                    chain = digest.chain_ids(walker.config(d).diff_ids)
                    for sn in {s for (n, s, _k) in snapshots if n == ns}:
                        if chain and (ns, sn, chain[-1]) in snapshots:
                            planned.setdefault((ns, d.digest), {})[f"{REF_SNAPSHOT}{sn}"] = chain[-1]
        except CtrpyError:  # a broken image keeps what it had; the others still get labels
            continue
    with db.transaction() as conn:
        for (ns, dgst), labels in planned.items():
            ContentStore(root.blobs, db, ns)._merge_labels_if_present(conn, dgst, labels)
        db.done(conn, "gc-labels")
