"""``ctrpy images import DIR`` (an OCI image-layout directory, skopeo's ``oci:DIR``) and
``ctrpy images import --rootfs NAME IN`` (a root filesystem tar, ``docker import``'s job)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.builders import ANNOTATION_REF_NAME, OCILayout, directory, file, layer_tar
from tests.helpers import Cli, text_image, unpacking_line
from tests.treecmp import files


def layout(path: Path, tag: str = "v1") -> Path:
    doc = OCILayout()
    doc.add_manifest(text_image(), {ANNOTATION_REF_NAME: tag})
    return doc.write_dir(path)


# --------------------------------------------------------------------------- directories
def test_a_layout_directory_imports_and_unpacks(run: Cli, tmp_path: Path) -> None:
    out = run.ok("images", "import", "--oci-name", "example.com/app", str(layout(tmp_path / "lay")))
    assert out.stdout == unpacking_line("example.com/app:v1", text_image()) + "\n"
    assert run.names() == ["example.com/app:v1"]


def test_a_layout_directory_with_no_unpack_prints_the_names(run: Cli, tmp_path: Path) -> None:
    out = run.ok("images", "import", "--no-unpack", str(layout(tmp_path / "lay")))
    assert out.stdout == "unknown/unknown:v1\n"


def test_a_directory_that_is_no_layout_is_one_error_line(run: Cli, tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    run.fails("images", "import", str(tmp_path / "plain"), match=("plain", "oci-layout"))


def test_a_directory_with_a_docker_format_is_a_usage_error(run: Cli, tmp_path: Path) -> None:
    run.usage_error("images", "import", "--format", "docker.v1.2", str(layout(tmp_path / "lay")))


def test_a_damaged_layout_changes_nothing(run: Cli, tmp_path: Path) -> None:
    run.ok("images", "import", "--no-unpack", "--oci-name", "before/it", str(layout(tmp_path / "good")))
    img = text_image(b"another")
    doc = OCILayout()
    doc.add_manifest(img, {ANNOTATION_REF_NAME: "v2"})
    bad = doc.write_dir(tmp_path / "bad", tamper={img.layers[0].digest: b"not the layer"})
    before = run.state()
    run.fails("images", "import", str(bad), match=img.layers[0].digest.split(":")[1])
    run.assert_unchanged(before)


# --------------------------------------------------------------------------- root filesystem tars
ROOTFS = layer_tar([directory("etc"), file("etc/hostname", b"handmade\n")])


def test_rootfs_makes_a_one_layer_image_from_stdin(run: Cli, tmp_path: Path) -> None:
    out = run.ok("images", "import", "--rootfs", "example.com/base:1", "-", input=ROOTFS)
    assert out.stdout.startswith("unpacking example.com/base:1 (sha256:")
    run.ok("images", "extract", "example.com/base:1", str(tmp_path / "out"))
    assert files(tmp_path / "out") == {"etc": None, "etc/hostname": b"handmade\n"}


def test_rootfs_reads_a_file_and_takes_labels_and_a_platform(run: Cli) -> None:
    path = run.write(ROOTFS, "rootfs.tar")
    run.ok("images", "import", "--no-unpack", "--platform", "linux/arm64", "--label", "team=infra",
           "--rootfs", "example.com/base:1", path)
    item = run.image("example.com/base:1")
    assert item["platforms"] == ["linux/arm64"] and item["labels"] == {"team": "infra"}


@pytest.mark.parametrize(
    "flags",
    [["--format", "oci.v1"], ["--digests"], ["--index-name", "x"], ["--all-platforms"], ["--compress-blobs"],
     ["--oci-name", "a/b"], ["--platform", "linux/amd64", "--platform", "linux/arm64"]],
    ids=["format", "digests", "index-name", "all-platforms", "compress-blobs", "oci-name", "two-platforms"],
)
def test_rootfs_refuses_the_options_of_archives(run: Cli, flags: list[str]) -> None:
    run.usage_error("images", "import", *flags, "--rootfs", "x/y:1", "-", input=ROOTFS)


def test_rootfs_of_a_directory_is_a_usage_error(run: Cli, tmp_path: Path) -> None:
    run.usage_error("images", "import", "--rootfs", "x/y:1", str(tmp_path))


def test_rootfs_of_what_is_no_tar_changes_nothing(populated: Cli) -> None:
    before = populated.state()
    populated.fails("images", "import", "--rootfs", "x/y:1", "-", input=b"hello" * 200, match="root filesystem tar")
    populated.assert_unchanged(before)
    populated.assert_store_works()
