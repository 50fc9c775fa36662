"""The Client: the one façade the CLI (or any Python program) calls."""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from ctrpy import snapshots as _snapshots
from ctrpy.archive.tree import write_tree_tar
from ctrpy.content import ContentStore, RawContent
from ctrpy.errors import CtrpyError, FailedPrecondition, InvalidArgument, NotFound
from ctrpy.formats import (
    Exporter,
    ExportOptions,
    ExportTarget,
    ImportContext,
    Importer,
    ImportOptions,
    ImportResult,
    get_exporter,
    get_importer,
)
from ctrpy.images import Image, ImageStore, Walker
from ctrpy.images.store import validate as validate_image
from ctrpy.metadata import NamespaceStore, namespaces
from ctrpy.oci import Descriptor, Matcher, Platform, digest, mediatypes
from ctrpy.progress import Sink, null_sink
from ctrpy.root import Root
from ctrpy.snapshots import Snapshotter
from ctrpy.snapshots.base import Usage
from ctrpy.snapshots.mounts import mount_key, mount_snapshot, require_root, unmount_snapshot
from ctrpy.unpack import ImageLayers, Unpacker, image_layers
from ctrpy.unpack import extract as extract_layers
from ctrpy.util import output_file, remove_tree


@dataclass
class ImageSummary:
    """What ``images ls`` shows of one image."""

    image: Image
    size: int | None  # None when content is missing
    platforms: list[Platform]


@dataclass
class PruneResult:
    removed: list[str]  # digests of the blob files deleted
    bytes: int
    partial: int  # partial writes removed from content/ingest


@dataclass
class ImageCheck:
    image: Image
    present: int
    required: int
    size: int
    required_size: int
    unpacked: bool

    @property
    def complete(self) -> bool:
        return self.present == self.required


