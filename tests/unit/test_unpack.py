"""Unpacking an image's layers into a chain of snapshots (``Client.unpack``, ``ctrpy.unpack``).

Each layer becomes a committed snapshot keyed by its chainID (containerd's formula, computed
here by the builders, an independent oracle); a layer whose snapshot exists is skipped; a
layer that fails in any way (a lying config, a corrupt blob, a truncated stream, an
interruption) leaves no snapshot for itself or anything above it, and the next unpack
starts from the last good layer. Every test runs with both snapshotters (``overlayfs`` only
as root where it can be mounted); an overlayfs tree is read through a real read-only
overlay mount, as a container would see it.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from ctrpy.client import Client
from ctrpy.errors import DigestMismatch, InvalidArchive, UnpackError
from ctrpy.formats import ImportOptions
from ctrpy.oci import mediatypes
from ctrpy.progress import Event, LayerDone, LayerProgress, Warn
from ctrpy.snapshots import Snapshotter
from ctrpy.unpack import LABEL_SNAPSHOT_IMAGE, SkippedDevices
from tests.builders import (
    ANNOTATION_IMAGE_NAME,
    MT_OCI_LAYER,
    MT_OCI_LAYER_GZIP,
    BuiltImage,
    Compression,
    Image,
    Layer,
    OCILayout,
    chain_ids,
    compress,
    digest_hex,
    directory,
    file,
    layer_tar,
    sha256_digest,
    whiteout,
)
from tests.helpers import host_image, raises_naming
from tests.treecmp import diff, feature_layers, files, tree

pytestmark = pytest.mark.usefixtures("no_env_snapshotter")

APP = "docker.io/library/app:v1"
OTHER = "docker.io/library/other:v1"


# --------------------------------------------------------------------------- helpers
BASE = [directory("etc"), file("etc/base", b"base\n"), file("etc/remove-me", b"x")]
APP_LAYER = [directory("app"), file("app/bin", b"app\n"), whiteout("etc/remove-me")]
TOP = [file("app/config", b"config\n")]


class Events(list[Event]):
    """A progress sink that keeps what it is told; ``fail`` raises from inside it."""

    fail: Any = None

    def __call__(self, event: Event) -> None:
        self.append(event)
        if self.fail is not None:
            self.fail(event)

    def skipped(self) -> list[bool]:
        return [e.skipped for e in self if isinstance(e, LayerDone)]


@pytest.fixture
def events() -> Events:
    return Events()


@pytest.fixture
def client(tmp_path: Path, events: Events) -> Iterator[Client]:
    c = Client(tmp_path / "root", progress=events)
    yield c
    c.close()


def store(client: Client, tmp_path: Path, *images: tuple[Image | BuiltImage, str]) -> None:
    """Import ``images`` (each under its name) without unpacking them."""
    layout = OCILayout()
    for img, name in images:
        layout.add_manifest(img, {ANNOTATION_IMAGE_NAME: name})
    path = tmp_path / f"in-{len(os.listdir(tmp_path))}.tar"
    layout.write_tar(path)
    with path.open("rb") as f:
        client.import_archive(f, "oci.v1", ImportOptions(), unpack=False)


def keys(sn: Snapshotter) -> list[tuple[str, str, str]]:
    return [(s.key, s.parent, s.kind) for s in sn.list()]


def snapshot_dirs(sn: Snapshotter) -> int:
    base = sn.root / "snapshots"
    return len(os.listdir(base)) if base.is_dir() else 0


def assert_nothing_from(sn: Snapshotter, chain: list[str], index: int) -> None:
    """After a failed unpack: no snapshot for layer ``index`` or above, no active leftover,
    no directory without a row. (Layers below may or may not have been kept: overlayfs
    applies layers side by side and commits none of them when one fails.)"""
    rows = sn.list()
    assert not {s.key for s in rows} & set(chain[index:])
    assert all(s.kind == "committed" for s in rows), [(s.key, s.kind) for s in rows]
    assert {s.key for s in rows} <= set(chain[:index])
    assert snapshot_dirs(sn) == len(rows)


def blob_path(client: Client, digest: str) -> Path:
    return client.root.path / "content" / "blobs" / "sha256" / digest_hex(digest)


def tamper(path: Path, change: Any) -> None:
    data = bytearray(path.read_bytes())
    change(data)
    os.chmod(path, 0o644)
    path.write_bytes(bytes(data))


@contextmanager
def snapshot_view(sn: Snapshotter, key: str) -> Iterator[Path]:
    """The tree of committed snapshot ``key`` as a container sees it.

    native: the snapshot's own directory. overlayfs: the layer directories stacked by a
    read-only overlay mount (made with mount(8), not with ctrpy), unmounted afterwards.
    """
    lowers = sn.lowerdirs(key)
    if len(lowers) == 1:
        yield lowers[0]
        return
    with tempfile.TemporaryDirectory(prefix="view-") as target:
        subprocess.run(
            ["mount", "-t", "overlay", "overlay", "-o", "ro,lowerdir=" + ":".join(map(str, lowers)), target],
            check=True,
            capture_output=True,
        )
        try:
            yield Path(target)
        finally:
            subprocess.run(["umount", target], check=True)


# --------------------------------------------------------------------------- chainIDs
def test_each_layer_becomes_a_committed_snapshot_keyed_by_its_chain_id(
    client: Client, tmp_path: Path, snapshotter: str
) -> None:
    img = host_image(BASE, APP_LAYER, TOP).build()
    store(client, tmp_path, (img, APP))
    top = client.unpack(APP, snapshotter=snapshotter)
    chain = chain_ids(img.diff_ids)
    assert top == chain[-1]
    assert keys(client.snapshotter(snapshotter)) == sorted(
        [(chain[0], "", "committed"), (chain[1], chain[0], "committed"), (chain[2], chain[1], "committed")]
    )


def test_the_top_snapshot_holds_the_merged_tree(client: Client, tmp_path: Path, snapshotter: str) -> None:
    store(client, tmp_path, (host_image(BASE, APP_LAYER, TOP), APP))
    top = client.unpack(APP, snapshotter=snapshotter)
    with snapshot_view(client.snapshotter(snapshotter), top) as view:
        assert files(view) == {
            "app": None,
            "app/bin": b"app\n",
            "app/config": b"config\n",
            "etc": None,
            "etc/base": b"base\n",
        }


def test_snapshots_are_labelled_with_the_image_that_unpacked_them(
    client: Client, tmp_path: Path, snapshotter: str
) -> None:
    store(client, tmp_path, (host_image(BASE), APP))
    top = client.unpack(APP, snapshotter=snapshotter)
    assert client.snapshotter(snapshotter).stat(top).labels == {LABEL_SNAPSHOT_IMAGE: APP}


def test_an_image_without_layers_unpacks_to_nothing(client: Client, tmp_path: Path, snapshotter: str) -> None:
    store(client, tmp_path, (host_image(), APP))
    assert client.unpack(APP, snapshotter=snapshotter) == ""
    assert client.snapshotter(snapshotter).list() == []


# --------------------------------------------------------------------------- skipping
def test_a_second_unpack_skips_every_layer(
    client: Client, tmp_path: Path, snapshotter: str, events: Events
) -> None:
    store(client, tmp_path, (host_image(BASE, APP_LAYER), APP))
    client.unpack(APP, snapshotter=snapshotter)
    sn = client.snapshotter(snapshotter)
    before = [(s.key, s.dir, s.updated_at) for s in sn.list()]
    assert events.skipped() == [False, False]
    events.clear()
    client.unpack(APP, snapshotter=snapshotter)
    assert events.skipped() == [True, True]
    assert not any(isinstance(e, LayerProgress) for e in events)
    assert [(s.key, s.dir, s.updated_at) for s in sn.list()] == before


def test_layers_shared_between_two_images_are_unpacked_once(
    client: Client, tmp_path: Path, snapshotter: str, events: Events
) -> None:
    app = host_image(BASE, APP_LAYER).build()
    other = host_image(BASE, [file("other", b"other")]).build()
    store(client, tmp_path, (app, APP), (other, OTHER))
    client.unpack(APP, snapshotter=snapshotter)
    events.clear()
    client.unpack(OTHER, snapshotter=snapshotter)
    assert events.skipped() == [True, False]
    sn = client.snapshotter(snapshotter)
    base = chain_ids(app.diff_ids)[0]
    assert [s.key for s in sn.list()] == sorted(
        [base, chain_ids(app.diff_ids)[1], chain_ids(other.diff_ids)[1]]
    )
    assert sn.stat(chain_ids(other.diff_ids)[1]).parent == base
    assert snapshot_dirs(sn) == 3


def test_a_snapshot_whose_tree_was_lost_is_unpacked_again(client: Client, tmp_path: Path) -> None:
    store(client, tmp_path, (host_image(BASE), APP))
    top = client.unpack(APP, snapshotter="native")
    sn = client.snapshotter("native")
    subprocess.run(["rm", "-rf", str(sn.fs_path(sn.stat(top)))], check=True)
    client.unpack(APP, snapshotter="native")
    assert sn.exists(top)
    assert (sn.fs_path(sn.stat(top)) / "etc" / "base").read_bytes() == b"base\n"


@pytest.mark.parametrize("count", ["more", "fewer"])
def test_a_count_of_diff_ids_other_than_of_layers_is_mismatched_image_rootfs_and_manifest_layers(
    client: Client, tmp_path: Path, snapshotter: str, count: str
) -> None:
    img = host_image(BASE, APP_LAYER)
    diff_ids = [*img.diff_ids, sha256_digest(b"no such layer")] if count == "more" else img.diff_ids[:1]
    img.config_extra = {"rootfs": {"type": "layers", "diff_ids": diff_ids}}
    store(client, tmp_path, (img, APP))
    with raises_naming(UnpackError, "rootfs", "layers"):  # containerd's words: ctr users grep for them
        client.unpack(APP, snapshotter=snapshotter)
    assert client.snapshotter(snapshotter).list() == []


def test_a_diff_id_the_layer_does_not_hash_to_is_an_error_that_leaves_no_snapshot_from_that_layer_up(
    client: Client, tmp_path: Path, snapshotter: str
) -> None:
    lie = sha256_digest(b"not the layer")
    img = host_image(BASE, Layer(APP_LAYER, diff_id=lie), TOP).build()
    store(client, tmp_path, (img, APP))
    with raises_naming(DigestMismatch, "layer 1", img.layers[1].digest, lie, sha256_digest(layer_tar(APP_LAYER))):
        client.unpack(APP, snapshotter=snapshotter)
    assert_nothing_from(client.snapshotter(snapshotter), chain_ids(img.diff_ids), 1)


# --------------------------------------------------------------------------- damaged content
def _flip_middle_byte(data: bytearray) -> None:
    data[len(data) // 2] ^= 0xFF


def _gzip_mtime(data: bytearray) -> None:
    data[4:8] = b"\x01\x02\x03\x04"  # the gzip header's MTIME: inflates to the same tar


@pytest.mark.parametrize(
    ("compression", "change"),
    [
        ("gzip", _flip_middle_byte),
        ("zstd", _flip_middle_byte),
        ("none", _flip_middle_byte),
        ("gzip", _gzip_mtime),
    ],
    ids=["gzip-flipped-byte", "zstd-flipped-byte", "tar-flipped-byte", "gzip-header-only"],
)
def test_a_corrupted_layer_blob_in_the_store_is_detected_and_leaves_no_snapshot(
    client: Client, tmp_path: Path, snapshotter: str, compression: Compression, change: Any
) -> None:
    big = [directory("data"), file("data/blob", bytes(range(256)) * 64)]
    img = host_image(BASE, big, compression=compression).build()
    store(client, tmp_path, (img, APP))
    tamper(blob_path(client, img.layers[1].digest), change)
    with raises_naming(InvalidArchive, "layer 1", img.layers[1].digest, APP):  # a digest mismatch, or the
        # decompressor's or tar reader's error, whichever sees the damage first
        client.unpack(APP, snapshotter=snapshotter)
    assert_nothing_from(client.snapshotter(snapshotter), chain_ids(img.diff_ids), 1)


def test_a_blob_with_an_unchanged_tar_but_a_changed_gzip_header_is_reported_as_corrupt_content(
    client: Client, tmp_path: Path, snapshotter: str
) -> None:
    img = host_image(BASE).build()
    store(client, tmp_path, (img, APP))
    tamper(blob_path(client, img.layers[0].digest), _gzip_mtime)
    with raises_naming(DigestMismatch, img.layers[0].digest, "digest mismatch", "in the store"):
        client.unpack(APP, snapshotter=snapshotter)


def test_progress_is_sampled_and_its_last_sample_counts_the_whole_layer(
    client: Client, tmp_path: Path, snapshotter: str, events: Events
) -> None:
    many = [directory("many")] + [file(f"many/f{i}", b"x") for i in range(300)]
    img = host_image(BASE, many).build()
    store(client, tmp_path, (img, APP))
    client.unpack(APP, snapshotter=snapshotter)
    samples = [e for e in events if isinstance(e, LayerProgress) and e.index == 1]
    assert len(samples) < 301  # not an event per entry
    assert samples[-1].entries == 301
    assert samples[-1].compressed_done > 0


# --------------------------------------------------------------------------- interruptions
class Boom(Exception):
    pass


def interrupted_unpack(client: Client, tmp_path: Path, snapshotter: str, events: Events, exc: type[BaseException],
                       *, files: int, size: int, at: int) -> BuiltImage:
    """An image whose second layer has ``files`` files of ``size`` bytes, stored, then
    unpacked with ``exc`` raised when that layer's progress reaches ``at`` entries."""
    many = [directory("many")] + [file(f"many/f{i}", b"x" * size) for i in range(files)]
    img = host_image(BASE, many, TOP).build()
    store(client, tmp_path, (img, APP))

    def interrupt(event: Event) -> None:
        if isinstance(event, LayerProgress) and event.index == 1 and event.entries == at:
            raise exc

    events.fail = interrupt
    with pytest.raises(exc):
        client.unpack(APP, snapshotter=snapshotter)
    return img


