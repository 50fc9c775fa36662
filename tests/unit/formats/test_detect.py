"""``--format auto``: which importer reads an archive, decided after the one pass over it."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from ctrpy.client import Client
from ctrpy.content.blobs import BlobStore
from ctrpy.errors import UnsupportedFormat
from ctrpy.formats import ImportContext, ImportOptions
from ctrpy.formats.detect import detect
from ctrpy.formats.reader import read_archive
from tests.builders import MT_DOCKER_MANIFEST, docker_save_tar, file
from tests.helpers import host_image


def base_image() -> Any:
    return host_image([file("etc/base", b"base")])


def _contents(tmp_path: Path, data: bytes) -> Any:
    return read_archive(io.BytesIO(data), ImportContext(BlobStore(tmp_path / "content"), ImportOptions()))


def test_detect_prefers_oci_when_both_oci_layout_and_manifest_json_are_present(tmp_path: Path) -> None:
    name, _imp = detect(_contents(tmp_path, docker_save_tar([(base_image(), ["a:1"])], variant="docker25")))
    assert name == "oci.v1"


def test_detect_picks_docker_when_only_manifest_json_is_present(tmp_path: Path) -> None:
    name, _imp = detect(_contents(tmp_path, docker_save_tar([(base_image(), ["a:1"])], variant="classic")))
    assert name == "docker.v1.2"


def test_detect_refuses_an_archive_with_neither(tmp_path: Path) -> None:
    data = docker_save_tar([(base_image(), ["a:1"])], variant="podman", omit=["manifest.json"])
    with pytest.raises(UnsupportedFormat, match="unrecognized image format"):
        detect(_contents(tmp_path, data))


def test_auto_imports_a_classic_docker_save_archive(client: Client) -> None:
    data = docker_save_tar([(base_image(), ["a:1"])])
    assert [i.name for i in client.import_archive(io.BytesIO(data), "auto")] == ["docker.io/library/a:1"]
    assert client.image("a:1").target.media_type == MT_DOCKER_MANIFEST


