"""``Client.import_layout`` (``ctrpy.formats.layout_dir``): an OCI image-layout directory,
read in place -- only what the selected platforms need, each blob verified."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ctrpy.client import Client
from ctrpy.errors import (
    DigestMismatch,
    InvalidArchive,
    MissingFromArchive,
    PlatformNotFound,
    SizeMismatch,
    UnsupportedDigest,
)
from ctrpy.formats import ImportOptions
from ctrpy.oci import Matcher
from ctrpy.progress import BlobStored, Event
from tests.builders import ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME, OCILayout, index_of
from tests.helpers import HOST, OTHER_ARCH, arch_image, raises_naming, text_image

NAME = "example.com/app:v1"


def layout_dir(path: Path, item: object, annotations: dict[str, str] | None = None, **options: object) -> Path:
    layout = OCILayout()
    layout.add_manifest(item, annotations if annotations is not None else {ANNOTATION_IMAGE_NAME: NAME})  # type: ignore[arg-type]
    return layout.write_dir(path, **options)  # type: ignore[arg-type]


def names(client: Client, path: Path, **opts: object) -> list[str]:
    return [img.name for img in client.import_layout(path, ImportOptions(**opts))]  # type: ignore[arg-type]


def test_a_layout_directory_imports_as_its_archive_would(client: Client, tmp_path: Path) -> None:
    img = text_image()
    assert names(client, layout_dir(tmp_path / "lay", img)) == [NAME]
    assert client.image(NAME).target.digest == img.manifest.digest
    assert client.check(NAME).complete


def test_a_bare_tag_gets_the_base_name(client: Client, tmp_path: Path) -> None:
    path = layout_dir(tmp_path / "lay", text_image(), {ANNOTATION_REF_NAME: "v2"})
    assert names(client, path, base_name="example.com/other") == ["example.com/other:v2"]


def test_only_the_selected_platforms_blobs_are_read(client: Client, tmp_path: Path) -> None:
    host, other = text_image(), arch_image(OTHER_ARCH)
    path = layout_dir(tmp_path / "lay", index_of([host, other]))
    client.import_layout(path, ImportOptions())
    stored = set(client.root.blobs.digests())
    assert {b.digest for b in host.blobs()} <= stored
    assert not {b.digest for b in other.blobs()} & stored


def test_blobs_of_other_platforms_may_be_absent(client: Client, tmp_path: Path) -> None:
    host, other = text_image(), arch_image(OTHER_ARCH)
    path = layout_dir(tmp_path / "lay", index_of([host, other]), omit_blobs=[b.digest for b in other.blobs()])
    assert names(client, path) == [NAME]


def test_all_platforms_needs_every_platforms_blobs(client: Client, tmp_path: Path) -> None:
    host, other = text_image(), arch_image(OTHER_ARCH)
    path = layout_dir(tmp_path / "lay", index_of([host, other]), omit_blobs=[other.config.digest])
    with raises_naming(MissingFromArchive, other.config.digest):
        client.import_layout(path, ImportOptions(matcher=Matcher(all_platforms=True)))
    assert client.images.names() == []


def test_a_blob_the_store_holds_is_not_read_again(client: Client, tmp_path: Path) -> None:
    img = text_image()
    path = layout_dir(tmp_path / "lay", img)
    client.import_layout(path, ImportOptions())
    layer = path / "blobs" / "sha256" / img.layers[0].digest.split(":")[1]
    layer.write_bytes(b"changed since")  # other bytes ...
    layer.chmod(0)  # ... unreadable (for a non-root reader): neither matters any more
    events: list[Event] = []
    Client(client.root, progress=events.append).import_layout(path, ImportOptions())
    assert all(not e.new for e in events if isinstance(e, BlobStored))


def test_a_tampered_blob_is_a_digest_mismatch_naming_the_file(client: Client, tmp_path: Path) -> None:
    img = text_image()
    path = layout_dir(tmp_path / "lay", img, tamper={img.config.digest: img.config.data.replace(b"amd64", b"AMD64")})
    with raises_naming(DigestMismatch, f"blobs/sha256/{img.config.digest.split(':')[1]}"):
        client.import_layout(path, ImportOptions())
    assert client.images.names() == []


def test_a_blob_longer_than_its_descriptor_says_is_refused(client: Client, tmp_path: Path) -> None:
    img = text_image()
    path = layout_dir(tmp_path / "lay", img, tamper={img.layers[0].digest: img.layers[0].data + b"x"})
    with pytest.raises(SizeMismatch):
        client.import_layout(path, ImportOptions())


def test_a_blob_that_is_a_fifo_is_refused_without_reading_it(client: Client, tmp_path: Path) -> None:
    img = text_image()
    path = layout_dir(tmp_path / "lay", img, omit_blobs=[img.layers[0].digest])
    os.mkfifo(path / "blobs" / "sha256" / img.layers[0].digest.split(":")[1])
    with raises_naming(InvalidArchive, "not a regular file"):
        client.import_layout(path, ImportOptions())


def test_a_directory_without_oci_layout_is_named(client: Client, tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    with raises_naming(InvalidArchive, "plain", "oci-layout"):
        client.import_layout(tmp_path / "plain", ImportOptions())


def test_a_layout_without_index_json_is_named(client: Client, tmp_path: Path) -> None:
    path = layout_dir(tmp_path / "lay", text_image())
    (path / "index.json").unlink()
    with raises_naming(InvalidArchive, "index.json"):
        client.import_layout(path, ImportOptions())


def test_another_layout_version_is_refused(client: Client, tmp_path: Path) -> None:
    path = layout_dir(tmp_path / "lay", text_image(), oci_layout_override=b'{"imageLayoutVersion": "2.0.0"}')
    with raises_naming(InvalidArchive, "2.0.0"):
        client.import_layout(path, ImportOptions())


def test_an_index_json_over_the_json_limit_is_refused_unread(client: Client, tmp_path: Path) -> None:
    path = layout_dir(tmp_path / "lay", text_image())
    with open(path / "index.json", "r+b") as f:
        f.truncate(21 << 20)
    with raises_naming(InvalidArchive, "index.json"):
        client.import_layout(path, ImportOptions())


def test_a_sha512_blob_an_image_needs_is_unsupported(client: Client, tmp_path: Path) -> None:
    img = text_image()
    doc = OCILayout()
    doc.add_manifest(img, {ANNOTATION_IMAGE_NAME: NAME}, descriptor_extra={"digest": "sha512:" + "a" * 128})
    path = doc.write_dir(tmp_path / "lay")
    with pytest.raises(UnsupportedDigest):
        client.import_layout(path, ImportOptions())


def test_the_host_platform_is_the_default(client: Client, tmp_path: Path) -> None:
    path = layout_dir(tmp_path / "lay", index_of([arch_image(OTHER_ARCH)]))
    with raises_naming(PlatformNotFound, str(HOST)):
        client.import_layout(path, ImportOptions())
