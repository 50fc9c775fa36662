"""ctr's aliases: ``images|image|i``, ``snapshots|snapshot``, ``namespaces|namespace|ns``,
``ls|list`` and ``rm|remove|delete|del``: each does exactly what its command does."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from ctrpy.cli.main import cli
from ctrpy.oci import Platform
from tests.builders import Image, OCILayout, file

HOST = Platform.host()
NAME = "example.com/alias/app:v1"
RM_ALIASES = ["rm", "remove", "delete", "del"]


def ctrpy(root: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--root", str(root), *args], env={"CTRPY_SNAPSHOTTER": None})


def ok(root: Path, *args: str) -> str:
    out = ctrpy(root, *args)
    assert out.exit_code == 0, out.stderr
    return out.stdout


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A store with one image, unpacked with the native snapshotter (two layers)."""
    layout = OCILayout()
    image = Image(
        layers=[[file("a", b"a")], [file("b", b"b")]], architecture=HOST.architecture, variant=HOST.variant or None
    )
    layout.add_manifest(image, {"io.containerd.image.name": NAME}, platform=True)
    archive = tmp_path / "app.tar"
    layout.write_tar(archive)
    root = tmp_path / "root"
    ok(root, "images", "import", "--snapshotter", "native", str(archive))
    return root


@pytest.mark.parametrize("group", ["images", "image", "i"])
@pytest.mark.parametrize("ls", ["ls", "list"])
def test_image_aliases_list_the_images(root: Path, group: str, ls: str) -> None:
    assert ok(root, group, ls) == ok(root, "images", "ls")
    assert ok(root, group, ls, "-q") == f"{NAME}\n"


@pytest.mark.parametrize("group", ["snapshots", "snapshot"])
@pytest.mark.parametrize("ls", ["ls", "list"])
def test_snapshot_aliases_list_the_snapshots(root: Path, group: str, ls: str) -> None:
    listed = ok(root, group, "--snapshotter", "native", ls, "-q").split()
    assert len(listed) == 2
    assert listed == ok(root, "snapshots", "--snapshotter", "native", "ls", "-q").split()


@pytest.mark.parametrize("group", ["namespaces", "namespace", "ns"])
@pytest.mark.parametrize("ls", ["ls", "list"])
def test_namespace_aliases_list_the_namespaces(root: Path, group: str, ls: str) -> None:
    ok(root, "namespaces", "create", "team")
    assert "team" in ok(root, group, ls, "-q").split()


@pytest.mark.parametrize("ls", ["ls", "list"])
def test_content_list_alias_lists_the_blobs(root: Path, ls: str) -> None:
    assert len(ok(root, "content", ls, "-q").split()) == 4
    assert ok(root, "content", ls) == ok(root, "content", "ls")


@pytest.mark.parametrize("rm", RM_ALIASES)
def test_image_remove_aliases_remove_an_image(root: Path, rm: str) -> None:
    ok(root, "i", "tag", NAME, "example.com/alias/app:gone")
    assert ok(root, "images", rm, "example.com/alias/app:gone") == "example.com/alias/app:gone\n"
    assert ok(root, "images", "ls", "-q") == f"{NAME}\n"


@pytest.mark.parametrize("rm", RM_ALIASES)
def test_namespace_remove_aliases_remove_a_namespace(root: Path, rm: str) -> None:
    ok(root, "ns", "create", "scratch")
    assert ok(root, "ns", rm, "scratch") == "scratch\n"
    assert "scratch" not in ok(root, "ns", "ls", "-q").split()


@pytest.mark.parametrize("rm", RM_ALIASES)
def test_snapshot_remove_aliases_remove_a_snapshot(root: Path, rm: str) -> None:
    before = ok(root, "snapshots", "--snapshotter", "native", "ls", "-q").split()
    tree = ok(root, "snapshot", "--snapshotter", "native", "tree").splitlines()
    top = tree[-1].strip().removeprefix("\\_ ")
    assert ok(root, "snapshot", "--snapshotter", "native", rm, top) == f"{top}\n"
    assert ok(root, "snapshots", "--snapshotter", "native", "ls", "-q").split() == [k for k in before if k != top]


@pytest.mark.parametrize("rm", RM_ALIASES)
def test_content_remove_aliases_remove_a_blob(root: Path, rm: str) -> None:
    out = CliRunner().invoke(cli, ["--root", str(root), "content", "ingest", "note"], input=b"a note\n")
    assert out.exit_code == 0, out.stderr
    digest = out.stdout.strip()
    assert ok(root, "content", rm, digest) == f"{digest}\n"
    assert digest not in ok(root, "content", "ls", "-q").split()


def test_help_lists_each_command_with_its_aliases() -> None:
    top = CliRunner().invoke(cli, ["--help"]).stdout
    assert "images, image, i" in top
    assert "namespaces, namespace, ns" in top
    assert "snapshots, snapshot" in top
    images_help = CliRunner().invoke(cli, ["images", "--help"]).stdout
    assert "ls, list" in images_help
    assert "rm, remove, delete, del" in images_help


def test_an_unknown_command_is_still_a_usage_error(root: Path) -> None:
    out = ctrpy(root, "images", "lst")
    assert out.exit_code == 2
    assert "No such command 'lst'" in out.stderr
