"""The Client: the one façade the CLI (or any Python program) calls."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from ctrpy.content import ContentStore
from ctrpy.errors import InvalidArgument, NotFound
from ctrpy.formats import (
    ExportOptions,
    Exporter,
    ExportTarget,
    ImportContext,
    Importer,
    ImportOptions,
    get_exporter,
    get_importer,
)
from ctrpy.images import Image, ImageStore, Walker
from ctrpy.metadata import NamespaceStore, namespaces
from ctrpy.oci import Descriptor, Matcher, Platform, digest, mediatypes
from ctrpy.progress import Sink, null_sink
from ctrpy.root import Root


@dataclass
class ImageSummary:
    """What ``images ls`` shows of one image."""

    image: Image
    size: int | None  # None when content is missing
    platforms: list[Platform]


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

    def close(self) -> None:
        self.root.close()

    # images -------------------------------------------------------------------
    def image(self, name: str) -> Image:
        return self.images.resolve(name)

    def summarize(self, image: Image, matcher: Matcher | None = None) -> ImageSummary:
        walker = self.walker
        try:
            platforms = walker.platforms(image.target)
        except NotFound:
            platforms = []
        try:
            size = sum(d.size for d in walker.walk(image.target, matcher or Matcher.default()))
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
    ) -> list[Image]:
        """Read an archive into the store and record its images, all or nothing.

        Image records are written in one transaction after every blob they need is
        stored and verified; an existing image keeps its created_at and labels, with
        ``labels`` merged in.
        """
        imp = get_importer(importer) if isinstance(importer, str) else importer
        opts = options or ImportOptions()
        if not opts.base_name.strip():
            raise InvalidArgument("--oci-name/--base-name must not be empty")
        self.root.ensure()
        ctx = ImportContext(self.root.blobs, opts, self.progress)
        result = imp.import_stream(stream, ctx)
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
                merged.update(labels or {})
                out.append(images.put(conn, Image(imported.name, imported.target, merged)))
        return out

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
        dest = Path(path)
        fd, tmp = tempfile.mkstemp(dir=dest.parent or Path("."), prefix=f".{dest.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb", buffering=1 << 20) as f:
                self.export(targets, f, exporter, options)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644 & ~_umask())
            os.replace(tmp, dest)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


