"""What users have besides tarballs, made by the peers: skopeo's and umoci's OCI layout
directories (``images import DIR``), and a root filesystem tar (``images import --rootfs``)
whose image containerd and skopeo read."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.builders import ANNOTATION_IMAGE_NAME, OCILayout, directory, file, layer_tar
from tests.helpers import Runner, text_image
from tests.interop.test_extract_vs_umoci import containerd_native_top
from tests.peers import Ctr, Ctrpy
from tests.treecmp import tar_tree, tree

pytestmark = pytest.mark.interop

NAME = "docker.io/library/app:v1"
ROOTFS = layer_tar([directory("etc"), file("etc/hostname", b"handmade\n"), directory("bin"),
                    file("bin/tool", b"#!/bin/false\n", 0o755)])


def names_and_digests(ctrpy: Ctrpy) -> dict[str, str]:
    items = json.loads(ctrpy("images", "ls", "--json").stdout)["items"]
    return {i["name"]: i["target"]["digest"] for i in items}


def test_a_skopeo_layout_directory_imports_with_skopeos_digest(ctrpy: Ctrpy, skopeo: Runner, tmp_path: Path) -> None:
    layout = OCILayout()
    layout.add_manifest(text_image(), {ANNOTATION_IMAGE_NAME: NAME})
    layout.write_tar(tmp_path / "in.tar")
    skopeo("copy", f"oci-archive:{tmp_path / 'in.tar'}", f"oci:{tmp_path / 'dir'}:v2")
    want = json.loads((tmp_path / "dir" / "index.json").read_text())["manifests"][0]["digest"]
    ctrpy("images", "import", "--oci-name", "example.com/copied", tmp_path / "dir")
    assert names_and_digests(ctrpy) == {"example.com/copied:v2": want}


def test_a_umoci_layout_directory_imports_and_unpacks_its_layer(ctrpy: Ctrpy, umoci: Runner, tmp_path: Path) -> None:
    (tmp_path / "layer.tar").write_bytes(ROOTFS)
    umoci("init", "--layout", tmp_path / "lay")
    umoci("new", "--image", f"{tmp_path / 'lay'}:v1")
    umoci("raw", "add-layer", "--image", f"{tmp_path / 'lay'}:v1", tmp_path / "layer.tar")
    ctrpy("images", "import", "--snapshotter", "native", tmp_path / "lay")
    ctrpy("images", "extract", "unknown/unknown:v1", tmp_path / "out")
    assert (tmp_path / "out" / "etc" / "hostname").read_bytes() == b"handmade\n"


def test_a_rootfs_image_is_read_by_skopeo(ctrpy: Ctrpy, skopeo: Runner, tmp_path: Path) -> None:
    (tmp_path / "rootfs.tar").write_bytes(ROOTFS)
    ctrpy("images", "import", "--no-unpack", "--rootfs", NAME, tmp_path / "rootfs.tar")
    ctrpy("images", "export", tmp_path / "out.tar", NAME)
    inspected = json.loads(skopeo("inspect", f"oci-archive:{tmp_path / 'out.tar'}").stdout)
    assert len(inspected["Layers"]) == 1


def test_containerd_unpacks_a_rootfs_image_to_the_tree_of_the_tar(ctrpy: Ctrpy, ctr: Ctr, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("owners can only be compared as root")
    (tmp_path / "rootfs.tar").write_bytes(ROOTFS)
    ctrpy("images", "import", "--no-unpack", "--rootfs", NAME, tmp_path / "rootfs.tar")
    ctrpy("images", "export", tmp_path / "out.tar", NAME)
    assert tree(containerd_native_top(ctr, tmp_path / "out.tar")) == tar_tree(ROOTFS)
