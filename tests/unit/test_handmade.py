"""``Client.snapshots_by_hand`` (``ctrpy.handmade``): snapshots a user prepares, views,
commits, labels and mounts, and the layers ``diff`` makes of them -- and how all of them
survive the garbage collections every ``rm`` runs."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from ctrpy.client import Client
from ctrpy.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from ctrpy.formats import ImportOptions
from ctrpy.gc import LABEL_ROOT
from ctrpy.handmade import HandSnapshots
from ctrpy.oci import mediatypes
from ctrpy.snapshots.mounts import Mount
from tests.builders import chain_ids, decompress, directory, file
from tests.helpers import host_image, named_archive, raises_naming, usable

BASE = "example.com/base:1"


@pytest.fixture
def hand(client: Client, snapshotter: str) -> HandSnapshots:
    return client.snapshots_by_hand(snapshotter)


def unpacked_base(client: Client, snapshotter: str) -> str:
    """An image unpacked into ``snapshotter``; returns its top chainID."""
    img = host_image([directory("etc"), file("etc/hosts", b"127.0.0.1\n")]).build()
    client.import_archive(io.BytesIO(named_archive((img, BASE))), "oci.v1", ImportOptions(), unpack=True,
                          snapshotter=snapshotter)
    return chain_ids(img.diff_ids)[-1]


def tree_of(hand: HandSnapshots, key: str) -> Path:
    """Where a prepared snapshot's changes go (the directory its mount writes to)."""
    return hand.sn.fs_path(hand.sn.stat(key))


# --------------------------------------------------------------------------- surviving collections
def test_a_prepared_snapshot_is_labelled_gc_root(hand: HandSnapshots) -> None:
    assert LABEL_ROOT in hand.prepare("work").labels


def test_a_prepared_snapshot_and_its_parent_survive_a_collection(
    client: Client, hand: HandSnapshots, snapshotter: str
) -> None:
    top = unpacked_base(client, snapshotter)
    hand.prepare("work", top)
    client.remove_images([BASE])  # collects
    assert hand.sn.stat("work").parent == top
    assert hand.sn.exists(top)


def test_a_snapshot_whose_gc_root_label_is_removed_is_collected(client: Client, hand: HandSnapshots) -> None:
    hand.prepare("work", labels={LABEL_ROOT: ""})
    client.collect()
    with pytest.raises(NotFound):
        hand.sn.stat("work")


def test_a_view_and_a_commit_keep_the_label(client: Client, hand: HandSnapshots) -> None:
    hand.prepare("work")
    hand.commit("done", "work")
    hand.view("look", "done")
    client.collect()
    assert LABEL_ROOT in hand.sn.stat("done").labels
    assert hand.sn.stat("look").kind == "view"


def test_label_sets_and_removes_labels(hand: HandSnapshots) -> None:
    hand.prepare("work")
    assert hand.label("work", {"team": "infra"})["team"] == "infra"
    assert "team" not in hand.label("work", {"team": ""})


def test_label_of_a_missing_snapshot_names_it(hand: HandSnapshots) -> None:
    with raises_naming(NotFound, "'nothing'"):
        hand.label("nothing", {"a": "b"})


def test_an_existing_key_is_refused(hand: HandSnapshots) -> None:
    hand.prepare("work")
    with raises_naming(AlreadyExists, "'work'"):
        hand.prepare("work")


def test_a_parent_that_is_not_committed_is_refused(hand: HandSnapshots) -> None:
    hand.prepare("work")
    with raises_naming(FailedPrecondition, "'work'"):
        hand.prepare("child", "work")


# --------------------------------------------------------------------------- mounts
def test_a_native_snapshot_mounts_as_a_bind_of_its_tree(client: Client) -> None:
    hand = client.snapshots_by_hand("native")
    snap = hand.prepare("work")
    assert hand.mounts("work") == [Mount("bind", str(hand.sn.fs_path(snap)), ("rw", "rbind"))]


