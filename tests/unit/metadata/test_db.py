"""The SQLite metadata database: schema versions, migrations, WAL, transactions."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from ctrpy.errors import StoreError
from ctrpy.images import Image, ImageStore
from ctrpy.metadata import db as dbmod
from ctrpy.metadata.db import SCHEMA_VERSION, Database
from ctrpy.oci import Descriptor
from tests.helpers import raises_naming

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DIGEST = "sha256:" + "ab" * 32

# The schema as version 1 shipped it (frozen here on purpose: a migration test must start
# from the old schema as it was, not from whatever the code says today).
SCHEMA_V1 = """
CREATE TABLE namespaces (
    name TEXT PRIMARY KEY, labels TEXT NOT NULL DEFAULT '{}', created_at TEXT NOT NULL
);
CREATE TABLE images (
    namespace TEXT NOT NULL, name TEXT NOT NULL, media_type TEXT NOT NULL,
    digest TEXT NOT NULL, size INTEGER NOT NULL, annotations TEXT NOT NULL DEFAULT '{}',
    labels TEXT NOT NULL DEFAULT '{}', created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
    PRIMARY KEY (namespace, name)
);
CREATE TABLE content (
    namespace TEXT NOT NULL, digest TEXT NOT NULL, size INTEGER NOT NULL,
    labels TEXT NOT NULL DEFAULT '{}', created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
    PRIMARY KEY (namespace, digest)
);
CREATE INDEX content_by_digest ON content (digest);
"""


def user_version(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


def tables(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        conn.close()


def make_v1_database(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA_V1)
    conn.execute("INSERT INTO namespaces VALUES ('default', '{}', '2024-01-01T00:00:00.000000000Z')")
    conn.execute(
        "INSERT INTO images VALUES ('default', 'docker.io/library/old:1', ?, ?, 123, '{}', "
        "'{\"keep\":\"me\"}', '2024-01-01T00:00:00.000000000Z', '2024-01-01T00:00:00.000000000Z')",
        (MANIFEST, DIGEST),
    )
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()


def image(name: str = "docker.io/library/busybox:latest") -> Image:
    return Image(name, Descriptor(MANIFEST, DIGEST, 100))


# --------------------------------------------------------------------------- schema and migrations
def test_new_database_has_the_current_schema_version(db: Database, tmp_path: Path) -> None:
    assert db.schema_version == SCHEMA_VERSION == 3
    assert user_version(tmp_path / "metadata.db") == SCHEMA_VERSION


def test_new_database_has_every_table(db: Database, tmp_path: Path) -> None:
    db.conn  # noqa: B018 - opening creates the schema
    assert {"namespaces", "images", "content", "snapshots"} <= tables(tmp_path / "metadata.db")


def test_database_is_not_created_until_first_used(tmp_path: Path) -> None:
    Database(tmp_path / "metadata.db")
    assert not (tmp_path / "metadata.db").exists()


def test_database_of_version_0_is_migrated_to_the_current_version(tmp_path: Path) -> None:
    path = tmp_path / "metadata.db"
    sqlite3.connect(path).close()  # an empty database: user_version 0, no tables
    assert user_version(path) == 0
    d = Database(path)
    assert d.schema_version == SCHEMA_VERSION
    d.close()
    assert {"namespaces", "images", "content", "snapshots", "leases", "lease_resources", "meta"} <= tables(path)


def test_database_of_version_1_is_migrated_to_the_current_version_keeping_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "metadata.db"
    make_v1_database(path)
    d = Database(path)
    assert d.schema_version == SCHEMA_VERSION
    img = ImageStore(d, "default").get("docker.io/library/old:1")
    assert img.target.digest == DIGEST
    assert img.labels == {"keep": "me"}
    assert img.created_at == "2024-01-01T00:00:00.000000000Z"
    d.close()
    assert "snapshots" in tables(path)


def test_migrated_database_accepts_writes_to_the_new_table(tmp_path: Path) -> None:
    path = tmp_path / "metadata.db"
    make_v1_database(path)
    d = Database(path)
    with d.transaction() as conn:
        conn.execute(
            "INSERT INTO snapshots (snapshotter, namespace, key, kind, dir, created_at, updated_at) "
            "VALUES ('native', 'default', 'k', 'committed', '1', 't', 't')"
        )
    assert len(d.query("SELECT * FROM snapshots")) == 1
    d.close()


def test_failed_migration_leaves_the_database_at_its_old_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "metadata.db"
    make_v1_database(path)
    broken = [dbmod.MIGRATIONS[0], "CREATE TABLE snapshots (x TEXT); THIS IS NOT SQL"]
    monkeypatch.setattr(dbmod, "MIGRATIONS", broken)
    with pytest.raises(StoreError):
        Database(path).conn  # noqa: B018
    assert user_version(path) == 1
    assert "snapshots" not in tables(path)


def test_database_from_a_newer_ctrpy_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "metadata.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with raises_naming(StoreError, str(SCHEMA_VERSION + 1), "newer"):
        Database(path).conn  # noqa: B018
    assert user_version(path) == SCHEMA_VERSION + 1
    assert tables(path) == set()


def test_database_in_a_missing_directory_is_a_store_error(tmp_path: Path) -> None:
    with raises_naming(StoreError, str(tmp_path / "no" / "such" / "dir" / "metadata.db")):
        Database(tmp_path / "no" / "such" / "dir" / "metadata.db").conn  # noqa: B018


def test_file_that_is_not_a_database_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "metadata.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError):
        Database(path).conn  # noqa: B018


def test_database_uses_wal_journal_mode(db: Database, tmp_path: Path) -> None:
    assert db.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    other = sqlite3.connect(tmp_path / "metadata.db")
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    other.close()


def test_reopening_a_current_database_does_not_migrate_again(tmp_path: Path) -> None:
    path = tmp_path / "metadata.db"
    d = Database(path)
    ImageStore(d, "default").create(image())
    d.close()
    d2 = Database(path)
    assert [i.name for i in ImageStore(d2, "default").list()] == [image().name]
    d2.close()


# --------------------------------------------------------------------------- transactions
def add_namespaces(conn: sqlite3.Connection, *names: str) -> None:
    for name in names:
        conn.execute("INSERT INTO namespaces (name, labels, created_at) VALUES (?, '{}', 't')", (name,))


def namespaces(db: Database) -> list[str]:
    return [r["name"] for r in db.query("SELECT name FROM namespaces ORDER BY name")]


def raise_in_a_transaction(db: Database, error: BaseException, *names: str) -> None:
    """Adds the namespaces NAMES in a transaction that then raises ERROR; ERROR comes out."""
    with pytest.raises(type(error)):
        with db.transaction() as conn:
            add_namespaces(conn, *names)
            raise error


def test_transaction_commits_when_the_block_succeeds(db: Database) -> None:
    with db.transaction() as conn:
        add_namespaces(conn, "a", "b")
    assert namespaces(db) == ["a", "b"]


@pytest.mark.parametrize(
    "error", [pytest.param(ValueError("boom"), id="exception"), pytest.param(KeyboardInterrupt(), id="keyboard-interrupt")]
)
def test_transaction_rolls_back_every_row_when_the_block_raises(db: Database, error: BaseException) -> None:
    raise_in_a_transaction(db, error, "a", "b")
    assert namespaces(db) == []


def test_database_is_usable_after_a_rolled_back_transaction(db: Database) -> None:
    raise_in_a_transaction(db, ValueError("boom"), "a")
    with db.transaction() as conn:
        add_namespaces(conn, "b")
    assert namespaces(db) == ["b"]


def test_rolled_back_rows_are_invisible_to_another_connection(db: Database, tmp_path: Path) -> None:
    raise_in_a_transaction(db, RuntimeError("boom"), "a")
    other = Database(tmp_path / "metadata.db")
    assert namespaces(other) == []
    other.close()


def test_bad_query_is_a_store_error(db: Database) -> None:
    with pytest.raises(StoreError):
        db.query("SELECT nope FROM nothing")


def test_an_sqlite_error_inside_a_transaction_is_a_store_error_and_rolls_back(db: Database) -> None:
    with db.transaction() as conn:
        add_namespaces(conn, "a")
    with pytest.raises(StoreError) as err, db.transaction() as conn:
        add_namespaces(conn, "b", "a")  # "a" is taken
    assert "metadata database" in str(err.value) and "UNIQUE" in str(err.value)
    assert namespaces(db) == ["a"]
    with db.transaction() as conn:  # and the database takes the next transaction
        add_namespaces(conn, "c")
    assert namespaces(db) == ["a", "c"]
