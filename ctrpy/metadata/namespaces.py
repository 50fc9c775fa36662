"""Namespaces: containerd's rule for names, creation on first use, guarded removal."""

from __future__ import annotations

import builtins
import re
import sqlite3

from ctrpy.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from ctrpy.metadata.db import Database, dumps, loads_map, now
from ctrpy.metadata.labels import merge as merge_labels

_NAME = re.compile(r"[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*")
MAX_NAME = 76
DEFAULT = "default"


def validate(name: str) -> str:
    if len(name) > MAX_NAME or not _NAME.fullmatch(name):
        raise InvalidArgument(
            f"invalid namespace {name!r}: must match [A-Za-z0-9]+([._-][A-Za-z0-9]+)* "
            f"and be at most {MAX_NAME} characters"
        )
    return name


def ensure(conn: sqlite3.Connection, name: str) -> None:
    """Create ``name`` inside an open transaction if it does not exist yet."""
    conn.execute(
        "INSERT OR IGNORE INTO namespaces (name, labels, created_at) VALUES (?, '{}', ?)",
        (name, now()),
    )


class NamespaceStore:
    def __init__(self, db: Database):
        self.db = db

    def list(self) -> builtins.list[tuple[str, dict[str, str]]]:
        rows = self.db.query("SELECT name, labels FROM namespaces ORDER BY name")
        return [(r["name"], loads_map(r["labels"])) for r in rows]

    def create(self, name: str, labels: dict[str, str] | None = None) -> None:
        validate(name)
        initial = merge_labels({}, labels or {})
        with self.db.transaction() as conn:
            if conn.execute("SELECT 1 FROM namespaces WHERE name = ?", (name,)).fetchone():
                raise AlreadyExists(f"namespace {name!r} already exists")
            conn.execute(
                "INSERT INTO namespaces (name, labels, created_at) VALUES (?, ?, ?)",
                (name, dumps(initial), now()),
            )

    def set_labels(self, name: str, labels: dict[str, str]) -> dict[str, str]:
        with self.db.transaction() as conn:
            row = conn.execute("SELECT labels FROM namespaces WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise NotFound(f"namespace {name!r} not found")
            merged = merge_labels(loads_map(row[0]), labels)
            conn.execute("UPDATE namespaces SET labels = ? WHERE name = ?", (dumps(merged), name))
            return merged

    def remove(self, name: str) -> None:
        """Remove an empty namespace, with its content rows and leases (their bytes are
        garbage now, for the next collection when no other namespace holds them)."""
        with self.db.transaction() as conn:
            if not conn.execute("SELECT 1 FROM namespaces WHERE name = ?", (name,)).fetchone():
                raise NotFound(f"namespace {name!r} not found")
            for table, what in (("images", "images"), ("snapshots", "snapshots")):
                n = conn.execute(
                    f"SELECT COUNT(*) FROM {table} WHERE namespace = ?", (name,)
                ).fetchone()[0]
                if n:
                    raise FailedPrecondition(
                        f"namespace {name!r} must be empty, but it still has {n} {what}"
                    )
            conn.execute("DELETE FROM content WHERE namespace = ?", (name,))
            conn.execute("DELETE FROM lease_resources WHERE namespace = ?", (name,))
            conn.execute("DELETE FROM leases WHERE namespace = ?", (name,))
            conn.execute("DELETE FROM namespaces WHERE name = ?", (name,))