class Client:
    def __init__(
        self,
        root: str | os.PathLike[str] | Root | None = None,
        namespace: str = namespaces.DEFAULT,
        progress: Sink = null_sink,
    ):
        self.root = root if isinstance(root, Root) else Root(root)
        self.namespace = namespaces.validate(namespace)
        self.progress = progress

    # stores -----------------------------------------------------------------
    @property
    def content(self) -> ContentStore:
        return ContentStore(self.root.blobs, self.root.db, self.namespace)

    @property
    def images(self) -> ImageStore:
        return ImageStore(self.root.db, self.namespace)

    @property
    def namespaces(self) -> NamespaceStore:
        return NamespaceStore(self.root.db)

    @property
    def walker(self) -> Walker:
        return Walker(self.content.read_json)

    def snapshotter(self, name: str | None = None) -> Snapshotter:
        base = self.root.path / "snapshots"
        self.root.ensure()
        return _snapshots.get(name or _snapshots.default_name(base), base, self.root.db, self.namespace)

    def close(self) -> None:
        self.root.close()

    def prune_content(self, older_than: float = 3600.0) -> PruneResult:
        """Delete blob files no namespace holds (left by failed imports, ``--compress-blobs``
        originals, removed namespaces) and partial writes, when older than ``older_than``
        seconds.  The grace period protects an import running now: its blobs are new, and
        blobs it finds already stored are touched when it verifies them."""
        cutoff = time.time() - older_than
        held = {r["digest"] for r in self.root.db.query("SELECT DISTINCT digest FROM content")}
        result = PruneResult([], 0, self.root.blobs.clean_ingest(older_than))
        for dgst in self.root.blobs.digests():
            if dgst in held:
                continue
            path = self.root.blobs.path(dgst)
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            if max(st.st_mtime, st.st_atime) <= cutoff and self.root.blobs.delete(dgst):
                result.removed.append(dgst)
                result.bytes += st.st_size
        return result

    def remove_namespace(self, name: str) -> None:
        """Remove an empty namespace, and the bytes of blobs no other namespace holds."""
        for dgst in self.namespaces.remove(name):
            self.root.blobs.delete(dgst)

    # images -------------------------------------------------------------------
    def image(self, name: str) -> Image:
        return self.images.resolve(name)

    def summarize(self, image: Image, matcher: Matcher | None = None) -> ImageSummary:
        walker = self.walker
        try:  # a set, sorted, as ctr prints them
            platforms = sorted(set(walker.platforms(image.target)), key=str)
        except NotFound:
            platforms = []
        try:
            size = walker.size(image.target, matcher or Matcher.default())
        except NotFound:
            size = None
        return ImageSummary(image, size, platforms)

    def inspect(self, name: str) -> dict[str, Any]:
        img = self.image(name)
        out: dict[str, Any] = {
            "name": img.name,
            "target": img.target.to_json(),
            "labels": img.labels,
            "createdAt": img.created_at,
            "updatedAt": img.updated_at,
        }
        content = self.content
        if mediatypes.is_index(img.target.media_type) and content.exists(img.target.digest):
            out["index"] = content.read_json(img.target.digest)
        try:
            manifest, _cfg = self.walker.resolve_manifest(img.target, Matcher.default())
        except NotFound:
            return out
        out["manifest"] = content.read_json(manifest.descriptor.digest)
        if content.exists(manifest.config.digest):
            out["config"] = content.read_json(manifest.config.digest)
        return out

    # import -------------------------------------------------------------------
    def import_archive(
        self,
        stream: BinaryIO,
        importer: Importer | str = "auto",
        options: ImportOptions | None = None,
        labels: dict[str, str] | None = None,
        unpack: bool = False,
        snapshotter: str | None = None,
    ) -> list[Image]:
        """Read an archive into the store and record its images, all or nothing.

        Image records are written in one transaction after every blob they need is
        stored and verified (and, with ``unpack``, after every image is unpacked); an
        existing image keeps its created_at and labels, with ``labels`` merged in.
        """
        imp = get_importer(importer) if isinstance(importer, str) else importer
        opts = options or ImportOptions()
        if not opts.base_name.strip():
            raise InvalidArgument("--oci-name/--base-name must not be empty")
        self.root.ensure()
        ctx = ImportContext(self.root.blobs, opts, self.progress, self._find_labelled)
        result = imp.import_stream(stream, ctx)
        wanted = {k: v for k, v in (labels or {}).items() if v}  # `k=` sets nothing on import
        for imported in result.images:  # refuse bad names and labels before unpacking anything
            validate_image(Image(imported.name, imported.target, wanted))
        unpacker: Unpacker | None = None
        try:
            if unpack and result.images:
                unpacker = Unpacker(RawContent(self.root.blobs), self.snapshotter(snapshotter), self.progress)
                for imported in result.images:
                    unpacker.unpack(imported.name, imported.target, opts.matcher)
                for dgst, diff_id in unpacker.uncompressed.items():
                    result.blob_labels.setdefault(dgst, {})[mediatypes.LABEL_UNCOMPRESSED] = diff_id
            out = self._record_import(result, wanted)
        except BaseException:
            if unpacker is not None:
                unpacker.rollback()
            raise
        return out

    def _record_import(self, result: ImportResult, labels: dict[str, str]) -> list[Image]:
        """One transaction: the blobs, their labels, and the image records of an import."""
        content = self.content
        images = self.images
        out: list[Image] = []
        with self.root.db.transaction() as conn:
            content.record(conn, result.blobs.items())
            for dgst, blob_labels in result.blob_labels.items():
                content.record(conn, [(dgst, result.blobs.get(dgst, 0))], blob_labels)
            for imported in result.images:
                row = conn.execute(
                    "SELECT labels FROM images WHERE namespace = ? AND name = ?",
                    (self.namespace, imported.name),
                ).fetchone()
                merged = dict(images.get(imported.name).labels) if row else {}
                merged.update(labels)
                out.append(images.put(conn, Image(imported.name, imported.target, merged)))
        return out

    # unpack, check -------------------------------------------------------------
    def unpack(self, name: str, matcher: Matcher | None = None, snapshotter: str | None = None) -> str:
        """Unpack an image into snapshots; returns the top chainID."""
        img = self.image(name)
        unpacker = Unpacker(self.content, self.snapshotter(snapshotter), self.progress)
        top = unpacker.unpack(img.name, img.target, matcher or Matcher.default())
        content = self.content
        for dgst, diff_id in unpacker.uncompressed.items():
            if content.info(dgst).labels.get(mediatypes.LABEL_UNCOMPRESSED) != diff_id:
                content.set_labels(dgst, {mediatypes.LABEL_UNCOMPRESSED: diff_id})
        return top

    def layers(self, name: str, matcher: Matcher | None = None) -> ImageLayers:
        img = self.image(name)
        return image_layers(self.walker, img.target, matcher or Matcher.default())

    def check(self, image: Image, matcher: Matcher | None = None, snapshotter: str | None = None) -> ImageCheck:
        """ctr's ``images check``: are the platform manifest's config and layers present
        (containerd's ``images.Check``), and is the image unpacked?  An unresolvable
        manifest counts as the target itself missing (``incomplete (0/1)``)."""
        m = matcher or Matcher.default()
        content = self.content
        try:
            manifest, _cfg = self.walker.resolve_manifest(image.target, m)
        except CtrpyError:
            return ImageCheck(image, 0, 1, 0, image.target.size, False)
        required = [manifest.config, *manifest.layers]
        have = [d for d in required if content.exists(d.digest)]
        try:
            unpacked = Unpacker(content, self.snapshotter(snapshotter)).is_unpacked(image.target, m)
        except CtrpyError:
            unpacked = False
        return ImageCheck(
            image, len(have), len(required), sum(d.size for d in have), sum(d.size for d in required), unpacked
        )

    def usage(
        self, name: str, matcher: Matcher | None = None, snapshotter: str | None = None
    ) -> list[tuple[str, Usage | None]]:
        """Disk usage of each layer's snapshot (None where not unpacked), bottom first."""
        info = self.layers(name, matcher)
        sn = self.snapshotter(snapshotter)
        out: list[tuple[str, Usage | None]] = []
        for cid in info.chain_ids:
            out.append((cid, sn.usage(cid) if sn.exists(cid) else None))
        return out

    # root filesystems -------------------------------------------------------------
    def extract(self, name: str, dest: str | os.PathLike[str], matcher: Matcher | None = None) -> ImageLayers:
        """Write the image's flattened root filesystem into ``dest`` (new or empty)."""
        img = self.image(name)
        path = Path(dest)
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise FailedPrecondition(f"{path} exists and is not an empty directory")
        return extract_layers(self.content, img.name, img.target, matcher or Matcher.default(), path, self.progress)

    def flatten(self, name: str, out: BinaryIO, matcher: Matcher | None = None) -> None:
        """The image's flattened root filesystem as one tar stream.

        The layers are extracted (the same safe apply as ``extract``) into a private
        directory under ``ROOT/tmp``, which is then written as a deterministic tar and
        removed: the tar is exactly the tree ``extract`` makes, so it can never name a path
        through a symlink or a hardlink outside itself."""
        img = self.image(name)
        self.root.ensure()
        scratch = self.root.path / "tmp"
        scratch.mkdir(mode=0o700, exist_ok=True)
        work = Path(tempfile.mkdtemp(dir=scratch, prefix="flatten-"))
        try:
            rootfs = work / "rootfs"
            extract_layers(self.content, img.name, img.target, matcher or Matcher.default(), rootfs, self.progress)
            write_tree_tar(rootfs, out)
        finally:
            remove_tree(work)

    def flatten_to_path(self, name: str, path: str | os.PathLike[str], matcher: Matcher | None = None) -> None:
        with output_file(Path(path)) as f:
            self.flatten(name, f, matcher)

    def mount(
        self,
        name: str,
        target: str | os.PathLike[str],
        *,
        rw: bool = False,
        matcher: Matcher | None = None,
        snapshotter: str | None = None,
    ) -> str:
        """Mount the image's root filesystem on ``target`` (unpacking first if needed)."""
        require_root("mounting")
        if not Path(target).is_dir():
            raise NotFound(f"mount target {target} is not a directory")
        sn = self.snapshotter(snapshotter)
        top = self.unpack(name, matcher, sn.name)
        return mount_snapshot(sn, top, Path(target), rw=rw)

    def unmount(self, target: str | os.PathLike[str], *, remove: bool = False, snapshotter: str | None = None) -> None:
        require_root("unmounting")
        key = mount_key(Path(target))
        candidates = [snapshotter] if snapshotter else _snapshots.names()
        base = self.root.path / "snapshots"
        owner = None
        for name in candidates:  # the snapshotter that holds this target's mount snapshot
            sn = _snapshots.get(name, base, self.root.db, self.namespace)
            if sn.find(key) is not None:
                owner = sn
                break
        unmount_snapshot(owner, Path(target), remove=remove)

    def _find_labelled(self, key: str, value: str) -> list[str]:
        """Digests of blobs labelled ``key=value`` in any namespace (for importers)."""
        rows = self.root.db.query(
            "SELECT digest, labels FROM content WHERE instr(labels, ?) > 0", (json.dumps(value),)
        )
        return sorted({r["digest"] for r in rows if json.loads(r["labels"]).get(key) == value})

    # export -------------------------------------------------------------------
    def export_targets(
        self,
        names: Iterable[str],
        manifest: str | None = None,
        manifest_type: str = mediatypes.OCI_MANIFEST,
        ref_name: str | None = None,
    ) -> list[ExportTarget]:
        names = list(names)
        if manifest is not None:
            digest.validate(manifest)
            info = self.content.info(manifest)
            desc = Descriptor(manifest_type, manifest, info.size)
            if not names:
                return [ExportTarget(desc, None, ref_name)]
            return [ExportTarget(desc, n, ref_name) for n in names]
        if not names:
            raise InvalidArgument("name at least one image to export")
        targets = []
        for n in names:
            img = self.image(n)
            targets.append(ExportTarget(img.target, img.name, ref_name))
        return targets

    def export(
        self,
        targets: list[ExportTarget],
        out: BinaryIO,
        exporter: Exporter | str = "oci.v1",
        options: ExportOptions | None = None,
    ) -> None:
        exp = get_exporter(exporter) if isinstance(exporter, str) else exporter
        exp.export(self.content, targets, out, options or ExportOptions(), self.progress)

    def export_to_path(
        self,
        targets: list[ExportTarget],
        path: str | os.PathLike[str],
        exporter: Exporter | str = "oci.v1",
        options: ExportOptions | None = None,
    ) -> None:
        """Export into ``path`` atomically: a failed export leaves no partial file."""
        with output_file(Path(path)) as f:
            self.export(targets, f, exporter, options)


