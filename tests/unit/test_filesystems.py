"""An image's root filesystem from the library (``ctrpy.filesystems``, mixed into the
Client): ``extract`` into a new or empty directory, ``flatten`` to one tar, all or nothing."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ctrpy.client import Client
from ctrpy.errors import FailedPrecondition, ImageNotFound
from tests.builders import file
from tests.helpers import host_image, named_archive

APP = "docker.io/library/app:v1"


@pytest.fixture
def client(root: Path) -> Iterator[Client]:
    c = Client(root)
    img = host_image([file("etc/base", b"base\n")], [file("app/run", b"run\n")])
    c.import_archive(io.BytesIO(named_archive((img, APP))))
    yield c
    c.close()


def test_extract_writes_every_layer_into_a_new_directory(client: Client, tmp_path: Path) -> None:
    layers = client.extract(APP, tmp_path / "out")
    assert (tmp_path / "out" / "etc" / "base").read_bytes() == b"base\n"
    assert (tmp_path / "out" / "app" / "run").read_bytes() == b"run\n"
    assert len(layers.chain_ids) == 2


def test_extract_into_a_directory_that_holds_something_is_refused_naming_it(client: Client, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "mine").write_bytes(b"keep")
    with pytest.raises(FailedPrecondition, match="out exists and is not an empty directory"):
        client.extract(APP, tmp_path / "out")
    assert (tmp_path / "out" / "mine").read_bytes() == b"keep"


def test_extract_of_an_image_that_is_not_there_makes_no_directory(client: Client, tmp_path: Path) -> None:
    with pytest.raises(ImageNotFound):
        client.extract("docker.io/library/none:v1", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_flatten_to_a_stream_is_the_extracted_tree_as_one_tar(client: Client, tmp_path: Path) -> None:
    out = io.BytesIO()
    client.flatten(APP, out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        names = {m.name.removeprefix("./") for m in tar.getmembers() if m.isfile()}
        assert names == {"etc/base", "app/run"}
    assert list((client.root.path / "tmp").iterdir()) == []  # its scratch tree is gone


def test_flatten_to_a_path_writes_the_file_only_when_done(client: Client, tmp_path: Path) -> None:
    with pytest.raises(ImageNotFound):
        client.flatten("docker.io/library/none:v1", tmp_path / "rootfs.tar")
    assert not (tmp_path / "rootfs.tar").exists()
    client.flatten(APP, tmp_path / "rootfs.tar")
    assert tarfile.is_tarfile(tmp_path / "rootfs.tar")
