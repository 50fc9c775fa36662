"""The SQLite metadata database: schema versions, migrations, WAL, transactions, namespaces."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from ctrpy.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, StoreError
from ctrpy.images import Image, ImageStore
from ctrpy.metadata import db as dbmod
from ctrpy.metadata import namespaces
from ctrpy.metadata.db import SCHEMA_VERSION, Database
from ctrpy.metadata.namespaces import NamespaceStore
from ctrpy.oci import Descriptor

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


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    d = Database(tmp_path / "metadata.db")
    yield d
    d.close()


def image(name: str = "docker.io/library/busybox:latest") -> Image:
    return Image(name, Descriptor(MANIFEST, DIGEST, 100))


# --------------------------------------------------------------------------- schema and migrations
def test_new_database_has_the_current_schema_version(db: Database, tmp_path: Path) -> None:
    assert db.schema_version == SCHEMA_VERSION == 2
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
    assert {"namespaces", "images", "content", "snapshots"} <= tables(path)


def test_database_of_version_1_is_migrated_to_2_keeping_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "metadata.db"
    make_v1_database(path)
    d = Database(path)
    assert d.schema_version == 2
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
    with pytest.raises(StoreError, match=rf"schema version {SCHEMA_VERSION + 1}.*newer.*upgrade"):
        Database(path).conn  # noqa: B018
    assert user_version(path) == SCHEMA_VERSION + 1
    assert tables(path) == set()


def test_database_in_a_missing_directory_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot open metadata database"):
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
def test_transaction_commits_when_the_block_succeeds(db: Database) -> None:
    with db.transaction() as conn:
        conn.execute("INSERT INTO namespaces (name, created_at) VALUES ('a', 't')")
        conn.execute("INSERT INTO namespaces (name, created_at) VALUES ('b', 't')")
    assert [r["name"] for r in db.query("SELECT name FROM namespaces ORDER BY name")] == ["a", "b"]


def test_transaction_rolls_back_every_row_when_the_block_raises(db: Database) -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        with db.transaction() as conn:
            conn.execute("INSERT INTO namespaces (name, created_at) VALUES ('a', 't')")
            conn.execute("INSERT INTO namespaces (name, created_at) VALUES ('b', 't')")
            raise Boom
    assert db.query("SELECT name FROM namespaces") == []


def test_transaction_rolls_back_on_keyboard_interrupt(db: Database) -> None:
    with pytest.raises(KeyboardInterrupt):
        with db.transaction() as conn:
            conn.execute("INSERT INTO namespaces (name, created_at) VALUES ('a', 't')")
            raise KeyboardInterrupt
    assert db.query("SELECT name FROM namespaces") == []


def test_database_is_usable_after_a_rolled_back_transaction(db: Database) -> None:
    with pytest.raises(ValueError):
        with db.transaction() as conn:
            conn.execute("INSERT INTO namespaces (name, created_at) VALUES ('a', 't')")
            raise ValueError
    with db.transaction() as conn:
        conn.execute("INSERT INTO namespaces (name, created_at) VALUES ('b', 't')")
    assert [r["name"] for r in db.query("SELECT name FROM namespaces")] == ["b"]


def test_rolled_back_rows_are_invisible_to_another_connection(db: Database, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError):
        with db.transaction() as conn:
            conn.execute("INSERT INTO namespaces (name, created_at) VALUES ('a', 't')")
            raise RuntimeError
    other = Database(tmp_path / "metadata.db")
    assert other.query("SELECT name FROM namespaces") == []
    other.close()


def test_bad_query_is_a_store_error(db: Database) -> None:
    with pytest.raises(StoreError):
        db.query("SELECT nope FROM nothing")


# --------------------------------------------------------------------------- namespace names
@pytest.mark.parametrize(
    "name",
    ["default", "k8s.io", "moby", "a", "A1", "a-b", "a_b", "a.b.c", "a-b_c.d", "1", "x" * 76, "a" + "-b" * 37],
)
def test_valid_namespace_names(name: str) -> None:
    assert namespaces.validate(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "x" * 77,
        "-a",
        "a-",
        ".a",
        "a.",
        "_a",
        "a..b",
        "a--b",
        "a.-b",
        "a b",
        "a/b",
        "../x",
        "a:b",
        "caf\u00e9",
        "a\n",
        " a",
    ],
)
def test_invalid_namespace_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid namespace"):
        namespaces.validate(name)


def test_namespace_name_limit_is_76_characters() -> None:
    namespaces.validate("n" * 76)
    with pytest.raises(InvalidArgument, match="76"):
        namespaces.validate("n" * 77)


# --------------------------------------------------------------------------- namespace store
def test_namespace_create_and_list(db: Database) -> None:
    ns = NamespaceStore(db)
    ns.create("b", {"team": "infra"})
    ns.create("a")
    assert ns.list() == [("a", {}), ("b", {"team": "infra"})]


def test_namespace_create_twice_already_exists(db: Database) -> None:
    ns = NamespaceStore(db)
    ns.create("a", {"x": "1"})
    with pytest.raises(AlreadyExists):
        ns.create("a", {"x": "2"})
    assert ns.list() == [("a", {"x": "1"})]


def test_namespace_create_refuses_an_invalid_name(db: Database) -> None:
    with pytest.raises(InvalidArgument):
        NamespaceStore(db).create("bad name")
    assert NamespaceStore(db).list() == []


def test_namespace_is_created_on_first_use(db: Database) -> None:
    ImageStore(db, "fresh").create(image())
    assert [n for n, _ in NamespaceStore(db).list()] == ["fresh"]


def test_namespace_labels_merge_and_empty_value_removes(db: Database) -> None:
    ns = NamespaceStore(db)
    ns.create("a", {"x": "1", "y": "2"})
    assert ns.set_labels("a", {"y": "", "z": "3"}) == {"x": "1", "z": "3"}
    assert ns.list() == [("a", {"x": "1", "z": "3"})]


def test_labels_of_a_missing_namespace_are_not_found(db: Database) -> None:
    with pytest.raises(NotFound):
        NamespaceStore(db).set_labels("nope", {"a": "1"})


def test_empty_namespace_can_be_removed(db: Database) -> None:
    ns = NamespaceStore(db)
    ns.create("a")
    ns.create("b")
    ns.remove("a")
    assert [n for n, _ in ns.list()] == ["b"]


def test_removing_a_missing_namespace_is_not_found(db: Database) -> None:
    with pytest.raises(NotFound):
        NamespaceStore(db).remove("nope")


def test_namespace_with_images_is_not_removed(db: Database) -> None:
    ImageStore(db, "busy").create(image())
    with pytest.raises(FailedPrecondition, match=r"must be empty.*1 images"):
        NamespaceStore(db).remove("busy")
    assert [n for n, _ in NamespaceStore(db).list()] == ["busy"]
    assert [i.name for i in ImageStore(db, "busy").list()] == [image().name]


def test_namespace_with_snapshots_is_not_removed(db: Database) -> None:
    NamespaceStore(db).create("snap")
    with db.transaction() as conn:
        conn.execute(
            "INSERT INTO snapshots (snapshotter, namespace, key, kind, dir, created_at, updated_at) "
            "VALUES ('native', 'snap', 'k', 'committed', '1', 't', 't')"
        )
    with pytest.raises(FailedPrecondition, match="snapshots"):
        NamespaceStore(db).remove("snap")
    assert [n for n, _ in NamespaceStore(db).list()] == ["snap"]


def test_namespace_removal_drops_only_its_own_content_rows(db: Database) -> None:
    with db.transaction() as conn:
        for ns in ("a", "b"):
            namespaces.ensure(conn, ns)
            conn.execute(
                "INSERT INTO content (namespace, digest, size, created_at, updated_at) "
                "VALUES (?, ?, 1, 't', 't')",
                (ns, DIGEST),
            )
    NamespaceStore(db).remove("a")
    assert [(r["namespace"], r["digest"]) for r in db.query("SELECT * FROM content")] == [("b", DIGEST)]