def test_a_native_view_mounts_its_parent_read_only(client: Client) -> None:
    hand = client.snapshots_by_hand("native")
    hand.prepare("work")
    hand.commit("done", "work")
    hand.view("look", "done")
    assert hand.mounts("look") == [Mount("bind", str(hand.sn.fs_path(hand.sn.stat("done"))), ("ro", "rbind"))]


def test_an_overlay_snapshot_mounts_its_upper_on_its_parents(client: Client, tmp_path: Path) -> None:
    if not usable("overlayfs", tmp_path):
        pytest.skip("overlayfs needs root")
    top = unpacked_base(client, "overlayfs")
    hand = client.snapshots_by_hand("overlayfs")
    snap = hand.prepare("work", top)
    (m,) = hand.mounts("work")
    path = hand.sn.snapshot_path(snap)
    lower = hand.sn.fs_path(hand.sn.stat(top))
    assert (m.type, m.source) == ("overlay", "overlay")
    assert m.options == (f"workdir={path / 'work'}", f"upperdir={path / 'fs'}", f"lowerdir={lower}")
    assert m.command("/mnt/x") == f"mount -t overlay overlay /mnt/x -o {','.join(m.options)}"


def test_a_committed_snapshot_has_no_mounts(hand: HandSnapshots) -> None:
    hand.prepare("work")
    hand.commit("done", "work")
    with raises_naming(FailedPrecondition, "'done'"):
        hand.mounts("done")


# --------------------------------------------------------------------------- diff
def test_a_diff_is_stored_labelled_and_kept(client: Client, hand: HandSnapshots, snapshotter: str) -> None:
    top = unpacked_base(client, snapshotter)
    hand.prepare("work", top)
    (tree_of(hand, "work") / "new").write_bytes(b"new")
    layer = hand.diff("work")
    client.remove_images([BASE])  # collects
    info = client.content.info(layer.digest)
    assert info.labels[mediatypes.LABEL_UNCOMPRESSED] == layer.diff_id
    assert LABEL_ROOT in info.labels
    assert decompress(client.content.read_all(layer.digest)).startswith(b"new")


@pytest.mark.parametrize("media_type", [mediatypes.OCI_LAYER_ZSTD, mediatypes.OCI_LAYER])
def test_a_diff_takes_the_compression_its_media_type_says(client: Client, media_type: str) -> None:
    hand = client.snapshots_by_hand("native")
    hand.prepare("work")
    (tree_of(hand, "work") / "f").write_bytes(b"f")
    layer = hand.diff("work", media_type=media_type)
    data = client.content.read_all(layer.digest)
    assert data.startswith(b"\x28\xb5\x2f\xfd") == (media_type == mediatypes.OCI_LAYER_ZSTD)
    if media_type == mediatypes.OCI_LAYER:
        assert layer.digest == layer.diff_id
        assert mediatypes.LABEL_UNCOMPRESSED not in client.content.info(layer.digest).labels


def test_a_diff_against_a_second_snapshot_holds_what_differs_from_it(client: Client) -> None:
    hand = client.snapshots_by_hand("native")
    hand.prepare("a")
    (tree_of(hand, "a") / "only-a").write_bytes(b"a")
    hand.prepare("b")
    (tree_of(hand, "b") / "only-b").write_bytes(b"b")
    data = decompress(client.content.read_all(hand.diff("a", "b").digest))
    assert b"only-a" in data and b".wh.only-b" in data


def test_an_unknown_diff_media_type_names_the_valid_ones(client: Client) -> None:
    hand = client.snapshots_by_hand("native")
    hand.prepare("work")
    with raises_naming(InvalidArgument, "tar+bzip2", mediatypes.OCI_LAYER_GZIP):
        hand.diff("work", media_type="application/vnd.oci.image.layer.v1.tar+bzip2")
    assert client.content.list() == []


def test_the_diff_of_a_missing_snapshot_names_it(client: Client) -> None:
    with raises_naming(NotFound, "'nothing'"):
        client.snapshots_by_hand("native").diff("nothing")