@pytest.mark.parametrize("exc", [Boom, KeyboardInterrupt])
def test_an_unpack_interrupted_mid_layer_leaves_no_snapshot_for_that_layer(
    client: Client, tmp_path: Path, snapshotter: str, events: Events, exc: type[BaseException]
) -> None:
    img = interrupted_unpack(client, tmp_path, snapshotter, events, exc, files=20, size=1, at=5)
    assert_nothing_from(client.snapshotter(snapshotter), chain_ids(img.diff_ids), 1)


def test_an_interrupted_unpack_leaves_no_layer_reading_thread_behind(
    client: Client, tmp_path: Path, snapshotter: str, events: Events
) -> None:
    interrupted_unpack(client, tmp_path, snapshotter, events, KeyboardInterrupt, files=200, size=4096, at=3)
    assert [t for t in threading.enumerate() if t.name == "ctrpy-layer-reader"] == []


def test_an_unpack_after_an_interrupted_one_completes_the_image(
    client: Client, tmp_path: Path, snapshotter: str, events: Events
) -> None:
    img = host_image(BASE, APP_LAYER, TOP).build()
    store(client, tmp_path, (img, APP))

    def interrupt(event: Event) -> None:
        if isinstance(event, LayerProgress) and event.index == 1:
            raise KeyboardInterrupt

    events.fail = interrupt
    with pytest.raises(KeyboardInterrupt):
        client.unpack(APP, snapshotter=snapshotter)
    events.fail = None
    events.clear()
    assert client.unpack(APP, snapshotter=snapshotter) == chain_ids(img.diff_ids)[-1]
    assert events.skipped()[1:] == [False, False]
    with snapshot_view(client.snapshotter(snapshotter), chain_ids(img.diff_ids)[-1]) as view:
        assert (view / "app" / "config").read_bytes() == b"config\n"


