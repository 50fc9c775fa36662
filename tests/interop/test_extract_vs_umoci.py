"""ctrpy's root filesystems against the reference unpackers: umoci and containerd.

ONE image (``tests.treecmp.feature_layers``) holds whiteouts, an opaque directory refilled,
hardlinks (with their target's mode and mtime: containerd applies a hardlink header's
metadata to the shared inode, umoci does not), absolute and relative symlinks, setuid and
setgid files, char and block devices, a fifo, a >100-byte path, non-ASCII names, user
xattrs, distinct owners and mtimes, and a file replaced in the upper layer while a lower
hardlink still shares it. It is written as an OCI layout directory for ``umoci unpack`` and
as an archive for ``ctrpy images import --no-unpack`` + ``ctrpy images extract``; the trees
must agree in names, types, modes, owners, contents, symlink targets, hardlink groups,
device numbers, user xattrs and file mtimes (``tests.treecmp.tree``). Owners and devices
need root: every test here skips without it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from ctrpy.client import Client
from ctrpy.oci import Platform
from tests.builders import (
    ANNOTATION_IMAGE_NAME,
    ANNOTATION_REF_NAME,
    BuiltImage,
    Image,
    LayerSpec,
    OCILayout,
    chain_ids,
)
from tests.helpers import Runner
from tests.peers import Ctr, Ctrpy, run
from tests.treecmp import diff, dir_mtimes, feature_layers, tree

pytestmark = pytest.mark.interop

NAME = "docker.io/library/features:v1"
TAG = "v1"

# Directories an upper layer writes into without an entry for the directory itself (etc:
# etc/hosts replaced, etc/hosts-link added; usr/bin: usr/bin/su replaced). umoci puts the
# directory's mtime back to what it was after every entry it writes there; ctrpy, like
# containerd, keeps the time the kernel gave the directory when the entry was written. Only
# these directories' mtimes differ; whiteouts (var, after var/cache went) change no time in
# either tool.
TOUCHED_WITHOUT_A_DIRECTORY_ENTRY = {"etc", "usr/bin"}


@pytest.fixture(autouse=True)
def _root_only() -> None:
    if os.geteuid() != 0:
        pytest.skip("owners, setuid bits and device nodes can only be compared as root")


def feature_image(*, replace_hardlinked_file: bool = True) -> BuiltImage:
    host = Platform.host()
    layers: list[LayerSpec] = [*feature_layers(replace_hardlinked_file=replace_hardlinked_file)]
    return Image(
        layers,
        architecture=host.architecture,
        variant=host.variant or None,
    ).build()


def write_image(tmp_path: Path, img: BuiltImage) -> tuple[Path, Path]:
    """(OCI layout dir for umoci, oci-archive for ctrpy and ctr) of ``img``."""
    layout = OCILayout()
    layout.add_manifest(img, {ANNOTATION_REF_NAME: TAG, ANNOTATION_IMAGE_NAME: NAME})
    archive = tmp_path / "features.tar"
    layout.write_tar(archive)
    return layout.write_dir(tmp_path / "layout"), archive


def umoci_rootfs(umoci: Runner, layout: Path, bundle: Path) -> Path:
    umoci("unpack", "--image", f"{layout}:{TAG}", bundle)
    return bundle / "rootfs"


def ctrpy_extract(ctrpy: Ctrpy, archive: Path, dest: Path) -> Path:
    ctrpy("images", "import", "--no-unpack", archive)
    ctrpy("images", "extract", NAME, dest)
    return dest


# --------------------------------------------------------------------------- umoci
def test_extract_gives_the_tree_umoci_unpack_gives(umoci: Runner, ctrpy: Ctrpy, tmp_path: Path) -> None:
    layout, archive = write_image(tmp_path, feature_image())
    theirs = tree(umoci_rootfs(umoci, layout, tmp_path / "bundle"))
    ours = tree(ctrpy_extract(ctrpy, archive, tmp_path / "extracted"))
    assert ours == theirs, diff(ours, theirs, ("ctrpy", "umoci"))


def test_the_comparison_covers_every_kind_of_entry(ctrpy: Ctrpy, tmp_path: Path) -> None:
    """Guards the test above: the tree really holds what the image is meant to exercise."""
    _layout, archive = write_image(tmp_path, feature_image())
    t = tree(ctrpy_extract(ctrpy, archive, tmp_path / "extracted"))
    assert {n.type for n in t.values()} == {"file", "dir", "symlink", "char", "block", "fifo"}
    assert "etc/remove-me" not in t and "var/cache" not in t
    assert sorted(p for p in t if p.startswith("opt/app/")) == ["opt/app/new"]
    assert t["etc/hosts-link"].hardlink == "etc/hosts"
    assert t["usr/bin/su"].hardlink is None and t["usr/bin/su-link"].sha256 != t["usr/bin/su"].sha256
    assert t["usr/bin/su"].mode == 0o4755 and t["usr/bin/tool"].mode == 0o2755 and t["tmp"].mode == 0o1777
    assert (t["home/user"].uid, t["home/user"].gid) == (1000, 1000)
    assert t["dev/loop0"].device == (7, 0)
    assert dict(t["etc/xattrs"].xattrs)["user.binary"] == b"\x00\xff\x01"
    assert any(len(p.encode()) > 100 for p in t) and "usr/share/naïve/日本語.txt" in t
    assert len({n.mtime for n in t.values() if n.type == "file"}) > 3


def test_extract_gives_umocis_directory_mtimes_except_where_umoci_restores_them(
    umoci: Runner, ctrpy: Ctrpy, tmp_path: Path
) -> None:
    layout, archive = write_image(tmp_path, feature_image())
    theirs = dir_mtimes(umoci_rootfs(umoci, layout, tmp_path / "bundle"))
    ours = dir_mtimes(ctrpy_extract(ctrpy, archive, tmp_path / "extracted"))
    assert sorted(ours) == sorted(theirs)
    differing = {d for d in ours if ours[d] != theirs[d]}
    assert differing <= TOUCHED_WITHOUT_A_DIRECTORY_ENTRY, {d: (ours[d], theirs[d]) for d in differing}
    # umoci kept the lower layer's header times for those directories
    assert (theirs["etc"], theirs["usr/bin"]) == (1_500_000_000, 1_500_000_002)


def test_flatten_extracted_by_gnu_tar_gives_the_tree_umoci_unpack_gives(
    umoci: Runner, ctrpy: Ctrpy, tmp_path: Path, require_peer: Callable[..., None]
) -> None:
    require_peer("tar")
    # flatten cannot keep a lower hardlink whose target an upper layer replaced (a known
    # limit, pinned in tests/cli/test_unpack_cli.py): compare the image without that case
    layout, archive = write_image(tmp_path, feature_image(replace_hardlinked_file=False))
    theirs = tree(umoci_rootfs(umoci, layout, tmp_path / "bundle"))
    ctrpy("images", "import", "--no-unpack", archive)
    ctrpy("images", "flatten", NAME, tmp_path / "flat.tar")
    dest = tmp_path / "untarred"
    dest.mkdir()
    run(
        "tar",
        "--xattrs",
        "--xattrs-include=user.*",
        "--numeric-owner",
        "-xpf",
        tmp_path / "flat.tar",
        "-C",
        dest,
    )
    ours = tree(dest)
    # directory mtimes are not compared (tree() leaves them out): the flattened tar lists the
    # top layer first, so a directory's entry can precede entries written into it later
    assert ours == theirs, diff(ours, theirs, ("flatten+tar", "umoci"))


# --------------------------------------------------------------------------- containerd
def containerd_native_top(ctr: Ctr, archive: Path) -> Path:
    """Import into the private containerd with the native snapshotter; the top layer's tree.

    The native snapshotter names snapshot directories by increasing numeric ids: the new
    directory with the highest id holds the image's top layer.
    """
    snapshots = ctr.daemon.root / "io.containerd.snapshotter.v1.native" / "snapshots"
    before = set(os.listdir(snapshots)) if snapshots.is_dir() else set()
    ctr("images", "import", "--snapshotter", "native", archive)
    new = set(os.listdir(snapshots)) - before
    assert new, "containerd created no snapshot"
    return snapshots / max(new, key=int)


def test_a_native_snapshot_matches_containerds_native_snapshot(ctr: Ctr, tmp_path: Path) -> None:
    img = feature_image()
    _layout, archive = write_image(tmp_path, img)
    theirs = tree(containerd_native_top(ctr, archive))
    Ctrpy(tmp_path / "root")("images", "import", "--snapshotter", "native", archive)
    client = Client(tmp_path / "root")
    try:
        sn = client.snapshotter("native")
        ours = tree(sn.fs_path(sn.stat(chain_ids(img.diff_ids)[-1])))
    finally:
        client.close()
    # directory mtimes are not compared (tree() leaves them out): containerd's native
    # snapshots give every directory the time of the copy
    assert ours == theirs, diff(ours, theirs, ("ctrpy", "containerd"))


def test_extract_matches_containerds_native_snapshot(ctr: Ctr, ctrpy: Ctrpy, tmp_path: Path) -> None:
    _layout, archive = write_image(tmp_path, feature_image())
    theirs = tree(containerd_native_top(ctr, archive))
    ours = tree(ctrpy_extract(ctrpy, archive, tmp_path / "extracted"))
    assert ours == theirs, diff(ours, theirs, ("ctrpy", "containerd"))
