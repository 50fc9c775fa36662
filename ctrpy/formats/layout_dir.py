"""OCI image-layout directories (skopeo's ``oci:DIR``, umoci's layouts) as import sources.

The directory is read in place: ``oci-layout`` and ``index.json`` (20 MiB cap), then,
walking from index.json's entries for the selected platforms (the one walk), each blob
an image needs is copied from ``blobs/sha256/<hex>`` into the store, verified against its
descriptor's digest and size.  Blobs of other platforms, and blobs nothing names, are
never read; a blob the store already holds (verified when it was written) is not read
again.  The rest is an OCI import (:func:`ctrpy.formats.oci.import_oci_layout`): naming,
completeness, warnings, exactly as for an archive of the same layout.

Only descriptors' validated sha256 digests ever become paths inside the directory;
blobs must be regular files (a FIFO or a device is refused, never read).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ctrpy.content.blobs import MAX_JSON
from ctrpy.errors import CtrpyError, InvalidArchive, StoreError
from ctrpy.formats.base import ImportContext, ImportResult
from ctrpy.formats.oci import import_oci_layout
from ctrpy.formats.reader import ArchiveContents
from ctrpy.images.walk import filter_platforms, parse_index, walk
from ctrpy.oci import Descriptor, digest
from ctrpy.progress import BlobStored

__all__ = ["import_layout_dir"]

METADATA = ("oci-layout", "index.json")


def _open_regular(path: Path, rel: str) -> int:
    """A read descriptor of the regular file ``path`` (never blocking on a FIFO)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as e:
        raise StoreError(f"cannot read {rel} of the layout: {e.strerror}") from e
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise InvalidArchive(f"{rel} is not a regular file")
    os.set_blocking(fd, True)
    return fd


def _read_metadata(root: Path, rel: str) -> bytes | None:
    try:
        fd = _open_regular(root / rel, rel)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as f:
        data = f.read(MAX_JSON + 1)
    if len(data) > MAX_JSON:
        raise InvalidArchive(f"{rel} is larger than the {MAX_JSON} byte JSON limit")
    return data


@dataclass(eq=False)
class _Copier:
    """Copies the blobs the walk reaches from the layout into the store."""

    root: Path
    ctx: ImportContext
    contents: ArchiveContents

    def copy(self, desc: Descriptor) -> None:
        dgst = desc.digest
        if not digest.is_valid(dgst) or dgst in self.contents.sizes:
            return  # another algorithm: the import names it when an image needs it
        rel = f"blobs/sha256/{digest.hex_of(dgst)}"
        if self.ctx.lease is not None:
            self.ctx.lease.content(dgst)  # held before we look: a collection now keeps it
        if self.ctx.blobs.exists(dgst):
            self._found(rel, dgst, self.ctx.blobs.size(dgst), new=False)
            return
        try:
            fd = _open_regular(self.root / rel, rel)
        except FileNotFoundError:
            return  # absent: the completeness check decides whether that is an error
        try:
            with os.fdopen(fd, "rb") as f, self.ctx.writer(dgst, desc.size) as w:
                w.copy_from(f)
                stored, size = w.commit()
        except CtrpyError as e:
            raise e.within(f"layout file {rel!r}") from None
        self._found(rel, stored, size, new=True)

    def _found(self, rel: str, dgst: str, size: int, *, new: bool) -> None:
        self.contents.blobs[rel] = dgst
        self.contents.sizes[dgst] = size
        self.contents.names.append(rel)
        self.ctx.progress(BlobStored(dgst, size, rel, new=new))


def import_layout_dir(root: Path, ctx: ImportContext) -> ImportResult:
    """Import the OCI image layout in directory ``root``."""
    contents = ArchiveContents(store=ctx.blobs)
    for rel in METADATA:
        data = _read_metadata(root, rel)
        if data is not None:
            contents.metadata[rel] = data
            contents.names.append(rel)
    if "oci-layout" not in contents.metadata:
        raise InvalidArchive(f"{root} is not an OCI image layout: it has no oci-layout file")
    if "index.json" in contents.metadata:
        copier = _Copier(root, ctx, contents)
        walker = ctx.walker()

        def handler(desc: Descriptor) -> Sequence[Descriptor]:
            copier.copy(desc)
            return walker.children(desc)

        entries = parse_index(contents.json("index.json"), "index.json")
        walk(entries, filter_platforms(handler, ctx.options.matcher))
    return import_oci_layout(contents, ctx)
