"""``ctrpy images import`` of docker-save archives, through the CLI (click's CliRunner)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from ctrpy.cli.main import cli
from ctrpy.oci import Platform, mediatypes
from tests.builders import (
    MT_DOCKER_LAYER_GZIP,
    MT_DOCKER_MANIFEST,
    Image,
    Layer,
    digest_hex,
    docker_save_tar,
    file,
)

HOST = Platform.host()


def host_image(*layers: Any, **kw: Any) -> Image:
    kw.setdefault("architecture", HOST.architecture)
    kw.setdefault("variant", HOST.variant or None)
    return Image(layers=list(layers), **kw)


def app_image() -> Image:
    return host_image([file("etc/base", b"base")], [file("app/bin", b"app")])


def ctrpy(tmp_path: Path, *args: str, input: bytes | None = None) -> Result:
    return CliRunner().invoke(cli, ["--root", str(tmp_path / "root"), *args], input=input)


def write(tmp_path: Path, data: bytes, name: str = "in.tar") -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def image_names(tmp_path: Path) -> list[str]:
    out = ctrpy(tmp_path, "images", "ls", "-q")
    assert out.exit_code == 0, out.stderr
    return out.stdout.split()


def content_digests(tmp_path: Path) -> list[str]:
    out = ctrpy(tmp_path, "content", "ls", "-q")
    assert out.exit_code == 0, out.stderr
    return out.stdout.split()


# --------------------------------------------------------------------------- success
def test_import_prints_the_normalised_names_of_the_images(tmp_path: Path) -> None:
    archive = write(tmp_path, docker_save_tar([(app_image(), ["app:v1", "registry.local:5000/team/app:v1"])]))
    out = ctrpy(tmp_path, "images", "import", "--no-unpack", archive)
    assert out.exit_code == 0, out.stderr
    assert out.stdout.splitlines() == ["docker.io/library/app:v1", "registry.local:5000/team/app:v1"]
    assert out.stderr == ""


def test_import_reads_a_docker_archive_from_stdin(tmp_path: Path) -> None:
    data = docker_save_tar([(app_image(), ["app:v1"])], variant="podman")
    out = ctrpy(tmp_path, "images", "import", "--no-unpack", "-", input=data)
    assert out.exit_code == 0, out.stderr
    assert out.stdout.splitlines() == ["docker.io/library/app:v1"]


def test_imported_docker_images_list_with_the_schema2_type_and_host_platform(tmp_path: Path) -> None:
    archive = write(tmp_path, docker_save_tar([(app_image(), ["app:v1"])]))
    assert ctrpy(tmp_path, "images", "import", "--no-unpack", archive).exit_code == 0
    out = ctrpy(tmp_path, "images", "ls", "--json")
    (item,) = json.loads(out.stdout)["items"]
    assert item["name"] == "docker.io/library/app:v1"
    assert item["target"]["mediaType"] == MT_DOCKER_MANIFEST
    assert item["platforms"] == [str(HOST)]


def test_short_names_find_imported_docker_images(tmp_path: Path) -> None:
    archive = write(tmp_path, docker_save_tar([(app_image(), ["app:v1"])]))
    assert ctrpy(tmp_path, "images", "import", "--no-unpack", archive).exit_code == 0
    out = ctrpy(tmp_path, "images", "inspect", "app:v1")
    assert out.exit_code == 0, out.stderr
    assert json.loads(out.stdout)["name"] == "docker.io/library/app:v1"


@pytest.mark.parametrize("fmt", ["docker.v1.2", "docker.v1.1", "auto"])
def test_docker_archives_import_with_the_docker_formats_and_auto(tmp_path: Path, fmt: str) -> None:
    archive = write(tmp_path, docker_save_tar([(app_image(), ["app:v1"])]))
    out = ctrpy(tmp_path, "images", "import", "--no-unpack", "--format", fmt, archive)
    assert out.exit_code == 0, out.stderr
    assert out.stdout.splitlines() == ["docker.io/library/app:v1"]


def test_an_untagged_image_is_named_after_the_base_name_and_its_digest(tmp_path: Path) -> None:
    archive = write(tmp_path, docker_save_tar([(app_image(), None)]))
    out = ctrpy(tmp_path, "images", "import", "--no-unpack", "--base-name", "example.com/untagged", archive)
    assert out.exit_code == 0, out.stderr
    (name,) = out.stdout.split()
    assert name.startswith("example.com/untagged@sha256:")


def test_an_untagged_image_without_base_name_is_named_import_date(tmp_path: Path) -> None:
    archive = write(tmp_path, docker_save_tar([(app_image(), None)]))
    out = ctrpy(tmp_path, "images", "import", "--no-unpack", archive)
    assert out.exit_code == 0, out.stderr
    (name,) = out.stdout.split()
    prefix, _, dgst = name.partition("@")
    assert prefix.startswith("import-") and len(prefix) == len("import-YYYY-MM-DD")
    assert dgst.startswith("sha256:")


def test_compress_blobs_stores_gzip_layers_labelled_with_their_diff_id(tmp_path: Path) -> None:
    built = app_image().build(compression="none")
    archive = write(tmp_path, docker_save_tar([(built, ["app:v1"])]))
    assert ctrpy(tmp_path, "images", "import", "--no-unpack", "--compress-blobs", archive).exit_code == 0
    manifest = json.loads(ctrpy(tmp_path, "images", "inspect", "app:v1").stdout)["manifest"]
    assert [x["mediaType"] for x in manifest["layers"]] == [MT_DOCKER_LAYER_GZIP] * 2
    items = json.loads(ctrpy(tmp_path, "content", "ls", "--json").stdout)["items"]
    labels = {i["digest"]: i["labels"] for i in items}
    for layer, diff_id in zip(manifest["layers"], built.diff_ids, strict=True):
        assert labels[layer["digest"]] == {mediatypes.LABEL_UNCOMPRESSED: diff_id}
    assert not set(built.diff_ids) & set(labels)  # the uncompressed copies are not part of the image


def test_an_image_for_another_platform_is_skipped_with_a_warning(tmp_path: Path) -> None:
    arch = "s390x" if HOST.architecture != "s390x" else "arm64"
    archive = write(tmp_path, docker_save_tar([
        (host_image([file("a")], architecture=arch), ["a:1"]),
        (host_image([file("b")]), ["b:1"]),
    ]))
    out = ctrpy(tmp_path, "images", "import", "--no-unpack", archive)
    assert out.exit_code == 0, out.stderr
    assert out.stdout.splitlines() == ["docker.io/library/b:1"]
    assert out.stderr.startswith(f"ctrpy: warning: skipping docker.io/library/a:1: the image is for linux/{arch}")
    out = ctrpy(tmp_path, "images", "import", "--no-unpack", "--platform", f"linux/{arch}", archive)
    assert out.stdout.splitlines() == ["docker.io/library/a:1"]


def test_an_archive_with_no_image_for_the_platform_is_an_error(tmp_path: Path) -> None:
    arch = "s390x" if HOST.architecture != "s390x" else "arm64"
    archive = write(tmp_path, docker_save_tar([(host_image([file("a")], architecture=arch), ["a:1"])]))
    out = ctrpy(tmp_path, "images", "import", "--no-unpack", archive)
    assert out.exit_code == 1
    assert out.stderr.splitlines()[-1].startswith("ctrpy: error: the archive has no image for")
    assert ctrpy(tmp_path, "images", "ls", "-q").stdout == ""


def test_import_unpacks_docker_images_with_every_layer_compression(tmp_path: Path) -> None:
    img = host_image(
        Layer([file("a", b"a")], compression="none"),
        Layer([file("b", b"b")], compression="gzip"),
        Layer([file("c", b"c")], compression="zstd"),
    )
    archive = write(tmp_path, docker_save_tar([(img.build(), ["app:v1"])]))
    out = ctrpy(tmp_path, "images", "import", archive)
    assert out.exit_code == 0, out.stderr
    dgst = json.loads(ctrpy(tmp_path, "images", "inspect", "app:v1").stdout)["target"]["digest"]
    assert out.stdout.splitlines() == [f"unpacking docker.io/library/app:v1 ({dgst})...done"]


# --------------------------------------------------------------------------- errors
def _bad(tmp_path: Path) -> dict[str, tuple[bytes, str]]:
    built = app_image().build(compression="none")
    config = f"{built.config.hex}.json"
    layers = [f"{digest_hex(b.digest)}.tar" for b in built.layers]
    item = {"Config": config, "RepoTags": ["app:v1"], "Layers": layers}
    one = [(built, ["app:v1"])]

    def podman(**kw: Any) -> bytes:
        return docker_save_tar(one, variant="podman", **kw)

    return {
        "missing-layer": (podman(omit=[layers[0]]), f"archive is missing layer '{layers[0]}'"),
        "missing-config": (podman(omit=[config]), f"archive is missing image config '{config}'"),
        "layer-count": (
            podman(manifest_json_override=json.dumps([{**item, "Layers": layers[:1]}]).encode()),
            "lists 1 layers, but its config has 2",
        ),
        "unknown-platform": (
            docker_save_tar([(host_image([file("a")], os="beos"), ["a:1"])]), "unknown platform beos/",
        ),
        "invalid-json": (podman(manifest_json_override=b"[{"), "manifest.json is not valid JSON"),
        "not-a-list": (podman(manifest_json_override=json.dumps(item).encode()), "not a JSON list"),
        "neither-format": (podman(omit=["manifest.json"]), "unrecognized image format"),
        "truncated": (podman(truncate_at=1000), "truncated"),  # inside the first layer
    }


@pytest.mark.parametrize(
    "case",
    ["missing-layer", "missing-config", "layer-count", "unknown-platform", "invalid-json", "not-a-list",
     "neither-format", "truncated"],
)
def test_bad_archive_is_one_error_line_exit_1_and_changes_nothing(tmp_path: Path, case: str) -> None:
    data, message = _bad(tmp_path)[case]
    out = ctrpy(tmp_path, "images", "import", "--no-unpack", write(tmp_path, data))
    assert out.exit_code == 1
    assert out.stdout == ""
    lines = out.stderr.splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("ctrpy: error: ")
    assert message in lines[0]
    assert image_names(tmp_path) == []
    assert content_digests(tmp_path) == []


def test_forcing_oci_on_a_docker_archive_is_an_error(tmp_path: Path) -> None:
    archive = write(tmp_path, docker_save_tar([(app_image(), ["app:v1"])]))
    out = ctrpy(tmp_path, "images", "import", "--no-unpack", "--format", "oci.v1", archive)
    assert out.exit_code == 1
    assert out.stderr.splitlines() == ["ctrpy: error: not an OCI image layout: the archive has no oci-layout file"]
    assert image_names(tmp_path) == []


def test_an_unknown_format_names_the_docker_formats_among_the_valid_ones(tmp_path: Path) -> None:
    archive = write(tmp_path, docker_save_tar([(app_image(), ["app:v1"])]))
    out = ctrpy(tmp_path, "images", "import", "--format", "docker.v9", archive)
    assert out.exit_code == 1
    assert "docker.v1.1, docker.v1.2" in out.stderr
