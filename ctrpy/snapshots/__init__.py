"""Snapshotters by name, and the default (containerd's choice: overlayfs where usable, else native)."""

from __future__ import annotations

import os
from pathlib import Path

from ctrpy.errors import InvalidArgument, SnapshotterUnavailable
from ctrpy.metadata.db import Database
from ctrpy.snapshots.base import Snapshot, Snapshotter, Usage
from ctrpy.snapshots.native import NativeSnapshotter
from ctrpy.snapshots.overlay import OverlaySnapshotter, overlay_supported

SNAPSHOTTERS: dict[str, type[Snapshotter]] = {
    NativeSnapshotter.name: NativeSnapshotter,
    OverlaySnapshotter.name: OverlaySnapshotter,
}
ALIASES = {"overlay": "overlayfs"}


def names() -> list[str]:
    return sorted(SNAPSHOTTERS)


def default_name(snapshots_root: Path) -> str:
    """$CTRPY_SNAPSHOTTER, else overlayfs when root can mount it here, else native."""
    env = os.environ.get("CTRPY_SNAPSHOTTER")
    if env:
        return env
    return "overlayfs" if overlay_supported(snapshots_root) else "native"


def get(name: str, snapshots_root: Path, db: Database, namespace: str) -> Snapshotter:
    real = ALIASES.get(name, name)
    cls = SNAPSHOTTERS.get(real)
    if cls is None:
        raise InvalidArgument(f"unknown snapshotter {name!r}; valid snapshotters: {', '.join(names())}")
    if real == "overlayfs" and os.geteuid() != 0:
        raise SnapshotterUnavailable("overlayfs", "needs root")
    return cls(snapshots_root / real, db, namespace)


__all__ = ["Snapshot", "Snapshotter", "Usage", "default_name", "get", "names"]


def namespaces_using(db: Database, name: str) -> list[str]:
    """The namespaces that have snapshots of snapshotter ``name``."""
    return [ns for ns, in db.query("SELECT DISTINCT namespace FROM snapshots WHERE snapshotter = ?", (name,))]
