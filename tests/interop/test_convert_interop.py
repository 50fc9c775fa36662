"""``ctrpy images convert`` against the peers: what ``ctr images convert`` writes for the
same image, and the converted image read by skopeo and by a private containerd."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ctrpy.oci import Platform
from tests.builders import (
    MT_OCI_CONFIG,
    MT_OCI_LAYER,
    MT_OCI_LAYER_GZIP,
    MT_OCI_LAYER_ZSTD,
    MT_OCI_MANIFEST,
    BuiltImage,
    Image,
    directory,
    docker_save_tar,
    file,
)
from tests.helpers import HOST_PLATFORM, Runner
from tests.peers import Ctr, Ctrpy

pytestmark = pytest.mark.interop

SRC = "docker.io/library/app:v1"
DST = "docker.io/library/app:converted"


def docker_image() -> BuiltImage:
    host = Platform.host()
    return Image(
        [[directory("etc"), file("etc/hello", b"hello\n" * 200)], [directory("usr"), file("usr/tool", b"t" * 4000, 0o755)]],
        architecture=host.architecture, variant=host.variant or None, media_types="docker",
    ).build()


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    path = tmp_path / "docker.tar"
    path.write_bytes(docker_save_tar([(docker_image(), ["app:v1"])]))
    return path


def ctrpy_manifest(ctrpy: Ctrpy, name: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(ctrpy("images", "inspect", name).stdout)["manifest"]
    return out


def exported(ctrpy: Ctrpy, name: str, path: Path) -> Path:
    ctrpy("images", "export", path, name)
    return path


@pytest.mark.parametrize("flags", [["--oci"], ["--uncompress"], ["--oci", "--uncompress"]],
                         ids=["oci", "uncompress", "oci-uncompress"])
def test_convert_gives_the_layers_and_media_types_ctr_convert_gives(
    ctrpy: Ctrpy, ctr: Ctr, archive: Path, flags: list[str]
) -> None:
    ctr("images", "import", "--no-unpack", "--platform", HOST_PLATFORM, archive)
    digest = ctr("images", "convert", *flags, SRC, DST).stdout.split()[-1]
    theirs = json.loads(ctr("content", "get", digest).stdout)
    ctrpy("images", "import", "--no-unpack", archive)
    ctrpy("images", "convert", *flags, SRC, DST)
    ours = ctrpy_manifest(ctrpy, DST)
    assert ours["mediaType"] == theirs["mediaType"]
    assert ours["config"]["mediaType"] == theirs["config"]["mediaType"]
    assert [(x["mediaType"], x["digest"], x["size"]) for x in ours["layers"]] == [
        (x["mediaType"], x["digest"], x["size"]) for x in theirs["layers"]
    ]


@pytest.mark.parametrize(
    ("flags", "layer_type"),
    [(["--oci", "--uncompress"], MT_OCI_LAYER), (["--zstd", "--level", "12"], MT_OCI_LAYER_ZSTD),
     (["--oci", "--gzip", "--level", "3"], MT_OCI_LAYER_GZIP)],
    ids=["uncompress", "zstd", "gzip"],
)
def test_skopeo_inspects_the_converted_export(
    ctrpy: Ctrpy, skopeo: Runner, archive: Path, tmp_path: Path, flags: list[str], layer_type: str
) -> None:
    ctrpy("images", "import", "--no-unpack", archive)
    ctrpy("images", "convert", *flags, SRC, DST)
    out = exported(ctrpy, DST, tmp_path / "out.tar")
    raw = json.loads(skopeo("inspect", "--raw", f"oci-archive:{out}").stdout)
    assert raw["mediaType"] == MT_OCI_MANIFEST and raw["config"]["mediaType"] == MT_OCI_CONFIG
    assert [x["mediaType"] for x in raw["layers"]] == [layer_type] * 2
    config = json.loads(skopeo("inspect", "--config", f"oci-archive:{out}").stdout)
    assert config["rootfs"]["diff_ids"] == list(docker_image().diff_ids)


@pytest.mark.parametrize("flags", [["--oci", "--uncompress"], ["--zstd"]], ids=["uncompress", "zstd"])
def test_containerd_imports_and_unpacks_the_converted_export(
    ctrpy: Ctrpy, ctr: Ctr, archive: Path, tmp_path: Path, flags: list[str]
) -> None:
    ctrpy("images", "import", "--no-unpack", archive)
    digest = ctrpy("images", "convert", *flags, SRC, DST).stdout.strip()
    ctr("images", "import", "--snapshotter", "native", exported(ctrpy, DST, tmp_path / "out.tar"))
    listed = {line.split()[0]: line.split()[2] for line in ctr("images", "ls").stdout.splitlines()[1:]}
    assert listed[DST] == digest
    check = ctr("images", "check").stdout
    assert "complete (3/3)" in next(line for line in check.splitlines() if line.startswith(DST))
