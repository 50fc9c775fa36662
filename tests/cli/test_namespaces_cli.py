"""``ctrpy namespaces`` (aliases ``namespace``, ``ns``): ls, create, label, rm."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.builders import ANNOTATION_IMAGE_NAME, file
from tests.helpers import Cli, host_image, oci_archive

BLOB = b"namespaced bytes"
BLOB_DIGEST = "sha256:" + hashlib.sha256(BLOB).hexdigest()


def import_image(run: Cli, namespace: str) -> None:
    img = host_image([file("f", namespace.encode())]).build()
    path = run.write(oci_archive((img, {ANNOTATION_IMAGE_NAME: "x/y:1"})))
    run.ok("-n", namespace, "images", "import", "--no-unpack", path)


# --------------------------------------------------------------------------- ls, create
def test_create_then_ls_lists_names_and_labels(run: Cli) -> None:
    run.ok("namespaces", "create", "ci", "team=infra", "env=test")
    run.ok("namespaces", "create", "build")
    lines = run.ok("namespaces", "ls").stdout.splitlines()
    assert [line.split() for line in lines] == [["NAME", "LABELS"], ["build", "-"], ["ci", "env=test,team=infra"]]


def test_ls_quiet_prints_only_names(run: Cli) -> None:
    run.ok("ns", "create", "b")
    run.ok("ns", "create", "a")
    assert run.ok("ns", "ls", "-q").stdout == "a\nb\n"


def test_ls_json_is_a_versioned_envelope(run: Cli) -> None:
    run.ok("ns", "create", "a", "k=v")
    out = json.loads(run.ok("ns", "ls", "--json").stdout)
    assert (out["schemaVersion"], out["kind"]) == (1, "NamespaceList")
    assert out["items"] == [{"name": "a", "labels": {"k": "v"}}]


@pytest.mark.parametrize("group", ["namespaces", "namespace", "ns"])
def test_namespace_group_aliases(run: Cli, group: str) -> None:
    run.ok(group, "create", "a")
    assert run.ok(group, "list", "-q").stdout == "a\n"


def test_a_namespace_appears_when_first_used(run: Cli) -> None:
    run.ok("-n", "fresh", "content", "ingest", "x", input=BLOB)
    assert run.ok("ns", "ls", "-q").stdout == "fresh\n"


def test_create_of_an_existing_namespace_fails(run: Cli) -> None:
    run.ok("ns", "create", "a", "k=v")
    before = run.state()
    run.fails("ns", "create", "a", "k=w", match=("'a'", "already exists"))
    run.assert_unchanged(before)


@pytest.mark.parametrize("name", ["bad name", "-a", "a..b", "a/b", "x" * 77, ""])
def test_create_of_an_invalid_name_fails(run: Cli, name: str) -> None:
    run.ok("ns", "create", "ok")
    before = run.state()
    run.fails("ns", "create", "--", name, match="invalid namespace")
    run.assert_unchanged(before)


def test_create_of_a_76_character_name_works(run: Cli) -> None:
    run.ok("ns", "create", "n" * 76)
    assert run.ok("ns", "ls", "-q").stdout == "n" * 76 + "\n"


def test_create_with_a_label_without_a_key_is_a_usage_error(run: Cli) -> None:
    run.usage_error("ns", "create", "a", "=value")
    assert run.ok("ns", "ls", "-q").stdout == ""


def test_a_label_without_a_value_is_key_true_as_in_ctr(run: Cli) -> None:
    run.ok("ns", "create", "a", "novalue")
    assert run.ok("ns", "label", "a", "other").stdout == "novalue=true,other=true\n"


# --------------------------------------------------------------------------- label
def test_label_merges_removes_and_prints_the_labels(run: Cli) -> None:
    run.ok("ns", "create", "ci", "team=infra", "env=test")
    assert run.ok("ns", "label", "ci", "team=", "owner=me").stdout == "env=test,owner=me\n"
    assert run.ok("ns", "ls").stdout.splitlines()[1].split() == ["ci", "env=test,owner=me"]


def test_label_of_a_missing_namespace_fails(run: Cli) -> None:
    run.ok("ns", "create", "a")
    before = run.state()
    run.fails("ns", "label", "missing", "k=v", match=("missing", "not found"))
    run.assert_unchanged(before)


@pytest.mark.parametrize("command", ["create", "label"])
def test_namespace_label_over_4096_bytes_is_refused(run: Cli, command: str) -> None:
    if command == "label":
        run.ok("ns", "create", "a")
    before = run.state()
    run.fails("ns", command, "a", "k=" + "v" * 4096, match="4096")
    run.assert_unchanged(before)


# --------------------------------------------------------------------------- rm
def test_rm_of_an_empty_namespace_prints_its_name(run: Cli) -> None:
    run.ok("ns", "create", "a")
    run.ok("ns", "create", "b")
    assert run.ok("ns", "rm", "a").stdout == "a\n"
    assert run.ok("ns", "ls", "-q").stdout == "b\n"


@pytest.mark.parametrize("alias", ["remove", "delete", "del"])
def test_rm_aliases(run: Cli, alias: str) -> None:
    run.ok("ns", "create", "a")
    run.ok("ns", alias, "a")
    assert run.ok("ns", "ls", "-q").stdout == ""


def test_rm_refuses_a_namespace_with_images(run: Cli) -> None:
    import_image(run, "busy")
    before = run.state()
    run.fails("ns", "rm", "busy", match=("busy", "must be empty", "images"))
    run.assert_unchanged(before)


def test_rm_of_a_missing_namespace_fails(run: Cli) -> None:
    run.ok("ns", "create", "a")
    before = run.state()
    run.fails("ns", "rm", "missing", match="not found")
    run.assert_unchanged(before)


def test_rm_drops_the_namespaces_content_but_not_bytes_others_share(run: Cli, root: Path) -> None:
    run.ok("-n", "a", "content", "ingest", "x", input=BLOB)
    run.ok("-n", "b", "content", "ingest", "x", input=BLOB)
    run.ok("ns", "rm", "a")
    assert run.digests("a") == []
    assert run.ok("-n", "b", "content", "get", BLOB_DIGEST).stdout_bytes == BLOB


def test_rm_removes_bytes_no_other_namespace_has(run: Cli, root: Path) -> None:
    run.ok("-n", "a", "content", "ingest", "x", input=BLOB)
    run.ok("ns", "rm", "a")
    assert not (root / "content" / "blobs" / "sha256" / BLOB_DIGEST.split(":")[1]).exists()


def test_rm_without_a_name_is_a_usage_error(run: Cli) -> None:
    run.usage_error("ns", "rm")
