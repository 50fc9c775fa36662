"""``native``: every snapshot is a complete tree (a copy of its parent plus one layer).

Works everywhere, without root; costs disk.  Copies use ``cp -a`` (the system's, never
anything from an image), which keeps hardlinks, xattrs, devices, owners and times.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import ClassVar, Literal

from ctrpy.errors import UnpackError
from ctrpy.snapshots.base import Snapshot, Snapshotter


def copy_tree(src: Path, dst: Path) -> None:
    try:
        proc = subprocess.run(
            ["cp", "-a", "--reflink=auto", "--", f"{src}/.", str(dst)],
            capture_output=True, text=True, check=False,
        )
    except OSError as e:
        raise UnpackError(f"cannot copy snapshot {src}: {e}") from e
    if proc.returncode != 0:
        raise UnpackError(f"cannot copy snapshot {src}: {proc.stderr.strip().splitlines()[-1:]}")


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
