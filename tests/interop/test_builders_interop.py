"""The real peers accept what the builders write: skopeo reads OCI and docker archives,
umoci unpacks a layout directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.builders import (
    ANNOTATION_REF_NAME,
    Image,
    OCILayout,
    dir,
    docker_save_tar,
    file,
    hardlink,
    index_of,
    opaque,
    symlink,
    whiteout,
)
from tests.builders.samples import dup_image, sample_image
from tests.helpers import Runner


def inspect(skopeo: Runner, *args: str) -> Any:
    return json.loads(skopeo("inspect", *args).stdout)


@pytest.mark.parametrize("kind", ["gzip", "zstd", "none"])
def test_skopeo_reads_oci_archive(skopeo: Runner, tmp_path: Path, kind: str) -> None:
    img = sample_image(compression=kind)
    lay = OCILayout()
    lay.add_manifest(img, {ANNOTATION_REF_NAME: "latest"})
    archive = tmp_path / "oci.tar"
    archive.write_bytes(lay.tar_bytes(docker_manifest_json=True))
    info = inspect(skopeo, f"oci-archive:{archive}")
    assert info["Digest"] == img.digest
    assert info["Layers"] == [b.digest for b in img.layer_blobs()]
    raw = inspect(skopeo, "--raw", f"oci-archive:{archive}")
    assert raw == json.loads(img.manifest_blob().data)
    # copying reads and verifies every blob
    skopeo("copy", f"oci-archive:{archive}", f"oci:{tmp_path / 'out'}:x")


def test_skopeo_reads_oci_index(skopeo: Runner, tmp_path: Path) -> None:
    idx = index_of([sample_image(), sample_image(architecture="arm64", variant="v8")])
    lay = OCILayout()
    lay.add_manifest(idx, {ANNOTATION_REF_NAME: "multi"})
    archive = tmp_path / "idx.tar"
    lay.write_tar(archive)
    raw = inspect(skopeo, "--raw", f"oci-archive:{archive}")
    assert raw == idx.json()
    info = json.loads(skopeo("--override-arch", "arm64", "--override-variant", "v8", "inspect", f"oci-archive:{archive}").stdout)
    assert info["Architecture"] == "arm64"


@pytest.mark.parametrize("variant", ["classic", "docker25", "podman"])
def test_skopeo_reads_docker_archive(skopeo: Runner, tmp_path: Path, variant: str) -> None:
    img = sample_image()
    tag = "docker.io/library/busybox:latest" if variant == "podman" else "busybox:latest"
    archive = tmp_path / "docker.tar"
    archive.write_bytes(
        docker_save_tar([(img, [tag]), (dup_image(), ["dup:1"])], variant=variant)  # type: ignore[arg-type]
    )
    info = inspect(skopeo, f"docker-archive:{archive}:busybox:latest")
    assert info["Layers"] == img.diff_ids  # uncompressed layers: digest == diffID
    cfg = inspect(skopeo, "--config", f"docker-archive:{archive}:@1")
    assert cfg["author"] == "dup"
    for ref in (f"docker-archive:{archive}:@0", f"docker-archive:{archive}:@1"):
        skopeo("copy", ref, f"oci:{tmp_path / 'out'}:x")


def test_umoci_unpacks_layout_dir(umoci: Runner, tmp_path: Path) -> None:
    img = Image(
        [
            [dir("etc"), file("etc/hello", b"hello\n"), file("etc/gone", b"x"), symlink("etc/l", "hello")],
            [whiteout("etc/gone"), hardlink("etc/h", "etc/hello"), file("opt/x", b"y")],
            [opaque("opt"), file("opt/z", b"z")],
        ]
    )
    lay = OCILayout()
    lay.add_manifest(img, {ANNOTATION_REF_NAME: "latest"})
    lay.write_dir(tmp_path / "layout")
    bundle = tmp_path / "bundle"
    umoci("unpack", "--rootless", "--image", f"{tmp_path / 'layout'}:latest", str(bundle))
    rootfs = bundle / "rootfs"
    assert (rootfs / "etc/hello").read_bytes() == b"hello\n"
    assert not (rootfs / "etc/gone").exists()
    assert (rootfs / "etc/l").is_symlink()
    assert (rootfs / "etc/h").stat().st_ino == (rootfs / "etc/hello").stat().st_ino
    assert sorted(p.name for p in (rootfs / "opt").iterdir()) == ["z"]