def _gzip_cut_short(tar: bytes) -> bytes:
    data = compress(tar, "gzip")
    return data[: len(data) * 2 // 3]


def _tar_cut_mid_file(tar: bytes) -> bytes:
    return tar[: tar.index(b"y" * 4096) + 2048]


@pytest.mark.parametrize(
    "cut", [_gzip_cut_short, _tar_cut_mid_file], ids=["gzip-cut-short", "tar-cut-mid-file"]
)
def test_a_layer_stream_that_ends_half_way_fails_and_a_good_image_unpacks_afterwards(
    client: Client, tmp_path: Path, snapshotter: str, cut: Any
) -> None:
    payload = [
        directory("half"),
        file("half/a", b"x" * 4096),
        file("half/b", b"y" * 8192),
        file("half/c", b"z"),
    ]
    broken_blob = cut(layer_tar(payload))
    broken = host_image(
        BASE,
        Layer(
            blob=broken_blob,
            media_type=MT_OCI_LAYER_GZIP if broken_blob[:2] == b"\x1f\x8b" else MT_OCI_LAYER,
            diff_id=sha256_digest(layer_tar(payload)),
        ),
    ).build()
    good = host_image(BASE, payload).build()
    store(client, tmp_path, (broken, APP), (good, OTHER))
    with raises_naming(InvalidArchive, "layer 1", "truncated"):
        client.unpack(APP, snapshotter=snapshotter)
    sn = client.snapshotter(snapshotter)
    assert_nothing_from(sn, chain_ids(broken.diff_ids), 1)
    top = client.unpack(OTHER, snapshotter=snapshotter)
    assert top == chain_ids(good.diff_ids)[-1]
    with snapshot_view(sn, top) as view:
        assert (view / "half" / "b").read_bytes() == b"y" * 8192


# --------------------------------------------------------------------------- labels
@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_unpack_labels_compressed_layer_blobs_with_their_uncompressed_digest(
    client: Client, tmp_path: Path, snapshotter: str, compression: Compression
) -> None:
    img = host_image(BASE, APP_LAYER, compression=compression).build()
    store(client, tmp_path, (img, APP))
    assert all(mediatypes.LABEL_UNCOMPRESSED not in client.content.info(b.digest).labels for b in img.layers)
    client.unpack(APP, snapshotter=snapshotter)
    for blob, diff_id in zip(img.layers, img.diff_ids, strict=True):
        assert client.content.info(blob.digest).labels[mediatypes.LABEL_UNCOMPRESSED] == diff_id


def test_import_with_unpack_labels_compressed_layer_blobs_too(
    client: Client, tmp_path: Path, snapshotter: str
) -> None:
    img = host_image(BASE, APP_LAYER).build()
    layout = OCILayout()
    layout.add_manifest(img, {ANNOTATION_IMAGE_NAME: APP})
    layout.write_tar(tmp_path / "in.tar")
    with (tmp_path / "in.tar").open("rb") as f:
        client.import_archive(f, "oci.v1", ImportOptions(), unpack=True, snapshotter=snapshotter)
    for blob, diff_id in zip(img.layers, img.diff_ids, strict=True):
        assert client.content.info(blob.digest).labels[mediatypes.LABEL_UNCOMPRESSED] == diff_id


def test_a_failed_unpack_labels_nothing(client: Client, tmp_path: Path, snapshotter: str) -> None:
    img = host_image(BASE, Layer(APP_LAYER, diff_id=sha256_digest(b"lie"))).build()
    store(client, tmp_path, (img, APP))
    with pytest.raises(DigestMismatch):
        client.unpack(APP, snapshotter=snapshotter)
    for blob in img.layers:
        assert mediatypes.LABEL_UNCOMPRESSED not in client.content.info(blob.digest).labels


# --------------------------------------------------------------------------- compressions
@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_gzip_zstd_and_uncompressed_layers_unpack_to_the_same_tree(
    client: Client, tmp_path: Path, snapshotter: str, compression: Compression
) -> None:
    img = host_image(BASE, APP_LAYER, compression=compression).build()
    store(client, tmp_path, (img, APP))
    top = client.unpack(APP, snapshotter=snapshotter)
    assert top == chain_ids(img.diff_ids)[-1]  # diffIDs do not depend on the compression
    with snapshot_view(client.snapshotter(snapshotter), top) as view:
        assert files(view) == {"app": None, "app/bin": b"app\n", "etc": None, "etc/base": b"base\n"}


def test_layers_of_different_compressions_mix_in_one_image(
    client: Client, tmp_path: Path, snapshotter: str
) -> None:
    img = host_image(Layer(BASE, compression="zstd"), Layer(APP_LAYER, compression="none"), TOP).build()
    store(client, tmp_path, (img, APP))
    top = client.unpack(APP, snapshotter=snapshotter)
    with snapshot_view(client.snapshotter(snapshotter), top) as view:
        assert (view / "app" / "config").read_bytes() == b"config\n"
        assert (view / "etc" / "base").read_bytes() == b"base\n"


# --------------------------------------------------------------------------- unpack vs extract
def test_the_unpacked_tree_equals_the_extracted_tree(
    client: Client, tmp_path: Path, snapshotter: str
) -> None:
    if os.geteuid() != 0:
        pytest.skip("the feature image has devices and owners: compare as root")
    store(client, tmp_path, (host_image(*feature_layers()), APP))
    top = client.unpack(APP, snapshotter=snapshotter)
    client.extract(APP, tmp_path / "extracted")
    expected = tree(tmp_path / "extracted")
    with snapshot_view(client.snapshotter(snapshotter), top) as view:
        got = tree(view, ignore_xattrs=("security.selinux", "trusted.overlay.opaque"))
    assert got == expected, diff(got, expected, ("unpacked", "extracted"))


# --------------------------------------------------------------------------- device nodes not created
def test_skipped_devices_are_said_once_per_reason_naming_them_sorted() -> None:
    events: list[Event] = []
    devices = SkippedDevices("docker.io/library/x:1")
    for entry in ("dev/null", "dev/loop0", "dev/null"):  # a node rewritten by an upper layer counts once
        devices.add(entry, "not applying owners")
    devices.add("dev/kmsg", "mknod not permitted")
    devices.report(events.append)
    assert events == [
        Warn("docker.io/library/x:1: 1 device node not created (mknod not permitted): dev/kmsg"),
        Warn("docker.io/library/x:1: 2 device nodes not created (not applying owners): dev/loop0, dev/null"),
    ]


def test_skipped_devices_name_the_first_five_and_count_the_rest() -> None:
    events: list[Event] = []
    devices = SkippedDevices("img")
    for i in range(8):
        devices.add(f"dev/tty{i}", "not applying owners")
    devices.report(events.append)
    (warning,) = events
    assert isinstance(warning, Warn)
    assert warning.message.endswith("dev/tty0, dev/tty1, dev/tty2, dev/tty3, dev/tty4 and 3 more")


def test_no_skipped_device_says_nothing() -> None:
    events: list[Event] = []
    SkippedDevices("img").report(events.append)
    assert events == []
