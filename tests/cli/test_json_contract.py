"""The ``--json`` contract: one versioned envelope for every list command.

    {"schemaVersion": 1, "kind": KIND, "items": [ITEM, ...]}

Scripts rely on these exact keys.  Adding a key to an item is a change of this file and of
the README; renaming or removing one also needs a new schemaVersion.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.builders import file
from tests.helpers import HOST, Cli, host_image, named_archive

NAME = "example.com/contract/app:v1"
ENVELOPE_KEYS = {"schemaVersion", "kind", "items"}
DESCRIPTOR_KEYS = {"mediaType", "digest", "size"}

CONTRACT: dict[str, tuple[tuple[str, ...], set[str]]] = {
    # kind: (command, the keys of each item)
    "ImageList": (
        ("images", "ls", "--json"),
        {"name", "target", "size", "platforms", "labels", "createdAt", "updatedAt"},
    ),
    "ImageCheckList": (
        ("images", "check", "--snapshotter", "native", "--json"),
        {"name", "target", "complete", "present", "required", "size", "requiredSize", "unpacked"},
    ),
    "ContentList": (
        ("content", "ls", "--json"),
        {"digest", "size", "labels", "createdAt", "updatedAt"},
    ),
    # the items of snapshots ls are ctr's `snapshots info` objects, keys and all
    "SnapshotList": (
        ("snapshots", "--snapshotter", "native", "ls", "--json"),
        {"key", "parent", "kind", "labels", "createdAt", "updatedAt", "snapshotter"},
    ),
    "NamespaceList": (
        ("namespaces", "ls", "--json"),
        {"name", "labels"},
    ),
    "LeaseList": (
        ("leases", "ls", "--json"),
        {"id", "createdAt", "labels", "owner"},
    ),
}


def ctrpy(root: Path, *args: str) -> Any:
    return Cli(root, root.parent).ok(*args)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with one unpacked image, a labelled image and a labelled namespace."""
    tmp = tmp_path_factory.mktemp("contract")
    run = Cli(tmp / "root", tmp)
    image = host_image([file("etc/motd", b"hi\n")], [file("bin/app", b"app")])
    archive = run.write(named_archive((image, NAME), platform=True))
    run.ok("images", "import", "--snapshotter", "native", "--label", "team=infra", archive)
    run.ok("namespaces", "label", "default", "owner=ci")
    run.ok("leases", "create", "--id", "contract", "team=infra")
    return run.root


@pytest.mark.parametrize("kind", sorted(CONTRACT))
def test_the_envelope_has_exactly_schema_version_kind_and_items(store: Path, kind: str) -> None:
    command, _keys = CONTRACT[kind]
    doc = json.loads(ctrpy(store, *command).stdout)
    assert set(doc) == ENVELOPE_KEYS
    assert doc["schemaVersion"] == 1
    assert doc["kind"] == kind
    assert isinstance(doc["items"], list) and doc["items"]


@pytest.mark.parametrize("kind", sorted(CONTRACT))
def test_each_kind_has_exactly_its_item_keys(store: Path, kind: str) -> None:
    command, keys = CONTRACT[kind]
    for item in json.loads(ctrpy(store, *command).stdout)["items"]:
        assert set(item) == keys


@pytest.mark.parametrize("kind", ["ImageList", "ImageCheckList"])
def test_image_targets_are_oci_descriptors(store: Path, kind: str) -> None:
    command, _keys = CONTRACT[kind]
    (item,) = json.loads(ctrpy(store, *command).stdout)["items"]
    assert set(item["target"]) >= DESCRIPTOR_KEYS
    assert item["target"]["digest"].startswith("sha256:")
    assert isinstance(item["target"]["size"], int)


def test_image_items_carry_their_values_with_their_json_types(store: Path) -> None:
    (item,) = json.loads(ctrpy(store, "images", "ls", "--json").stdout)["items"]
    assert item["name"] == NAME
    assert item["labels"] == {"team": "infra"}
    assert item["platforms"] == [str(HOST)]
    assert isinstance(item["size"], int)


def test_image_check_items_say_complete_and_unpacked_as_booleans_and_count_as_integers(store: Path) -> None:
    (item,) = json.loads(ctrpy(store, *CONTRACT["ImageCheckList"][0]).stdout)["items"]
    assert item["complete"] is True and item["unpacked"] is True
    assert isinstance(item["present"], int) and item["present"] == item["required"] > 0
    assert isinstance(item["size"], int) and item["size"] == item["requiredSize"] > 0


def test_namespace_items_carry_their_labels(store: Path) -> None:
    items = json.loads(ctrpy(store, "namespaces", "ls", "--json").stdout)["items"]
    assert {"name": "default", "labels": {"owner": "ci"}} in items


@pytest.mark.parametrize("kind", sorted(CONTRACT))
def test_an_empty_store_lists_an_empty_items_array(tmp_path: Path, kind: str) -> None:
    command, _keys = CONTRACT[kind]
    doc = json.loads(ctrpy(tmp_path / "root", *command).stdout)
    assert doc == {"schemaVersion": 1, "kind": kind, "items": []}


@pytest.mark.parametrize("kind", sorted(CONTRACT))
def test_json_is_the_only_thing_on_stdout(store: Path, kind: str) -> None:
    command, _keys = CONTRACT[kind]
    out = ctrpy(store, *command)
    assert out.stdout.endswith("}\n")
    json.loads(out.stdout)  # one document, nothing around it
    assert out.stderr == ""
