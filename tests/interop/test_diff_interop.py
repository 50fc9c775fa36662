"""A layer made with ``ctrpy snapshots diff``, in an image built by hand, applied by a private
containerd: its tree is the tree containerd makes of the image the changes came from.

The changes are those of ``tests.treecmp.feature_layers``' upper layer (whiteouts, an opaque
directory refilled, a replaced file a lower hardlink shares, a new hardlink), applied by
ctrpy into a snapshot prepared on the lower layer; containerd unpacks both the original two
layers and the base layer plus the diff, with its native snapshotter."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

from ctrpy.archive import ApplyOptions, apply_layer
from ctrpy.client import Client
from ctrpy.formats import ImportOptions
from ctrpy.oci import Platform, mediatypes
from tests.builders import ANNOTATION_IMAGE_NAME, BuiltImage, Image, OCILayout, chain_ids, layer_tar
from tests.helpers import usable
from tests.interop.test_extract_vs_umoci import containerd_native_top
from tests.peers import Ctr
from tests.treecmp import diff, feature_layers, tree

pytestmark = pytest.mark.interop

BASE = "docker.io/library/base:v1"
HAND = "docker.io/library/hand:v1"


@pytest.fixture(autouse=True)
def _root_only() -> None:
    if os.geteuid() != 0:
        pytest.skip("owners and device nodes can only be compared as root")


def image(*layers: list[object]) -> BuiltImage:
    host = Platform.host()
    return Image(list(layers), architecture=host.architecture, variant=host.variant or None).build()  # type: ignore[arg-type]


def archive(path: Path, img: BuiltImage, name: str) -> Path:
    layout = OCILayout()
    layout.add_manifest(img, {ANNOTATION_IMAGE_NAME: name})
    layout.write_tar(path)
    return path


def ingest(client: Client, doc: dict[str, object]) -> tuple[str, int]:
    data = json.dumps(doc).encode()
    return client.ingest(io.BytesIO(data)).digest, len(data)


def hand_made(client: Client, snapshotter: str, base: BuiltImage, upper_layer: list[object], out: Path) -> Path:
    """Prepare on the base image's snapshot, apply ``upper_layer`` into it, diff, and export the
    base plus that layer as an image (config and manifest written and ingested by hand)."""
    hand = client.snapshots_by_hand(snapshotter)
    snap = hand.prepare("work", chain_ids(base.diff_ids)[-1])
    whiteouts = "overlay" if snapshotter == "overlayfs" else "delete"
    apply_layer(hand.sn.fs_path(snap), io.BytesIO(layer_tar(upper_layer)), ApplyOptions(whiteouts=whiteouts))  # type: ignore[arg-type]
    layer = hand.diff("work")
    config = json.loads(base.config.data)
    config["rootfs"]["diff_ids"].append(layer.diff_id)
    config_digest, config_size = ingest(client, config)
    manifest = json.loads(base.manifest.data)
    manifest["config"].update(digest=config_digest, size=config_size)
    manifest["layers"].append({"mediaType": mediatypes.OCI_LAYER_GZIP, "digest": layer.digest, "size": layer.size})
    manifest_digest, _ = ingest(client, manifest)
    client.export(client.export_targets([HAND], manifest_digest, mediatypes.OCI_MANIFEST), out)
    return out


@pytest.mark.parametrize("snapshotter", ["native", "overlayfs"])
def test_containerd_applies_a_layer_made_by_diff_to_the_tree_it_came_from(
    ctr: Ctr, tmp_path: Path, snapshotter: str
) -> None:
    if not usable(snapshotter, tmp_path):
        pytest.skip("overlayfs cannot be used here")
    lower_layer, upper_layer = feature_layers()
    original = image(lower_layer, upper_layer)
    want = tree(containerd_native_top(ctr, archive(tmp_path / "original.tar", original, "docker.io/library/orig:v1")))

    base = image(lower_layer)
    client = Client(tmp_path / "root")
    try:
        client.import_archive(io.BytesIO((archive(tmp_path / "base.tar", base, BASE)).read_bytes()), "oci.v1",
                              ImportOptions(), unpack=True, snapshotter=snapshotter)
        made = hand_made(client, snapshotter, base, upper_layer, tmp_path / "hand.tar")
    finally:
        client.close()
    got = tree(containerd_native_top(ctr, made))
    assert got == want, diff(want, got, ("containerd, original", "containerd, hand-made"))
