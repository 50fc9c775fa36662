"""ctr's aliases: ``images|image|i``, ``snapshots|snapshot``, ``namespaces|namespace|ns``,
``ls|list`` and ``rm|remove|delete|del``: each does exactly what its command does."""

from __future__ import annotations

import pytest

from tests.builders import file
from tests.helpers import Cli, host_image, named_archive

NAME = "example.com/alias/app:v1"
RM_ALIASES = ["rm", "remove", "delete", "del"]


@pytest.fixture
def store(run: Cli) -> Cli:
    """A store with one image, unpacked with the native snapshotter (two layers)."""
    image = host_image([file("a", b"a")], [file("b", b"b")])
    run.ok("images", "import", "--snapshotter", "native", run.write(named_archive((image, NAME), platform=True)))
    return run


@pytest.mark.parametrize("group", ["images", "image", "i"])
@pytest.mark.parametrize("ls", ["ls", "list"])
def test_image_aliases_list_the_images(store: Cli, group: str, ls: str) -> None:
    assert store.ok(group, ls).stdout == store.ok("images", "ls").stdout
    assert store.ok(group, ls, "-q").stdout == f"{NAME}\n"


@pytest.mark.parametrize("group", ["snapshots", "snapshot"])
@pytest.mark.parametrize("ls", ["ls", "list"])
def test_snapshot_aliases_list_the_snapshots(store: Cli, group: str, ls: str) -> None:
    listed = store.ok(group, "--snapshotter", "native", ls, "-q").stdout.split()
    assert len(listed) == 2
    assert listed == store.ok("snapshots", "--snapshotter", "native", "ls", "-q").stdout.split()


@pytest.mark.parametrize("group", ["namespaces", "namespace", "ns"])
@pytest.mark.parametrize("ls", ["ls", "list"])
def test_namespace_aliases_list_the_namespaces(store: Cli, group: str, ls: str) -> None:
    store.ok("namespaces", "create", "team")
    assert "team" in store.ok(group, ls, "-q").stdout.split()


@pytest.mark.parametrize("ls", ["ls", "list"])
def test_content_list_alias_lists_the_blobs(store: Cli, ls: str) -> None:
    assert len(store.ok("content", ls, "-q").stdout.split()) == 4
    assert store.ok("content", ls).stdout == store.ok("content", "ls").stdout


@pytest.mark.parametrize("rm", RM_ALIASES)
def test_image_remove_aliases_remove_an_image(store: Cli, rm: str) -> None:
    store.ok("i", "tag", NAME, "example.com/alias/app:gone")
    assert store.ok("images", rm, "example.com/alias/app:gone").stdout == "example.com/alias/app:gone\n"
    assert store.ok("images", "ls", "-q").stdout == f"{NAME}\n"


@pytest.mark.parametrize("rm", RM_ALIASES)
def test_namespace_remove_aliases_remove_a_namespace(store: Cli, rm: str) -> None:
    store.ok("ns", "create", "scratch")
    assert store.ok("ns", rm, "scratch").stdout == "scratch\n"
    assert "scratch" not in store.ok("ns", "ls", "-q").stdout.split()


@pytest.mark.parametrize("rm", RM_ALIASES)
def test_snapshot_remove_aliases_remove_a_snapshot(store: Cli, rm: str) -> None:
    before = store.ok("snapshots", "--snapshotter", "native", "ls", "-q").stdout.split()
    tree = store.ok("snapshot", "--snapshotter", "native", "tree").stdout.splitlines()
    top = tree[-1].strip().removeprefix("\\_ ")
    assert store.ok("snapshot", "--snapshotter", "native", rm, top).stdout == f"{top}\n"
    # its parents went with it: the image held them through its top, and nothing else does
    assert store.ok("snapshots", "--snapshotter", "native", "ls", "-q").stdout.split() == []
    assert len(before) > 1


@pytest.mark.parametrize("rm", RM_ALIASES)
def test_content_remove_aliases_remove_a_blob(store: Cli, rm: str) -> None:
    out = store.ok("content", "ingest", "note", input=b"a note\n")
    digest = out.stdout.strip()
    assert store.ok("content", rm, digest).stdout == f"{digest}\n"
    assert digest not in store.ok("content", "ls", "-q").stdout.split()


def test_help_lists_each_command_with_its_aliases(store: Cli) -> None:
    top = store.ok("--help").stdout
    assert "images, image, i" in top
    assert "namespaces, namespace, ns" in top
    assert "snapshots, snapshot" in top
    images_help = store.ok("images", "--help").stdout
    assert "ls, list" in images_help
    assert "rm, remove, delete, del" in images_help


def test_an_unknown_command_is_still_a_usage_error(store: Cli) -> None:
    out = store.usage_error("images", "lst")
    assert "No such command 'lst'" in out.stderr
