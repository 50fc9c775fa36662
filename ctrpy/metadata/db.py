"""The SQLite metadata database: schema, migrations, transactions.

One file, ``ROOT/metadata.db``, in WAL mode.  ``PRAGMA user_version`` holds the schema
version; ``MIGRATIONS[i]`` takes the schema from version ``i`` to ``i + 1``.  Every change
that touches more than one row goes through :meth:`Database.transaction`.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ctrpy.errors import StoreError
from ctrpy.streams import json_bytes

MIGRATIONS: list[str] = [
    # 0 -> 1: namespaces, images, content
    """
    CREATE TABLE namespaces (
        name TEXT PRIMARY KEY,
        labels TEXT NOT NULL DEFAULT '{}',
        created_at TEXT NOT NULL
    );
    CREATE TABLE images (
        namespace TEXT NOT NULL,
        name TEXT NOT NULL,
        media_type TEXT NOT NULL,
        digest TEXT NOT NULL,
        size INTEGER NOT NULL,
        annotations TEXT NOT NULL DEFAULT '{}',
        labels TEXT NOT NULL DEFAULT '{}',
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (namespace, name)
    );
    CREATE TABLE content (
        namespace TEXT NOT NULL,
        digest TEXT NOT NULL,
        size INTEGER NOT NULL,
        labels TEXT NOT NULL DEFAULT '{}',
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (namespace, digest)
    );
    CREATE INDEX content_by_digest ON content (digest);
    """,
    # 1 -> 2: snapshots
    """
    CREATE TABLE snapshots (
        snapshotter TEXT NOT NULL,
        namespace TEXT NOT NULL,
        key TEXT NOT NULL,
        parent TEXT NOT NULL DEFAULT '',
        kind TEXT NOT NULL,
        labels TEXT NOT NULL DEFAULT '{}',
        dir TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (snapshotter, namespace, key)
    );
    CREATE INDEX snapshots_by_dir ON snapshots (snapshotter, dir);
    """,
    # 2 -> 3: leases and what they hold; a note that gc reference labels must be written
    # for content imported before (the first opener for writing does it, see Root)
    """
    CREATE TABLE leases (
        namespace TEXT NOT NULL,
        id TEXT NOT NULL,
        labels TEXT NOT NULL DEFAULT '{}',
        created_at TEXT NOT NULL,
        owner TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (namespace, id)
    );
    CREATE TABLE lease_resources (
        namespace TEXT NOT NULL,
        lease TEXT NOT NULL,
        kind TEXT NOT NULL,
        key TEXT NOT NULL,
        PRIMARY KEY (namespace, lease, kind, key)
    );
    CREATE INDEX lease_resources_by_key ON lease_resources (kind, key);
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    INSERT INTO meta (key, value) VALUES ('todo:gc-labels', '1');
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)


def now() -> str:
    """A UTC timestamp as containerd prints it (RFC 3339, nanoseconds)."""
    t = datetime.now(UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond:06d}000Z"


def dumps(obj: Any) -> str:
    """How maps are stored in a TEXT column: the one serializer, keys sorted."""
    return json_bytes(obj, sort_keys=True).decode()


def loads_map(text: str) -> dict[str, str]:
    value = json.loads(text or "{}")
    return {str(k): str(v) for k, v in value.items()}


class Database:
    """A handle on ``metadata.db``; cheap to create, opened lazily."""

    def __init__(
        self,
        path: Path,
        before_open: Callable[[], None] | None = None,
        after_open: Callable[[Database], None] | None = None,
    ):
        self.path = path
        self._before_open = before_open
        self._after_open = after_open  # e.g. a one-time upgrade step that needs the blobs
        self._conn: sqlite3.Connection | None = None
        self.read_only = False
        # one connection, shared by the threads of one operation (parallel layers,
        # downloads): statements and transactions take turns
        self.lock = threading.RLock()

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            with self.lock:
                if self._conn is None:
                    self._conn = self._open()
                    if self._after_open is not None:
                        self._after_open(self)
        return self._conn

    def _open(self) -> sqlite3.Connection:
        if self._before_open is not None:
            self._before_open()
        conn: sqlite3.Connection | None = None
        try:
            conn = sqlite3.connect(
                self.path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            self._migrate(conn)
        except sqlite3.Error as e:
            if conn is not None:
                conn.close()
            if self.path.exists() and not os.access(self.path.parent, os.W_OK):
                return self._open_read_only()
            raise StoreError(f"cannot open metadata database {self.path}: {e}") from e
        except BaseException:
            if conn is not None:
                conn.close()
            raise
        return conn

    def _open_read_only(self) -> sqlite3.Connection:
        """A root we cannot write (a read-only mount): reads work, writes fail clearly."""
        uri = "file:" + quote(str(self.path)) + "?immutable=1"
        try:
            conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.Error as e:
            raise StoreError(f"cannot open metadata database {self.path}: {e}") from e
        if version != SCHEMA_VERSION:
            conn.close()
            raise StoreError(
                f"metadata database {self.path} is read-only and has schema version {version}, "
                f"this ctrpy needs {SCHEMA_VERSION}"
            )
        self.read_only = True
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"metadata database {self.path} has schema version {version}, newer than "
                f"this ctrpy understands ({SCHEMA_VERSION}); upgrade ctrpy"
            )
        if version == SCHEMA_VERSION:
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            for step in range(version, SCHEMA_VERSION):
                for stmt in MIGRATIONS[step].split(";"):
                    if stmt.strip():
                        conn.execute(stmt)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    @property
    def schema_version(self) -> int:
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any exception.  An sqlite3 error
        anywhere in it (a full disk, a constraint) becomes a StoreError."""
        conn = self.conn
        if self.read_only:
            raise StoreError(f"cannot write metadata database {self.path}: the root is read-only")
        with self.lock:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as e:
                raise StoreError(f"cannot write metadata database {self.path}: {e}") from e
            try:
                yield conn
            except BaseException as e:
                self._rollback(conn)
                if isinstance(e, sqlite3.Error):
                    raise StoreError(f"cannot write metadata database {self.path}: {e}") from e
                raise
            try:
                conn.execute("COMMIT")
            except sqlite3.Error as e:
                self._rollback(conn)
                raise StoreError(f"cannot write metadata database {self.path}: {e}") from e

    @staticmethod
    def _rollback(conn: sqlite3.Connection) -> None:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # SQLite rolled back itself (e.g. after SQLITE_FULL)

    def query(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        conn = self.conn
        with self.lock:
            try:
                cur = conn.execute(sql, args)
                cur.row_factory = sqlite3.Row
                return list(cur.fetchall())
            except sqlite3.Error as e:
                raise StoreError(f"cannot read metadata database {self.path}: {e}") from e

    def todo(self, key: str) -> bool:
        """Is a one-time upgrade step noted as still to do (see MIGRATIONS)?"""
        if self.schema_version < 3:
            return False
        return bool(self.query("SELECT 1 FROM meta WHERE key = ?", (f"todo:{key}",)))

    @staticmethod
    def done(conn: sqlite3.Connection, key: str) -> None:
        conn.execute("DELETE FROM meta WHERE key = ?", (f"todo:{key}",))

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
