"""``images mount`` / ``unmount`` against ctr 1.6's contract (ctrpy/snapshots/mounts.py).

ctr mounts read-only through a View snapshot keyed by the target (a child of the image's top
snapshot, so ``snapshots rm`` of the top is refused while it is mounted), and both ``mount``
and ``mount --rw`` reuse an existing snapshot for the target (``AlreadyExists`` ->
``Mounts``), so ``mount --rw``, ``unmount`` (no ``--rm``), ``mount --rw`` brings the writable
layer back.  The overlay options are kept under the kernel's one-page limit by containerd
(relative lowerdirs after a chdir); ctr mounts a 70-layer image that ctrpy cannot.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ctrpy.snapshots.mounts import is_mountpoint
from tests.builders import chain_ids, file
from tests.review2._helpers import Run, docker_archive, host_image, mount_target, need_root

APP = "docker.io/library/app:v1"


def _import(run: Run, snapshotter: str, layers: list[list]) -> list[str]:
    img = host_image(layers)
    built = img.build()
    run.ok("images", "import", "--snapshotter", snapshotter, "-", input=docker_archive((built, ["app:v1"])))
    return chain_ids(built.diff_ids)


def test_snapshots_rm_of_a_mounted_images_top_snapshot_is_refused(run: Run, tmp_path: Path, snapshotter: str) -> None:
    need_root()
    cids = _import(run, snapshotter, [[file("etc/base", b"base")], [file("app/bin", b"app")]])
    with mount_target(tmp_path) as target:
        run.ok("images", "mount", "--snapshotter", snapshotter, APP, str(target))
        r = run("snapshots", "--snapshotter", snapshotter, "rm", cids[-1])
        still_there = (target / "app" / "bin").exists()
        run("images", "unmount", "--snapshotter", snapshotter, str(target))
    assert still_there, "the mounted tree was deleted under the mount"
    assert r.exit_code == 1, "removing the snapshot a live mount uses should be refused, as ctr does"


def test_mount_rw_again_after_unmount_without_rm_brings_the_writes_back(
    run: Run, tmp_path: Path, snapshotter: str
) -> None:
    need_root()
    _import(run, snapshotter, [[file("etc/base", b"base")]])
    with mount_target(tmp_path) as target:
        run.ok("images", "mount", "--rw", "--snapshotter", snapshotter, APP, str(target))
        (target / "written").write_bytes(b"kept")
        run.ok("images", "unmount", "--snapshotter", snapshotter, str(target))
        r = run("images", "mount", "--rw", "--snapshotter", snapshotter, APP, str(target))
        written = (target / "written").read_bytes() if (target / "written").exists() else None
        if is_mountpoint(target):
            run("images", "unmount", "--rm", "--snapshotter", snapshotter, str(target))
    assert r.exit_code == 0, r.stderr
    assert written == b"kept"


def test_a_70_layer_image_mounts_as_it_does_with_ctr(run: Run, tmp_path: Path) -> None:
    need_root()
    from tests.review2._helpers import usable

    if not usable("overlayfs", tmp_path):
        pytest.skip("overlayfs not usable")
    _import(run, "overlayfs", [[file(f"l/{i}", str(i).encode())] for i in range(70)])
    with mount_target(tmp_path) as target:
        r = run("images", "mount", "--snapshotter", "overlayfs", APP, str(target))
        count = len(list((target / "l").iterdir())) if (target / "l").is_dir() else 0
        if is_mountpoint(target):
            run("images", "unmount", "--snapshotter", "overlayfs", str(target))
    assert r.exit_code == 0, r.stderr
    assert count == 70


def test_unmount_rm_removes_the_writable_snapshot_of_a_native_mount(run: Run, tmp_path: Path) -> None:
    need_root()
    from tests.review2._helpers import usable

    if not usable("overlayfs", tmp_path):
        pytest.skip("the default snapshotter is native here: nothing to mix up")
    _import(run, "native", [[file("etc/base", b"base")]])
    with mount_target(tmp_path) as target:
        run.ok("images", "mount", "--rw", "--snapshotter", "native", APP, str(target))
        r = run("images", "unmount", "--rm", str(target))
    keys = run.ok("snapshots", "--snapshotter", "native", "ls", "-q").stdout.split()
    # either the snapshot is gone, or the command said it could not remove it
    assert f"mount:{target.resolve()}" not in keys or r.exit_code != 0
