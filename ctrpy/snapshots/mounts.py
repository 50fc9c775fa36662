"""Mounting committed snapshots: overlay (read-only or with a writable upper) or bind."""

from __future__ import annotations

import os
from pathlib import Path

from ctrpy.errors import FailedPrecondition, MountError, NotFound
from ctrpy.snapshots.base import Snapshotter
from ctrpy.snapshots.overlay import MS_BIND, MS_RDONLY, MS_REMOUNT, OverlaySnapshotter, mount, umount

LABEL_MOUNT_TARGET = "ctrpy.io/mount-target"


def require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise MountError(f"{what} needs root (mount(2) is not permitted for this user)")


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def is_mountpoint(path: Path) -> bool:
    """True when ``path`` is a mount point (bind mounts of the same filesystem included)."""
    want = os.path.realpath(path)
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
            return any(_unescape(line.split()[4]) == want for line in f if len(line.split()) > 4)
    except OSError:
        return os.path.ismount(path)


def _key_for(target: Path) -> str:
    return "mount:" + str(target.resolve())


def mount_snapshot(sn: Snapshotter, top: str, target: Path, *, rw: bool) -> str:
    """Mount committed snapshot ``top`` on ``target``; with ``rw`` on a new active snapshot."""
    if not target.is_dir():
        raise NotFound(f"mount target {target} is not a directory")
    if is_mountpoint(target):
        raise FailedPrecondition(f"{target} is already a mount point")
    key = _key_for(target)
    if isinstance(sn, OverlaySnapshotter):
        dirs = sn.lowerdirs(top)
        lowers = ":".join(str(d) for d in dirs)
        if not rw:
            if len(dirs) == 1:  # overlayfs wants two lowers without an upper: bind instead
                _bind_readonly(dirs[0], target)
            else:
                mount("overlay", str(target), "overlay", MS_RDONLY, f"lowerdir={lowers}")
            return str(target)
        active = sn.prepare(key, top, {LABEL_MOUNT_TARGET: str(target.resolve())})
        path = sn.snapshot_path(active)
        try:
            mount("overlay", str(target), "overlay", 0,
                  f"lowerdir={lowers},upperdir={path / 'fs'},workdir={path / 'work'}")
        except MountError:
            sn.remove(key)
            raise
        return str(target)
    # native: bind the committed tree read-only, or a writable copy
    if rw:
        active = sn.prepare(key, top, {LABEL_MOUNT_TARGET: str(target.resolve())})
        src = sn.fs_path(active)
        try:
            mount(str(src), str(target), "", MS_BIND)
        except MountError:
            sn.remove(key)
            raise
        return str(target)
    _bind_readonly(sn.fs_path(sn.stat(top)), target)
    return str(target)


def _bind_readonly(src: Path, target: Path) -> None:
    mount(str(src), str(target), "", MS_BIND)
    try:
        mount("", str(target), "", MS_BIND | MS_REMOUNT | MS_RDONLY)
    except MountError:
        umount(str(target))
        raise


def unmount_snapshot(sn: Snapshotter, target: Path, *, remove: bool) -> None:
    if not is_mountpoint(target):
        raise FailedPrecondition(f"{target} is not a mount point")
    umount(str(target))
    if remove:
        key = _key_for(target)
        try:
            sn.remove(key)
        except NotFound:
            pass
