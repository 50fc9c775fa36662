"""Snapshots a user makes by hand, and the layers made from them: ctr's ``snapshots
prepare``, ``view``, ``commit``, ``mounts``, ``label`` and ``diff``.

No image holds such a snapshot, and the lease of the command that made it ends with the
command; every ``rm`` collects garbage.  So, as containerd's answer is, each snapshot made
here is labelled ``containerd.io/gc.root`` (its time) in the transaction that creates it,
unless the caller's labels set that label themselves (``containerd.io/gc.root=`` leaves it
collectable): collections keep it, and the parents it stands on, until ``snapshots rm``
removes it (or ``snapshots label KEY containerd.io/gc.root=`` gives it up).  A commit keeps
the label.  The layer ``diff`` stores is a blob labelled ``containerd.io/gc.root`` too (as
``content ingest`` labels what it stores) and ``containerd.io/uncompressed`` with its diffID.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

from ctrpy import gc
from ctrpy.content import ContentStore
from ctrpy.content.blobs import BlobStore
from ctrpy.errors import CtrpyError, InvalidArgument
from ctrpy.layers import LayerBlob, Writable, compression_of, write_layer
from ctrpy.metadata.labels import validate as validate_labels
from ctrpy.metadata.leases import Held
from ctrpy.oci import mediatypes
from ctrpy.snapshots import Snapshot, Snapshotter
from ctrpy.snapshots.diff import View, snapshot_view, write_diff
from ctrpy.snapshots.mounts import Mount, describe_mounts

__all__ = ["DIFF_MEDIA_TYPES", "HandSnapshots"]

DIFF_MEDIA_TYPES = (mediatypes.OCI_LAYER_GZIP, mediatypes.OCI_LAYER_ZSTD, mediatypes.OCI_LAYER)

LeaseFactory = Callable[[str], AbstractContextManager[Held]]


@dataclass(eq=False)
class HandSnapshots:
    """The snapshots of one snapshotter, as a user handles them."""

    sn: Snapshotter
    blobs: BlobStore
    content: ContentStore
    lease: LeaseFactory

    def _made(self, key: str, parent: str, labels: dict[str, str] | None, kind: str) -> Snapshot:
        wanted = {**gc.root_label(), **(labels or {})}
        wanted = {k: v for k, v in wanted.items() if v}
        validate_labels(wanted)
        with self.lease(kind) as held:
            return self.sn.prepare(key, parent, wanted, kind="view" if kind == "view" else "active", lease=held)

    def prepare(self, key: str, parent: str = "", labels: dict[str, str] | None = None) -> Snapshot:
        """An active snapshot ``key`` on top of committed ``parent`` (none: empty)."""
        return self._made(key, parent, labels, "prepare")

    def view(self, key: str, parent: str, labels: dict[str, str] | None = None) -> Snapshot:
        """A read-only view ``key`` of committed ``parent``."""
        return self._made(key, parent, labels, "view")

    def commit(self, name: str, key: str, labels: dict[str, str] | None = None) -> Snapshot:
        """Active ``key`` becomes committed ``name`` (its labels, gc.root too, kept)."""
        return self.sn.commit(name, key, labels)

    def mounts(self, key: str) -> list[Mount]:
        return describe_mounts(self.sn, key)

    def label(self, key: str, labels: dict[str, str]) -> dict[str, str]:
        """Set (``k=v``) or remove (``k=``) labels; returns the snapshot's labels."""
        validate_labels({k: v for k, v in labels.items() if v})
        return self.sn.set_labels(key, labels).labels

    def diff(
        self,
        key: str,
        against: str | None = None,
        media_type: str = mediatypes.OCI_LAYER_GZIP,
        labels: dict[str, str] | None = None,
    ) -> LayerBlob:
        """The changes of snapshot ``key`` against ``against`` (default: its parent; none:
        the empty tree) as a layer blob of ``media_type``, stored and recorded in this
        namespace (see the module's docstring for its labels)."""
        compression = compression_of(media_type)
        if media_type not in DIFF_MEDIA_TYPES or compression is None:
            raise InvalidArgument(f"unknown diff media type {media_type!r}; valid: {', '.join(DIFF_MEDIA_TYPES)}")
        wanted = {**gc.root_label(), **(labels or {})}
        validate_labels({k: v for k, v in wanted.items() if v})
        upper = snapshot_view(self.sn, key)
        base = self.sn.stat(key).parent if against is None else against
        lower = snapshot_view(self.sn, base) if base else View([], overlay=upper.overlay)

        def produce(out: Writable) -> None:
            write_diff(upper, lower, out)

        with self.lease("diff") as held:
            try:
                layer = write_layer(self.blobs, produce, compression, lease=held)
            except CtrpyError as e:
                raise e.within(f"diff of snapshot {key!r}") from None
            if layer.digest != layer.diff_id:
                wanted[mediatypes.LABEL_UNCOMPRESSED] = layer.diff_id
            wanted = {k: v for k, v in wanted.items() if v}
            with self.content.db.transaction() as conn:
                self.content.record(conn, [(layer.digest, layer.size)], wanted)
        return layer
