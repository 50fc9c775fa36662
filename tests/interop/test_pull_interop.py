"""ctrpy pulls what skopeo pushed to a real registry (CNCF distribution): the same digests,
the tree umoci unpacks from the source, and for a multi-arch index only this platform's
blobs leave the registry."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ctrpy.oci import Platform
from tests.builders import ANNOTATION_REF_NAME, Image, LayerSpec, OCILayout, file, index_of
from tests.helpers import HOST, Runner, host_image
from tests.peers import Ctrpy
from tests.registry.distribution import DistributionRegistry
from tests.registry.faults import FaultProxy
from tests.registry.fixtures import require
from tests.registry.images import skopeo_push
from tests.treecmp import diff, feature_layers, tree

pytestmark = pytest.mark.interop


@pytest.fixture
def registry(plain_registry: DistributionRegistry) -> DistributionRegistry:
    """The session's plain registry; these tests push to it with skopeo."""
    require("skopeo")
    return plain_registry


def test_the_pulled_image_has_the_digests_skopeo_reports(registry: DistributionRegistry, ctrpy: Ctrpy,
                                                          skopeo: Runner, tmp_path: Path) -> None:
    pushed = skopeo_push(registry, host_image([file("etc/motd", b"hello\n")]), "interop/digests", "v1", tmp_path)
    ctrpy("images", "pull", "-q", pushed.ref)
    raw = skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{pushed.ref}").stdout
    (item,) = json.loads(ctrpy("images", "ls", "--json").stdout)["items"]
    assert item["target"]["digest"] == pushed.digest
    ours = ctrpy("content", "get", pushed.digest).stdout
    assert (ours if isinstance(ours, str) else ours.decode()) == (raw if isinstance(raw, str) else raw.decode())


def test_the_pulled_tree_is_the_one_umoci_unpacks_from_the_source(registry: DistributionRegistry, ctrpy: Ctrpy,
                                                                  umoci: Runner, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("owners, setuid bits and device nodes can only be compared as root")
    host = Platform.host()
    layers: list[LayerSpec] = [*feature_layers()]
    img = Image(layers, architecture=host.architecture, variant=host.variant or None).build()
    layout = OCILayout()
    layout.add_manifest(img, {ANNOTATION_REF_NAME: "v1"})
    layout.write_dir(tmp_path / "layout")
    umoci("unpack", "--image", f"{tmp_path / 'layout'}:v1", tmp_path / "bundle")
    pushed = skopeo_push(registry, img, "interop/features", "v1", tmp_path / "push")
    ctrpy("images", "pull", "-q", pushed.ref)
    ctrpy("images", "extract", pushed.ref, tmp_path / "pulled")
    ours, theirs = tree(tmp_path / "pulled"), tree(tmp_path / "bundle" / "rootfs")
    assert ours == theirs, diff(ours, theirs, ("ctrpy pull", "umoci"))


def test_a_multi_arch_index_pulled_for_this_platform_fetches_only_its_blobs(
    registry: DistributionRegistry, fault_proxy: FaultProxy, ctrpy: Ctrpy, tmp_path: Path
) -> None:
    other = "arm64" if HOST.architecture != "arm64" else "amd64"
    mine = host_image([file("arch", HOST.architecture.encode())])
    theirs = host_image([file("arch", other.encode() * 100)], architecture=other, variant=None)
    pushed = skopeo_push(registry, index_of([mine, theirs]), "interop/multi", "v1", tmp_path)
    ref = f"{fault_proxy.host}/{pushed.repo}:{pushed.tag}"
    ctrpy("images", "pull", "-q", ref)
    fetched = {r.path.rsplit("/", 1)[-1] for r in fault_proxy.requests if r.method == "GET"}
    want, skip = pushed.images
    assert {b.digest for b in [want.manifest, want.config, *want.layers]} <= fetched
    assert not {b.digest for b in [skip.manifest, skip.config, *skip.layers]} & fetched
    assert ctrpy("images", "extract", ref, tmp_path / "x").returncode == 0
    assert (tmp_path / "x" / "arch").read_bytes() == HOST.architecture.encode()
