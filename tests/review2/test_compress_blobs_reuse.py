"""``images import --compress-blobs`` must gzip, whatever else the store holds.

``DockerImporter._reuse`` (ctrpy/formats/docker.py) reuses ANY stored compressed blob labelled
``containerd.io/uncompressed=<diffID>``, from any namespace, including a zstd one that an
OCI import unpacked in another namespace.  The docker manifest then gets a
``...rootfs.diff.tar.zstd`` layer: the same archive with the same flags gets a different
manifest digest depending on the store's history (and on other namespaces' content), and an
export of it cannot be unpacked by containerd 1.6 ("no processor for media-type").
"""

from __future__ import annotations

import json

from tests.builders import file
from tests.review2._helpers import Run, docker_archive, host_image, oci_archive

LAYERS = [[file("etc/base", b"base")]]
GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def _manifest(run: Run, ns: str, name: str) -> dict:
    return json.loads(run.ok("-n", ns, "images", "inspect", name).stdout)["manifest"]


def test_compress_blobs_gives_gzip_layers_even_when_a_zstd_copy_is_stored(run: Run, tmp_path) -> None:
    zstd_image = host_image(LAYERS).build(compression="zstd")
    run.ok("-n", "one", "images", "import", "--snapshotter", "native", "-", input=oci_archive("z:1", zstd_image))
    docker = docker_archive((host_image(LAYERS), ["p:1"]))
    run.ok("-n", "two", "images", "import", "--no-unpack", "--compress-blobs", "-", input=docker)
    got = _manifest(run, "two", "docker.io/library/p:1")
    assert [layer["mediaType"] for layer in got["layers"]] == [GZIP]


def test_compress_blobs_gives_the_same_manifest_digest_whatever_the_store_holds(run: Run, tmp_path) -> None:
    docker = docker_archive((host_image(LAYERS), ["p:1"]))
    fresh = Run(tmp_path / "fresh")
    fresh.ok("images", "import", "--no-unpack", "--compress-blobs", "-", input=docker)
    want = json.loads(fresh.ok("images", "inspect", "p:1").stdout)["target"]["digest"]

    zstd_image = host_image(LAYERS).build(compression="zstd")
    run.ok("-n", "one", "images", "import", "--snapshotter", "native", "-", input=oci_archive("z:1", zstd_image))
    run.ok("-n", "two", "images", "import", "--no-unpack", "--compress-blobs", "-", input=docker)
    got = json.loads(run.ok("-n", "two", "images", "inspect", "p:1").stdout)["target"]["digest"]
    assert got == want
