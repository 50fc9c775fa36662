"""``Client.import_rootfs`` (``ctrpy.formats.rootfs``): a one-layer image from a plain root
filesystem tar, as ``docker import`` makes one."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from ctrpy.client import Client
from ctrpy.errors import InvalidArchive
from ctrpy.oci import Platform, mediatypes
from tests.builders import compress, decompress, directory, file, layer_tar, sha256_digest, symlink
from tests.helpers import HOST, raises_naming
from tests.treecmp import tar_tree, tree

NAME = "example.com/rootfs:1"
ROOTFS = layer_tar([directory("etc"), file("etc/os-release", b"ID=handmade\n"), directory("bin"),
                    file("bin/sh", b"#!", 0o755), directory("usr"), symlink("usr/bin", "../bin")])


def imported(client: Client, data: bytes, platform: Platform | None = None, unpack: bool = False) -> dict[str, object]:
    (img,) = client.import_rootfs(io.BytesIO(data), NAME, platform, unpack=unpack, snapshotter="native")
    return client.content.read_json(img.target.digest)  # type: ignore[no-any-return]


def test_the_image_has_one_gzip_layer_holding_the_tar(client: Client) -> None:
    manifest = imported(client, ROOTFS)
    assert manifest["mediaType"] == mediatypes.OCI_MANIFEST
    (layer,) = manifest["layers"]  # type: ignore[misc]
    assert layer["mediaType"] == mediatypes.OCI_LAYER_GZIP
    assert decompress(client.content.read_all(layer["digest"])) == ROOTFS


def test_the_config_names_the_tar_as_its_diff_id_and_the_host_platform(client: Client) -> None:
    manifest = imported(client, ROOTFS)
    config = client.content.read_json(manifest["config"]["digest"])  # type: ignore[index]
    assert config["rootfs"] == {"type": "layers", "diff_ids": [sha256_digest(ROOTFS)]}
    assert (config["os"], config["architecture"]) == (HOST.os, HOST.architecture)


def test_a_platform_given_is_the_images(client: Client) -> None:
    manifest = imported(client, ROOTFS, Platform.parse("linux/arm/v7"))
    config = client.content.read_json(manifest["config"]["digest"])  # type: ignore[index]
    assert (config["architecture"], config["variant"]) == ("arm", "v7")


@pytest.mark.parametrize("kind", ["gzip", "zstd"])
def test_a_compressed_tar_gives_the_image_of_the_plain_one(client: Client, kind: str) -> None:
    plain = imported(client, ROOTFS)
    assert imported(client, compress(ROOTFS, kind)) == plain  # type: ignore[arg-type]


def test_the_same_tar_gives_the_same_digest(client: Client, tmp_path: Path) -> None:
    other = Client(tmp_path / "other")
    (a,) = client.import_rootfs(io.BytesIO(ROOTFS), NAME)
    (b,) = other.import_rootfs(io.BytesIO(ROOTFS), NAME)
    assert a.target == b.target
    other.close()


def test_the_layer_is_labelled_with_its_diff_id(client: Client) -> None:
    manifest = imported(client, ROOTFS)
    layer = manifest["layers"][0]["digest"]  # type: ignore[index]
    assert client.content.info(layer).labels[mediatypes.LABEL_UNCOMPRESSED] == sha256_digest(ROOTFS)


def test_unpacked_it_is_the_tree_of_the_tar(client: Client) -> None:
    imported(client, ROOTFS, unpack=True)
    info = client.layers(NAME)
    sn = client.snapshotter("native")
    assert tree(sn.fs_path(sn.stat(info.chain_ids[-1]))) == tar_tree(ROOTFS)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [(b"", "empty"), (b"not a tar at all" * 64, "invalid tar header"), (ROOTFS[:700], "truncated"),
     (b"\0" * 1024, "no entries")],
    ids=["empty", "garbage", "truncated", "no-entries"],
)
def test_what_is_not_a_whole_tar_is_refused_and_records_nothing(client: Client, data: bytes, fragment: str) -> None:
    with raises_naming(InvalidArchive, "root filesystem tar", fragment):
        client.import_rootfs(io.BytesIO(data), NAME)
    assert client.images.names() == []


def test_history_says_where_the_image_came_from(client: Client) -> None:
    manifest = imported(client, ROOTFS)
    config = json.loads(client.content.read_all(manifest["config"]["digest"]))  # type: ignore[index]
    assert len(config["history"]) == 1 and "rootfs" in config["history"][0]["created_by"]
