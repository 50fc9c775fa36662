"""``ctrpy images mount`` / ``unmount`` (root only; every test unmounts what it mounted).

ctr mounts read-only through a *view* snapshot keyed by the target (a child of the image's
top snapshot, so ``snapshots rm`` of the top is refused while it is mounted), and both
``mount`` and ``mount --rw`` reuse an existing snapshot for the target, so ``mount --rw``,
``unmount`` (no ``--rm``), ``mount --rw`` brings the writable layer back."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from ctrpy.snapshots.mounts import is_mountpoint
from tests.builders import chain_ids, file
from tests.helpers import (
    APP,
    APP_LAYER,
    BASE_LAYER,
    Cli,
    app_image,
    docker_archive,
    host_image,
    mount_target,
    need_root,
    parse_table,
    usable,
)


@pytest.mark.parametrize("layers", [1, 2], ids=["one-layer", "two-layers"])
def test_mount_is_read_only_with_the_images_files_readable(
    run: Cli, tmp_path: Path, snapshotter: str, layers: int
) -> None:
    need_root()
    img = host_image(*[BASE_LAYER, APP_LAYER][:layers]).build()
    run.imported(img, APP, "--no-unpack")
    with mount_target(tmp_path) as target:
        out = run.ok("images", "mount", "--snapshotter", snapshotter, APP, str(target))
        assert out.stdout.strip() == str(target)
        assert (target / "etc" / "base").read_bytes() == b"base\n"
        assert (target / "etc" / "remove-me").exists() is (layers == 1)
        with pytest.raises(OSError) as err:
            (target / "new-file").write_bytes(b"x")
        assert err.value.errno == errno.EROFS
        with pytest.raises(OSError) as err:
            (target / "etc" / "base").write_bytes(b"changed")
        assert err.value.errno == errno.EROFS
        assert run.ok("images", "unmount", "--snapshotter", snapshotter, str(target)).stdout.strip() == str(
            target
        )
        assert not is_mountpoint(target)
        assert list(target.iterdir()) == []


def test_mount_unpacks_the_image_first(run: Cli, tmp_path: Path, snapshotter: str) -> None:
    need_root()
    img = run.imported(app_image(), APP, "--no-unpack")
    with mount_target(tmp_path) as target:
        run.ok("images", "mount", "--snapshotter", snapshotter, APP, str(target))
        view = f"mount:{target.resolve()}"  # the read-only mount's view snapshot
        assert sorted(run.snapshot_keys(snapshotter)) == sorted([*chain_ids(img.diff_ids), view])
        run.ok("images", "unmount", "--snapshotter", snapshotter, str(target))
        assert sorted(run.snapshot_keys(snapshotter)) == sorted(chain_ids(img.diff_ids))


def test_a_rw_mount_writes_into_an_active_snapshot_that_unmount_rm_removes(
    run: Cli, tmp_path: Path, snapshotter: str
) -> None:
    need_root()
    img = run.imported(app_image(), APP, "--snapshotter", snapshotter)
    top = chain_ids(img.diff_ids)[-1]
    with mount_target(tmp_path) as target:
        run.ok("images", "mount", "--rw", "--snapshotter", snapshotter, APP, str(target))
        (target / "written").write_bytes(b"by the test")
        (target / "etc" / "base").write_bytes(b"changed\n")
        rows = parse_table(run.ok("snapshots", "--snapshotter", snapshotter, "ls").stdout)
        active = [r for r in rows if r["KIND"] == "Active"]
        assert [(r["KEY"], r["PARENT"]) for r in active] == [(f"mount:{target.resolve()}", top)]
        run.ok("images", "unmount", "--snapshotter", snapshotter, str(target))
        assert [
            r["KEY"]
            for r in parse_table(run.ok("snapshots", "--snapshotter", snapshotter, "ls").stdout)
            if r["KIND"] == "Active"
        ] == [f"mount:{target.resolve()}"]
        # the committed image is untouched: a read-only mount shows the original
        run.ok("images", "mount", "--snapshotter", snapshotter, APP, str(target))
        assert not (target / "written").exists()
        assert (target / "etc" / "base").read_bytes() == b"base\n"
        run.ok("images", "unmount", "--snapshotter", snapshotter, str(target))


def test_unmount_rm_removes_the_writable_snapshot(run: Cli, tmp_path: Path, snapshotter: str) -> None:
    need_root()
    img = run.imported(app_image(), APP, "--snapshotter", snapshotter)
    with mount_target(tmp_path) as target:
        run.ok("images", "mount", "--rw", "--snapshotter", snapshotter, APP, str(target))
        (target / "written").write_bytes(b"x")
        run.ok("images", "unmount", "--rm", "--snapshotter", snapshotter, str(target))
        assert not is_mountpoint(target)
    assert sorted(run.snapshot_keys(snapshotter)) == sorted(chain_ids(img.diff_ids))


def test_mounting_on_a_mount_point_is_an_error(run: Cli, tmp_path: Path, snapshotter: str) -> None:
    need_root()
    run.imported(app_image(), APP, "--snapshotter", snapshotter)
    with mount_target(tmp_path) as target:
        run.ok("images", "mount", "--snapshotter", snapshotter, APP, str(target))
        run.fails(
            "images",
            "mount",
            "--snapshotter",
            snapshotter,
            APP,
            str(target),
            match=f"{target} is already a mount point",
        )
        run.ok("images", "unmount", "--snapshotter", snapshotter, str(target))
        assert not is_mountpoint(target)


def test_mounting_rw_twice_is_an_error_and_leaves_one_active_snapshot(
    run: Cli, tmp_path: Path, snapshotter: str
) -> None:
    need_root()
    run.imported(app_image(), APP, "--snapshotter", snapshotter)
    with mount_target(tmp_path) as target:
        run.ok("images", "mount", "--rw", "--snapshotter", snapshotter, APP, str(target))
        run.fails(
            "images",
            "mount",
            "--rw",
            "--snapshotter",
            snapshotter,
            APP,
            str(target),
            match="already a mount point",
        )
        rows = parse_table(run.ok("snapshots", "--snapshotter", snapshotter, "ls").stdout)
        assert len([r for r in rows if r["KIND"] == "Active"]) == 1
        run.ok("images", "unmount", "--rm", "--snapshotter", snapshotter, str(target))


def test_unmount_of_a_directory_that_is_not_mounted_is_an_error(run: Cli, tmp_path: Path) -> None:
    need_root()
    (tmp_path / "plain").mkdir()
    run.fails("images", "unmount", str(tmp_path / "plain"), match="is not a mount point")


def test_mount_on_a_missing_directory_is_an_error(run: Cli, tmp_path: Path) -> None:
    need_root()
    run.imported(app_image(), APP, "--snapshotter", "native")
    run.fails(
        "images",
        "mount",
        "--snapshotter",
        "native",
        APP,
        str(tmp_path / "nowhere"),
        match="is not a directory",
    )


def test_mount_as_a_non_root_user_is_a_clear_error(
    run: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run.imported(app_image(), APP, "--no-unpack")
    (tmp_path / "mnt").mkdir()
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    run.fails("images", "mount", APP, str(tmp_path / "mnt"), match="mounting needs root")
    run.fails("images", "unmount", str(tmp_path / "mnt"), match="unmounting needs root")


def test_snapshots_rm_of_a_mounted_images_top_snapshot_is_refused(run: Cli, tmp_path: Path, snapshotter: str) -> None:
    need_root()
    img = host_image([file("etc/base", b"base")], [file("app/bin", b"app")]).build()
    run.ok("images", "import", "--snapshotter", snapshotter, "-", input=docker_archive((img, ["app:v1"])))
    top = chain_ids(img.diff_ids)[-1]
    with mount_target(tmp_path) as target:
        run.ok("images", "mount", "--snapshotter", snapshotter, APP, str(target))
        run.fails("snapshots", "--snapshotter", snapshotter, "rm", top, match=(top, f"mount:{target.resolve()}"))
        assert (target / "app" / "bin").read_bytes() == b"app", "the mounted tree was deleted under the mount"
        assert top in run.snapshot_keys(snapshotter)
        run.ok("images", "unmount", "--snapshotter", snapshotter, str(target))


def test_mount_rw_again_after_unmount_without_rm_brings_the_writes_back(
    run: Cli, tmp_path: Path, snapshotter: str
) -> None:
    need_root()
    img = host_image([file("etc/base", b"base")]).build()
    run.ok("images", "import", "--snapshotter", snapshotter, "-", input=docker_archive((img, ["app:v1"])))
    with mount_target(tmp_path) as target:
        run.ok("images", "mount", "--rw", "--snapshotter", snapshotter, APP, str(target))
        (target / "written").write_bytes(b"kept")
        run.ok("images", "unmount", "--snapshotter", snapshotter, str(target))
        assert not (target / "written").exists()
        run.ok("images", "mount", "--rw", "--snapshotter", snapshotter, APP, str(target))
        assert (target / "written").read_bytes() == b"kept"
        run.ok("images", "unmount", "--rm", "--snapshotter", snapshotter, str(target))


def test_a_70_layer_image_mounts_as_it_does_with_ctr(run: Cli, tmp_path: Path) -> None:
    """containerd keeps the overlay options under the kernel's one-page limit (relative
    lowerdirs after a chdir), so ctr mounts a 70-layer image; so does ctrpy."""
    need_root()
    if not usable("overlayfs", tmp_path):
        pytest.skip("overlayfs not usable")
    img = host_image(*[[file(f"l/{i}", str(i).encode())] for i in range(70)]).build()
    run.ok("images", "import", "--snapshotter", "overlayfs", "-", input=docker_archive((img, ["app:v1"])))
    with mount_target(tmp_path) as target:
        run.ok("images", "mount", "--snapshotter", "overlayfs", APP, str(target))
        assert sorted(p.name for p in (target / "l").iterdir()) == sorted(str(i) for i in range(70))
        run.ok("images", "unmount", "--snapshotter", "overlayfs", str(target))
        assert not is_mountpoint(target)


def test_unmount_without_snapshotter_finds_a_native_mount_and_rm_removes_its_writable_snapshot(
    run: Cli, tmp_path: Path
) -> None:
    """Where the default snapshotter is overlayfs, ``unmount`` (no --snapshotter) of a native
    --rw mount must find the native snapshot: kept without --rm, removed with it."""
    need_root()
    if not usable("overlayfs", tmp_path):
        pytest.skip("the default snapshotter is native here: nothing to mix up")
    img = run.imported(app_image(), APP, "--snapshotter", "native")
    with mount_target(tmp_path) as target:
        key = f"mount:{target.resolve()}"
        run.ok("images", "mount", "--rw", "--snapshotter", "native", APP, str(target))
        (target / "written").write_bytes(b"x")
        run.ok("images", "unmount", str(target))
        assert not is_mountpoint(target)
        assert key in run.snapshot_keys("native"), "unmount without --rm keeps the writable snapshot"
        run.ok("images", "mount", "--rw", "--snapshotter", "native", APP, str(target))
        assert (target / "written").read_bytes() == b"x"
        run.ok("images", "unmount", "--rm", str(target))
        assert not is_mountpoint(target)
    assert sorted(run.snapshot_keys("native")) == sorted(chain_ids(img.diff_ids))


@pytest.mark.parametrize("rw", [False, True], ids=["read-only", "writable"])
def test_a_relative_target_is_mounted_where_the_user_is(
    run: Cli, tmp_path: Path, snapshotter: str, rw: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The overlay mount is made from the snapshots directory (its options name layers
    relatively): a relative TARGET must still mean the user's directory."""
    need_root()
    run.imported(app_image(), APP, "--no-unpack")
    with mount_target(tmp_path) as target:
        monkeypatch.chdir(target.parent)
        flags = ["--rw"] if rw else []
        run.ok("images", "mount", *flags, "--snapshotter", snapshotter, APP, target.name)
        assert is_mountpoint(target)
        assert (target / "app" / "bin").read_bytes() == b"app\n"
        run.ok("images", "unmount", "--rm", "--snapshotter", snapshotter, target.name)
        assert not is_mountpoint(target)
