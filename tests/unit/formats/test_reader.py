"""The format-free archive reader: one pass, strict about truncation, names never paths."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from ctrpy.content import BlobStore
from ctrpy.errors import InvalidArchive
from ctrpy.formats.base import ImportContext, ImportOptions
from ctrpy.formats.reader import ArchiveContents, read_archive
from tests.builders import Image, OCILayout, docker_save_tar, file


def read(tmp_path: Path, data: bytes) -> ArchiveContents:
    ctx = ImportContext(BlobStore(tmp_path / "content"), ImportOptions())
    return read_archive(io.BytesIO(data), ctx)


def small_image() -> Image:
    return Image(layers=[[file("a", b"1" * 3000)]])


@pytest.mark.parametrize("cut", [700, 3000, 5000])
def test_an_archive_cut_anywhere_inside_is_reported_as_truncated(tmp_path: Path, cut: int) -> None:
    data = docker_save_tar([(small_image(), ["a:1"])], variant="podman")
    assert cut < len(data) - 1024
    with pytest.raises(InvalidArchive, match=r"truncated|unexpected end|end of"):
        read(tmp_path, data[:cut])


def test_a_cut_inside_a_header_after_the_first_member_is_truncation(tmp_path: Path) -> None:
    layout = OCILayout()
    layout.add_manifest(small_image(), {"org.opencontainers.image.ref.name": "v1"})
    data = layout.tar_bytes()
    with pytest.raises(InvalidArchive):
        read(tmp_path, data[: 512 * 3 + 100])


def test_every_regular_member_outside_blobs_is_stored_under_its_own_digest(tmp_path: Path) -> None:
    data = docker_save_tar([(small_image(), ["a:1"])], variant="classic")
    contents = read(tmp_path, data)
    layer_names = [n for n in contents.blobs if n.endswith("layer.tar")]
    assert layer_names
    for name in layer_names:
        dgst = contents.blob_digest(name)
        assert dgst is not None and (tmp_path / "content" / "blobs" / "sha256" / dgst[7:]).is_file()


def test_member_names_that_climb_out_are_only_dictionary_keys(tmp_path: Path) -> None:
    from tests.builders import Entry, layer_tar

    data = layer_tar([Entry("../../escape.json", data=b"{}"), Entry("/abs/x", data=b"y")])
    contents = read(tmp_path, data)
    assert contents.metadata_bytes("escape.json") == b"{}"
    assert not (tmp_path.parent / "escape.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["content"]


def test_a_4_kb_member_name_is_shortened_in_the_error(tmp_path: Path) -> None:
    from tests.builders import Entry, layer_tar

    data = layer_tar([Entry("blobs/sha256/start-" + "x" * 4096 + "-end", data=b"y")])
    with pytest.raises(InvalidArchive, match="not a valid blob name") as info:
        read(tmp_path, data)
    message = str(info.value)
    assert "'blobs/sha256/start-xxx" in message and "xxx-end'" in message
    assert len(message) < 400


def test_an_empty_input_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidArchive, match="empty"):
        read(tmp_path, b"")


def test_blobs_the_store_already_had_are_reported_as_not_new(tmp_path: Path) -> None:
    from ctrpy.progress import BlobStored, Event

    data = docker_save_tar([(small_image(), ["a:1"])], variant="classic")
    for expect_new in (True, False):
        events: list[Event] = []
        ctx = ImportContext(BlobStore(tmp_path / "content"), ImportOptions(), events.append)
        read_archive(io.BytesIO(data), ctx)
        stored = [e for e in events if isinstance(e, BlobStored)]
        assert stored and all(e.new is expect_new for e in stored)
