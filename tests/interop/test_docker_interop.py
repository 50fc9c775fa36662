"""docker-save archives with the real peers: skopeo and podman write them, containerd imports
them too, and skopeo reads what ctrpy exports.  Skipped when a peer is missing."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from tests.builders import (
    ANNOTATION_REF_NAME,
    MT_DOCKER_MANIFEST,
    BuiltImage,
    Image,
    Layer,
    OCILayout,
    docker_save_tar,
    file,
)
from tests.helpers import Runner
from tests.peers import Ctr, Ctrpy

pytestmark = pytest.mark.interop

# the peers run on this machine; amd64 is what every test image claims unless it says otherwise
PLATFORM = "linux/amd64"


def app_image(compression: str = "gzip") -> BuiltImage:
    img = Image(layers=[[file("etc/base", b"base")], [file("app/bin", b"app", 0o755)]])
    return img.build(compression=compression)  # type: ignore[arg-type]


def inspect(ctrpy: Ctrpy, name: str) -> dict[str, Any]:
    return json.loads(ctrpy("images", "inspect", name).stdout)  # type: ignore[no-any-return]


def diff_ids(ctrpy: Ctrpy, name: str) -> list[str]:
    return inspect(ctrpy, name)["config"]["rootfs"]["diff_ids"]  # type: ignore[no-any-return]


def test_skopeo_docker_archive_output_imports(tmp_path: Path, skopeo: Runner, ctrpy: Ctrpy) -> None:
    built = app_image()
    layout = OCILayout()
    layout.add_manifest(built, {ANNOTATION_REF_NAME: "v1"})
    layout.write_dir(tmp_path / "layout")
    archive = tmp_path / "skopeo.tar"
    skopeo("copy", f"oci:{tmp_path / 'layout'}:v1", f"docker-archive:{archive}:example.com/team/app:v1")
    out = ctrpy("images", "import", "--no-unpack", "--platform", PLATFORM, archive)
    assert out.stdout.splitlines() == ["example.com/team/app:v1"]
    got = inspect(ctrpy, "example.com/team/app:v1")
    assert got["target"]["mediaType"] == MT_DOCKER_MANIFEST
    assert got["manifest"]["config"]["digest"] == built.config.digest
    assert got["config"]["rootfs"]["diff_ids"] == list(built.diff_ids)


def test_podman_save_m_of_our_export_imports_every_image(
    tmp_path: Path, podman: Runner, ctrpy: Ctrpy
) -> None:
    one = Image(layers=[[file("a", b"a")]]).build(compression="none")
    two = Image(layers=[[file("a", b"a")], Layer([file("b", b"b")], compression="zstd")]).build()
    ours = tmp_path / "ours.tar"
    ours.write_bytes(docker_save_tar([(one, ["one:1"]), (two, ["registry.local:5000/two:2"])]))
    ctrpy("images", "import", "--no-unpack", "--platform", PLATFORM, ours)
    exported = tmp_path / "export.tar"
    ctrpy("images", "export", exported, "docker.io/library/one:1", "registry.local:5000/two:2")
    podman("load", "-i", exported)
    saved = tmp_path / "podman.tar"
    # podman names a docker-archive's familiar "one:1" localhost/one:1
    podman("save", "-m", "-o", saved, "localhost/one:1", "registry.local:5000/two:2")

    fresh = Ctrpy(tmp_path / "fresh")
    out = fresh("images", "import", "--no-unpack", "--platform", PLATFORM, saved)
    assert out.stdout.splitlines() == ["localhost/one:1", "registry.local:5000/two:2"]
    assert inspect(fresh, "localhost/one:1")["manifest"]["config"]["digest"] == one.config.digest
    assert diff_ids(fresh, "registry.local:5000/two:2") == list(two.diff_ids)


def test_skopeo_reads_our_export_of_a_docker_import_as_a_docker_archive(
    tmp_path: Path, skopeo: Runner, ctrpy: Ctrpy
) -> None:
    built = app_image("none")
    archive = tmp_path / "in.tar"
    archive.write_bytes(docker_save_tar([(built, ["app:v1"])]))
    ctrpy("images", "import", "--no-unpack", "--platform", PLATFORM, "--compress-blobs", archive)
    exported = tmp_path / "out.tar"
    ctrpy("images", "export", "--platform", PLATFORM, exported, "app:v1")
    info = json.loads(skopeo("inspect", f"docker-archive:{exported}").stdout)
    assert info["Layers"] == list(built.diff_ids)  # docker-archive layers are known by diffID
    assert (info["Os"], info["Architecture"]) == ("linux", "amd64")
    with tarfile.open(exported) as tf:
        f = tf.extractfile("manifest.json")
        assert f is not None
        assert json.load(f)[0]["RepoTags"] == ["app:v1"]


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_containerd_writes_the_same_manifest_for_the_same_archive(
    tmp_path: Path, ctr: Ctr, ctrpy: Ctrpy, compression: str
) -> None:
    archive = tmp_path / "in.tar"
    archive.write_bytes(docker_save_tar([(app_image(compression), ["app:v1"])]))
    ctr("images", "import", "--no-unpack", "--platform", PLATFORM, str(archive))
    theirs = {line.split()[0]: line.split()[2] for line in ctr("images", "ls").stdout.splitlines()[1:]}
    ctrpy("images", "import", "--no-unpack", "--platform", PLATFORM, archive)
    assert theirs == {"docker.io/library/app:v1": inspect(ctrpy, "app:v1")["target"]["digest"]}
