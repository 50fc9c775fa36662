"""Mounting committed snapshots: overlay (read-only or with a writable upper) or bind; and
describing the mounts of a snapshot a user prepared (``snapshots mounts``)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ctrpy.errors import FailedPrecondition, MountBusy, MountError, NotFound
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


@contextmanager
def _cwd(path: Path) -> Iterator[None]:
    """Run a mount from ``path``, so its options can name directories relatively."""
    before = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.chdir(path)
        yield
    finally:
        os.fchdir(before)
        os.close(before)


def mount_snapshot(sn: Snapshotter, top: str, target: Path, *, rw: bool) -> str:
    """Mount committed snapshot ``top`` on ``target``.

    Read-only: a *view* snapshot (a child of ``top``, so ``top`` cannot be removed under the
    mount) and an overlay of the layers, or a read-only bind of the native tree.  ``rw``: an
    *active* snapshot whose directory takes the writes; one kept by an earlier
    ``unmount`` without ``--rm`` is mounted again, as ctr does."""
    if not target.is_dir():
        raise NotFound(f"mount target {target} is not a directory")
    if is_mountpoint(target):
        raise FailedPrecondition(f"{target} is already a mount point")
    key = _key_for(target)
    labels = {LABEL_MOUNT_TARGET: str(target.resolve())}
    existing = sn.find(key)
    if existing is not None and existing.kind == "view":
        sn.remove(key)  # left by a read-only mount that was unmounted without ctrpy
        existing = None
    if existing is not None and rw and existing.parent != top:
        raise MountBusy(str(target), key)
    # a read-only mount next to a kept writable snapshot needs no view: that snapshot,
    # a child of some top, already keeps it from being removed
    snap = existing if existing is not None and rw else None
    if snap is None and (rw or existing is None):
        snap = sn.prepare(key, top, labels, kind="active" if rw else "view")
    created = existing is None
    try:
        if isinstance(sn, OverlaySnapshotter):
            lowers = ":".join(sn.relative_lowerdirs(top))
            with _cwd(sn.root / "snapshots"):
                if rw:
                    assert snap is not None
                    mount("overlay", str(target), "overlay", 0,
                          f"lowerdir={lowers},upperdir={snap.dir}/fs,workdir={snap.dir}/work")
                elif ":" in lowers:
                    mount("overlay", str(target), "overlay", MS_RDONLY, f"lowerdir={lowers}")
                else:  # overlayfs wants two lowers without an upper: bind the one instead
                    _bind_readonly(sn.fs_path(sn.stat(top)), target)
        elif rw:
            assert snap is not None
            mount(str(sn.fs_path(snap)), str(target), "", MS_BIND)
        else:
            _bind_readonly(sn.fs_path(sn.stat(top)), target)
    except MountError:
        if created:
            sn.remove(key)
        raise
    return str(target)


def _bind_readonly(src: Path, target: Path) -> None:
    mount(str(src), str(target), "", MS_BIND)
    try:
        mount("", str(target), "", MS_BIND | MS_REMOUNT | MS_RDONLY)
    except MountError:
        umount(str(target))
        raise


def unmount_snapshot(sn: Snapshotter | None, target: Path, *, remove: bool) -> None:
    """Unmount ``target``; its view snapshot goes, its writable one only with ``remove``."""
    if not is_mountpoint(target):
        raise FailedPrecondition(f"{target} is not a mount point")
    umount(str(target))
    if sn is None:
        return
    snap = sn.find(_key_for(target))
    if snap is not None and (snap.kind == "view" or remove):
        sn.remove(snap.key)


def mount_key(target: Path) -> str:
    return _key_for(target)


# --------------------------------------------------------------------------- describing mounts
@dataclass(frozen=True)
class Mount:
    """One mount of a snapshot, as containerd's snapshotters return them."""

    type: str
    source: str
    options: tuple[str, ...]

    def command(self, target: str) -> str:
        """The mount(8) command line ``ctr snapshots mounts`` prints for it."""
        return f"mount -t {self.type} {self.source} {target} -o {','.join(self.options)}"


def describe_mounts(sn: Snapshotter, key: str) -> list[Mount]:
    """How to mount active or view snapshot ``key`` (containerd's rules): a native snapshot
    is a bind of its tree (a view: of its parent's, read-only); an overlayfs one is an
    overlay of its upper directory on its parents, a bind when it has no parent (or, for a
    view, exactly one)."""
    snap = sn.stat(key)
    if snap.kind == "committed":
        raise FailedPrecondition(f"snapshot {key!r} is committed: prepare or view a snapshot on top of it")
    ro = "ro" if snap.kind == "view" else "rw"
    parents = [Path(p) for p in sn.lowerdirs(snap.parent)] if snap.parent else []
    if not isinstance(sn, OverlaySnapshotter):
        tree = sn.fs_path(snap) if snap.kind == "active" or not parents else parents[0]
        return [Mount("bind", str(tree), (ro, "rbind"))]
    if not parents:
        return [Mount("bind", str(sn.fs_path(snap)), (ro, "rbind"))]
    if snap.kind == "view" and len(parents) == 1:
        return [Mount("bind", str(parents[0]), (ro, "rbind"))]
    options: list[str] = []
    if snap.kind == "active":
        path = sn.snapshot_path(snap)
        options += [f"workdir={path / 'work'}", f"upperdir={path / 'fs'}"]
    options.append("lowerdir=" + ":".join(str(p) for p in parents))
    return [Mount("overlay", "overlay", tuple(options))]
