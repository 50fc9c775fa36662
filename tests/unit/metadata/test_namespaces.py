"""Namespaces: containerd's name rules, and the namespace store (create, label, remove)."""

from __future__ import annotations

import pytest

from ctrpy.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from ctrpy.images import Image, ImageStore
from ctrpy.metadata import namespaces
from ctrpy.metadata.db import Database
from ctrpy.metadata.namespaces import NamespaceStore
from ctrpy.oci import Descriptor
from tests.helpers import raises_naming

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DIGEST = "sha256:" + "ab" * 32


def image(name: str = "docker.io/library/busybox:latest") -> Image:
    return Image(name, Descriptor(MANIFEST, DIGEST, 100))


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
    with raises_naming(FailedPrecondition, "busy", "1 images"):
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
    with raises_naming(FailedPrecondition, "snap", "snapshots"):
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
