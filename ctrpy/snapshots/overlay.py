"""``overlayfs``: one directory per layer, stacked by the kernel's overlay filesystem.

A layer is applied straight into its snapshot's empty ``fs`` (the upper directory), with
whiteouts written the overlay way: ``.wh.X`` becomes a 0:0 character device ``X`` and an
opaque directory gets ``trusted.overlay.opaque=y``.  Needs root (mknod, trusted xattrs).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import tempfile
from pathlib import Path
from typing import ClassVar, Literal

from ctrpy.errors import MountError
from ctrpy.snapshots.base import Snapshot, Snapshotter

_libc: ctypes.CDLL | None = None


def _c() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    return _libc


def mount(source: str, target: str, fstype: str, flags: int = 0, data: str = "") -> None:
    if _c().mount(source.encode(), target.encode(), fstype.encode(), flags, data.encode() or None) != 0:
        err = ctypes.get_errno()
        raise MountError(f"cannot mount {fstype} on {target}: {os.strerror(err)}")


def umount(target: str, detach: bool = False) -> None:
    if _c().umount2(target.encode(), 2 if detach else 0) != 0:
        err = ctypes.get_errno()
        raise MountError(f"cannot unmount {target}: {os.strerror(err)}")


MS_RDONLY = 1
MS_REMOUNT = 32
MS_BIND = 4096

_supported: dict[str, bool] = {}


def overlay_supported(base: Path) -> bool:
    """Can we mount overlayfs here?  (containerd asks the same by trying it.)"""
    key = str(base)
    if key in _supported:
        return _supported[key]
    ok = False
    if os.geteuid() == 0:
        try:
            base.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=base, prefix=".probe-") as t:
                for d in ("l1", "l2", "m"):
                    os.mkdir(os.path.join(t, d))
                merged = os.path.join(t, "m")
                mount("overlay", merged, "overlay", MS_RDONLY,
                      f"lowerdir={t}/l2:{t}/l1")
                umount(merged)
                ok = True
        except (OSError, MountError):
            ok = False
    _supported[key] = ok
    return ok


class OverlaySnapshotter(Snapshotter):
    name: ClassVar[str] = "overlayfs"
    whiteouts: ClassVar[Literal["delete", "overlay"]] = "overlay"
    independent_layers: ClassVar[bool] = True

    def _populate(self, snap: Snapshot, parent: str) -> None:
        path = self.snapshot_path(snap)
        (path / "fs").mkdir(mode=0o755)
        (path / "work").mkdir(mode=0o711)

    def lowerdirs(self, key: str) -> list[Path]:
        return [self.fs_path(s) for s in self.chain(key)]

    def relative_lowerdirs(self, key: str) -> list[str]:
        """The same, relative to ``root/snapshots`` (short: mount options fit in one page
        for hundreds of layers, as containerd does it)."""
        return [f"{s.dir}/fs" for s in self.chain(key)]

