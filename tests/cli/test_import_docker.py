"""``ctrpy images import`` of docker-save archives, through the CLI (click's CliRunner)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ctrpy.oci import mediatypes
from tests.builders import (
    MT_DOCKER_LAYER_GZIP,
    MT_DOCKER_MANIFEST,
    Image,
    Layer,
    digest_hex,
    docker_save_tar,
    file,
    tar_names,
)
from tests.helpers import HOST, HOST_PLATFORM, OTHER_ARCH, Cli, docker_archive, host_image, named_archive


def app_image() -> Image:
    return host_image([file("etc/base", b"base")], [file("app/bin", b"app")])


# --------------------------------------------------------------------------- success
def test_import_prints_the_normalised_names_of_the_images(run: Cli) -> None:
    archive = run.write(docker_save_tar([(app_image(), ["app:v1", "registry.local:5000/team/app:v1"])]))
    out = run.ok("images", "import", "--no-unpack", archive)
    assert out.stdout.splitlines() == ["docker.io/library/app:v1", "registry.local:5000/team/app:v1"]
    assert out.stderr == ""


def test_import_reads_a_docker_archive_from_stdin(run: Cli) -> None:
    data = docker_save_tar([(app_image(), ["app:v1"])], variant="podman")
    out = run.ok("images", "import", "--no-unpack", "-", input=data)
    assert out.stdout.splitlines() == ["docker.io/library/app:v1"]


def test_imported_docker_images_list_with_the_schema2_type_and_host_platform(run: Cli) -> None:
    archive = run.write(docker_save_tar([(app_image(), ["app:v1"])]))
    run.ok("images", "import", "--no-unpack", archive)
    (item,) = run.images_json()
    assert item["name"] == "docker.io/library/app:v1"
    assert item["target"]["mediaType"] == MT_DOCKER_MANIFEST
    assert item["platforms"] == [str(HOST)]


def test_short_names_find_imported_docker_images(run: Cli) -> None:
    archive = run.write(docker_save_tar([(app_image(), ["app:v1"])]))
    run.ok("images", "import", "--no-unpack", archive)
    assert run.inspect("app:v1")["name"] == "docker.io/library/app:v1"


@pytest.mark.parametrize("fmt", ["docker.v1.2", "docker.v1.1", "auto"])
def test_docker_archives_import_with_the_docker_formats_and_auto(run: Cli, fmt: str) -> None:
    archive = run.write(docker_save_tar([(app_image(), ["app:v1"])]))
    out = run.ok("images", "import", "--no-unpack", "--format", fmt, archive)
    assert out.stdout.splitlines() == ["docker.io/library/app:v1"]


def test_an_untagged_image_is_named_after_the_base_name_and_its_digest(run: Cli) -> None:
    archive = run.write(docker_save_tar([(app_image(), None)]))
    out = run.ok("images", "import", "--no-unpack", "--base-name", "example.com/untagged", archive)
    (name,) = out.stdout.split()
    assert name.startswith("example.com/untagged@sha256:")


def test_an_untagged_image_without_base_name_is_named_import_date(run: Cli) -> None:
    archive = run.write(docker_save_tar([(app_image(), None)]))
    out = run.ok("images", "import", "--no-unpack", archive)
    (name,) = out.stdout.split()
    prefix, _, dgst = name.partition("@")
    assert prefix.startswith("import-") and len(prefix) == len("import-YYYY-MM-DD")
    assert dgst.startswith("sha256:")


def test_compress_blobs_stores_gzip_layers_labelled_with_their_diff_id(run: Cli) -> None:
    built = app_image().build(compression="none")
    archive = run.write(docker_save_tar([(built, ["app:v1"])]))
    run.ok("images", "import", "--no-unpack", "--compress-blobs", archive)
    manifest = run.inspect("app:v1")["manifest"]
    assert [x["mediaType"] for x in manifest["layers"]] == [MT_DOCKER_LAYER_GZIP] * 2
    items = json.loads(run.ok("content", "ls", "--json").stdout)["items"]
    labels = {i["digest"]: i["labels"] for i in items}
    for layer, diff_id in zip(manifest["layers"], built.diff_ids, strict=True):
        assert labels[layer["digest"]] == {mediatypes.LABEL_UNCOMPRESSED: diff_id}
    assert not set(built.diff_ids) & set(labels)  # the uncompressed copies are not part of the image


def test_an_image_for_another_platform_is_skipped_with_a_warning(run: Cli) -> None:
    arch = OTHER_ARCH
    archive = run.write(docker_save_tar([
        (host_image([file("a")], architecture=arch), ["a:1"]),
        (host_image([file("b")]), ["b:1"]),
    ]))
    out = run.ok("images", "import", "--no-unpack", archive)
    assert out.stdout.splitlines() == ["docker.io/library/b:1"]
    assert out.stderr.startswith(f"ctrpy: warning: skipping docker.io/library/a:1: the image is for linux/{arch}")
    out = run.ok("images", "import", "--no-unpack", "--platform", f"linux/{arch}", archive)
    assert out.stdout.splitlines() == ["docker.io/library/a:1"]


def test_an_archive_with_no_image_for_the_platform_is_an_error(run: Cli) -> None:
    arch = OTHER_ARCH
    archive = run.write(docker_save_tar([(host_image([file("a")], architecture=arch), ["a:1"])]))
    run.fails("images", "import", "--no-unpack", archive, match=("no image for", HOST_PLATFORM), warnings=True)
    assert run.names() == []


def test_import_unpacks_docker_images_with_every_layer_compression(run: Cli) -> None:
    img = host_image(
        Layer([file("a", b"a")], compression="none"),
        Layer([file("b", b"b")], compression="gzip"),
        Layer([file("c", b"c")], compression="zstd"),
    )
    archive = run.write(docker_save_tar([(img.build(), ["app:v1"])]))
    out = run.ok("images", "import", archive)
    dgst = run.inspect("app:v1")["target"]["digest"]
    assert out.stdout.splitlines() == [f"unpacking docker.io/library/app:v1 ({dgst})...done"]


# --------------------------------------------------------------------------- errors
def _bad() -> dict[str, tuple[bytes, tuple[str, ...]]]:
    built = app_image().build(compression="none")
    config = f"{built.config.hex}.json"
    layers = [f"{digest_hex(b.digest)}.tar" for b in built.layers]
    item = {"Config": config, "RepoTags": ["app:v1"], "Layers": layers}
    one = [(built, ["app:v1"])]

    def podman(**kw: Any) -> bytes:
        return docker_save_tar(one, variant="podman", **kw)

    return {
        "missing-layer": (podman(omit=[layers[0]]), (layers[0], "app:v1")),
        "missing-config": (podman(omit=[config]), (config, "app:v1")),
        "layer-count": (
            podman(manifest_json_override=json.dumps([{**item, "Layers": layers[:1]}]).encode()),
            ("manifest.json[0]", "app:v1"),
        ),
        "unknown-platform": (docker_save_tar([(host_image([file("a")], os="beos"), ["a:1"])]), ("beos/", "a:1")),
        "invalid-json": (podman(manifest_json_override=b"[{"), ("manifest.json", "JSON")),
        "not-a-list": (podman(manifest_json_override=json.dumps(item).encode()), ("manifest.json", "list")),
        "neither-format": (podman(omit=["manifest.json"]), ("format",)),
        "truncated": (podman(truncate_at=1000), ("truncated",)),  # inside the first layer
    }


@pytest.mark.parametrize(
    "case",
    ["missing-layer", "missing-config", "layer-count", "unknown-platform", "invalid-json", "not-a-list",
     "neither-format", "truncated"],
)
def test_bad_archive_is_one_error_line_exit_1_and_changes_nothing(run: Cli, case: str) -> None:
    data, names = _bad()[case]
    run.fails("images", "import", "--no-unpack", run.write(data), match=names)
    assert run.names() == []
    assert run.digests() == []


def test_forcing_oci_on_a_docker_archive_is_an_error(run: Cli) -> None:
    archive = run.write(docker_save_tar([(app_image(), ["app:v1"])]))
    run.fails("images", "import", "--no-unpack", "--format", "oci.v1", archive, match=("OCI", "oci-layout"))
    assert run.names() == []


def test_an_unknown_format_names_the_docker_formats_among_the_valid_ones(run: Cli) -> None:
    archive = run.write(docker_save_tar([(app_image(), ["app:v1"])]))
    run.fails("images", "import", "--format", "docker.v9", archive, match=("docker.v9", "docker.v1.1", "docker.v1.2"))


# DockerImporter._reuse once reused ANY stored compressed blob labelled
# containerd.io/uncompressed=<diffID>, from any namespace, including a zstd one an OCI import
# had unpacked: the manifest then depended on the store's history, and an export of it could
# not be unpacked by containerd 1.6 ("no processor for media-type").
LAYERS = [[file("etc/base", b"base")]]


def test_compress_blobs_gives_gzip_layers_even_when_a_zstd_copy_is_stored(run: Cli) -> None:
    zstd_image = host_image(*LAYERS).build(compression="zstd")
    run.ok("-n", "one", "images", "import", "--snapshotter", "native", "-", input=named_archive((zstd_image, "z:1")))
    docker = docker_archive((host_image(*LAYERS), ["p:1"]))
    run.ok("-n", "two", "images", "import", "--no-unpack", "--compress-blobs", "-", input=docker)
    got = run.inspect("docker.io/library/p:1", "two")["manifest"]
    assert [layer["mediaType"] for layer in got["layers"]] == [MT_DOCKER_LAYER_GZIP]


def test_compress_blobs_gives_the_same_manifest_digest_whatever_the_store_holds(run: Cli, tmp_path: Path) -> None:
    docker = docker_archive((host_image(*LAYERS), ["p:1"]))
    fresh = Cli(tmp_path / "fresh", run.workdir)
    fresh.ok("images", "import", "--no-unpack", "--compress-blobs", "-", input=docker)
    want = fresh.inspect("p:1")["target"]["digest"]

    zstd_image = host_image(*LAYERS).build(compression="zstd")
    run.ok("-n", "one", "images", "import", "--snapshotter", "native", "-", input=named_archive((zstd_image, "z:1")))
    run.ok("-n", "two", "images", "import", "--no-unpack", "--compress-blobs", "-", input=docker)
    assert run.inspect("p:1", "two")["target"]["digest"] == want


@pytest.mark.parametrize("flags", [["--compress-blobs"], []], ids=["compress-blobs", "unpacked"])
def test_every_recorded_blob_has_its_real_size(run: Cli, root: Path, flags: list[str]) -> None:
    """Blobs that only get a label (a gzip copy, an uncompressed diffID) are recorded with
    the size of their bytes, never 0."""
    run.ok("images", "import", *flags, run.write(docker_archive((app_image(), ["app:v1"]))))
    items = json.loads(run.ok("content", "ls", "--json").stdout)["items"]
    assert items
    for item in items:
        blob = root / "content" / "blobs" / "sha256" / item["digest"].split(":")[1]
        assert item["size"] == blob.stat().st_size, item["digest"]


# --------------------------------------------------------------------------- a compressed copy in the store
# issue 13: a docker-save archive's uncompressed layers were stored as they came even when the
# store held the same layers gzipped (an export of 170 MB where ctr writes 63 MB); containerd's
# importer uses such copies, and --compress-blobs left the uncompressed originals until a prune.
def _with_gzip_copies(run: Cli) -> Image:
    """The store holds ``LAYERS`` as a gzip OCI image, unpacked (so labelled with its diffIDs)."""
    image = host_image(*LAYERS)
    run.imported(image.build(compression="gzip"), "docker.io/library/oci:1", "--snapshotter", "native")
    return image


def _blob_files(root: Path) -> set[str]:
    return {"sha256:" + p.name for p in (root / "content" / "blobs" / "sha256").iterdir()}


def test_a_docker_import_uses_a_stored_gzip_copy_of_an_uncompressed_layer(run: Cli) -> None:
    image = _with_gzip_copies(run)
    gzip_layer = image.build(compression="gzip").layers[0]
    run.ok("images", "import", "--no-unpack", "-", input=docker_archive((image.build(compression="none"), ["p:1"])))
    (layer,) = run.inspect("p:1")["manifest"]["layers"]
    assert layer == {"mediaType": MT_DOCKER_LAYER_GZIP, "digest": gzip_layer.digest, "size": gzip_layer.size}


def test_the_uncompressed_original_a_copy_stands_for_is_freed_at_once(run: Cli, root: Path) -> None:
    image = _with_gzip_copies(run)
    tar = image.build(compression="none").layers[0]
    run.ok("images", "import", "--no-unpack", "-", input=docker_archive((image.build(compression="none"), ["p:1"])))
    assert tar.digest not in _blob_files(root)
    assert tar.digest not in run.digests()


def test_compress_blobs_frees_the_uncompressed_originals_at_once(run: Cli, root: Path) -> None:
    built = host_image(*LAYERS).build(compression="none")
    run.ok("images", "import", "--no-unpack", "--compress-blobs", "-", input=docker_archive((built, ["p:1"])))
    assert built.layers[0].digest not in _blob_files(root)
    (layer,) = run.inspect("p:1")["manifest"]["layers"]
    assert layer["digest"] in _blob_files(root)


def test_an_uncompressed_layer_another_image_holds_is_kept(run: Cli, root: Path) -> None:
    built = host_image(*LAYERS).build(compression="none")
    run.ok("images", "import", "--no-unpack", "-", input=docker_archive((built, ["plain:1"])))
    run.ok("images", "import", "--no-unpack", "--compress-blobs", "-", input=docker_archive((built, ["small:1"])))
    assert built.layers[0].digest in _blob_files(root)
    assert run.inspect("plain:1")["manifest"]["layers"][0]["digest"] == built.layers[0].digest


def test_an_export_after_the_reuse_carries_the_gzip_layer_not_the_tar(run: Cli, root: Path) -> None:
    image = _with_gzip_copies(run)
    run.ok("images", "import", "--no-unpack", "-", input=docker_archive((image.build(compression="none"), ["p:1"])))
    out = run.ok("images", "export", "-", "p:1").stdout_bytes
    blobs = {n.removeprefix("blobs/sha256/") for n in tar_names(out) if n.startswith("blobs/sha256/")}
    assert digest_hex(image.build(compression="gzip").layers[0].digest) in blobs
    assert digest_hex(image.build(compression="none").layers[0].digest) not in blobs


def test_a_zstd_copy_is_not_used_by_a_plain_docker_import(run: Cli) -> None:
    run.ok("images", "import", "--snapshotter", "native", "-",
           input=named_archive((host_image(*LAYERS).build(compression="zstd"), "z:1")))
    built = host_image(*LAYERS).build(compression="none")
    run.ok("images", "import", "--no-unpack", "-", input=docker_archive((built, ["p:1"])))
    assert run.inspect("p:1")["manifest"]["layers"][0]["digest"] == built.layers[0].digest
