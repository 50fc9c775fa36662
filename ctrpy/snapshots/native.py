"""``native``: every snapshot is a complete tree (a copy of its parent plus one layer).

Works everywhere, without root; costs disk.  Copies use ``cp -a`` (the system's, never
anything from an image), which keeps hardlinks, xattrs, devices, owners and times.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import ClassVar, Literal

from ctrpy.archive.treeops import open_up, restore_modes
from ctrpy.errors import UnpackError
from ctrpy.snapshots.base import Snapshot, Snapshotter


def copy_tree(src: Path, dst: Path) -> None:
    """``cp -a`` of ``src`` into ``dst``.  Not root, directories of ours that deny us read or
    search (an image's 0644 directory) are opened up for the copy, and their modes put
    back in both trees afterwards (as ``umoci unpack --rootless`` does)."""
    changes = open_up(src)
    try:
        try:
            proc = subprocess.run(
                ["cp", "-a", "--reflink=auto", "--", f"{src}/.", str(dst)],
                capture_output=True, text=True, check=False,
            )
        except OSError as e:
            raise UnpackError(f"cannot copy snapshot {src}: {e}") from e
        if proc.returncode != 0:
            last = proc.stderr.strip().splitlines()[-1:] or ["cp failed"]
            raise UnpackError(f"cannot copy snapshot {src}: {last[0]}")
        restore_modes(dst, changes)
    finally:
        restore_modes(src, changes)


class NativeSnapshotter(Snapshotter):
    name: ClassVar[str] = "native"
    whiteouts: ClassVar[Literal["delete", "overlay"]] = "delete"

    def _populate(self, snap: Snapshot, parent: str) -> None:
        fs = self.fs_path(snap)
        fs.mkdir(mode=0o755)
        if parent:
            copy_tree(self.fs_path(self.stat(parent)), fs)

    def lowerdirs(self, key: str) -> list[Path]:
        return [self.fs_path(self.stat(key))]
