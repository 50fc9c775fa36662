"""``content verify``: re-hash blobs and look for snapshots whose trees vanished."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from ctrpy import snapshots as _snapshots
from ctrpy.content.store import listed_anywhere
from ctrpy.oci import digest
from ctrpy.root import Root


@dataclass
class VerifyReport:
    """What ``content verify`` found: blobs whose bytes are not what their digest says,
    blobs a namespace lists that are gone, and snapshots whose trees vanished."""

    checked: int = 0
    corrupt: list[tuple[str, str]] = field(default_factory=list)  # (digest, what the bytes hash to)
    missing: list[str] = field(default_factory=list)
    broken_snapshots: list[tuple[str, str, str]] = field(default_factory=list)  # (namespace, snapshotter, key)
    fixed: bool = False

    @property
    def clean(self) -> bool:
        return not (self.corrupt or self.missing or self.broken_snapshots)


def verify(root: Root, digests: Iterable[str] | None = None, *, fix: bool = False) -> VerifyReport:
    """Re-hash stored blobs (``digests``, or every blob file with None) and look for
    snapshot rows whose directory is gone, in every namespace.  ``fix`` deletes the
    corrupt blobs (the next import or pull brings them back; ``images check`` shows the
    images that need them as incomplete meanwhile) and forgets the broken snapshots (the
    next unpack rebuilds them)."""
    report = VerifyReport()
    blobs = root.blobs
    if digests is None:
        wanted = blobs.digests()
        listed = listed_anywhere(root.db) if root.has_db else set()
        report.missing = sorted(d for d in listed if not blobs.exists(d))
    else:
        wanted = [digest.validate(d) for d in digests]
    for dgst in wanted:
        actual = blobs.rehash(dgst)
        report.checked += 1
        if actual is None:
            if digests is not None:
                report.missing.append(dgst)
        elif actual != dgst:
            report.corrupt.append((dgst, actual))
    if digests is None and root.has_db:
        for name in _snapshots.names():
            for ns in _snapshots.namespaces_using(root.db, name):
                sn = _snapshots.get(name, root.path / "snapshots", root.db, ns)
                for snap in sn.list():
                    if snap.kind != "view" and not sn.fs_path(snap).is_dir():
                        report.broken_snapshots.append((ns, name, snap.key))
    if fix:
        for dgst, _actual in report.corrupt:
            blobs.delete(dgst)
        for ns, name, key in report.broken_snapshots:
            _snapshots.get(name, root.path / "snapshots", root.db, ns).forget_broken(key)
        report.fixed = True
    return report
