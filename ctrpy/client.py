"""The Client: the one façade the CLI (or any Python program) calls.

It holds no SQL and no format knowledge: it opens the stores of one root and namespace,
and strings them together.  Every operation on an image takes ``image: str | Image`` (a
name is looked up, docker-normalised if need be), and every operation that writes an
archive or a tar takes a stream or a path (a path is written atomically).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from ctrpy.content import ContentStore, Info, RawContent
from ctrpy.errors import CtrpyError, ImageNotFound, InvalidArgument, NotFound
from ctrpy.filesystems import RootFilesystems
from ctrpy.images import Image, ImageRef, ImageStore, Walker
from ctrpy.images.store import validate as validate_image
from ctrpy.images.summary import ImageCheck, ImageSummary
from ctrpy.metadata import NamespaceStore, namespaces
from ctrpy.metadata.leases import Held, LeaseStore, abandon, new_id, this_process
from ctrpy.oci import Descriptor, Matcher, Platform, digest, mediatypes
from ctrpy.progress import Sink, null_sink
from ctrpy.root import Root
from ctrpy.util import Output, writable

# Each subsystem is imported by the methods that use it, not here: a command loads only the
# code it runs (`images push` needs neither the archive formats nor the snapshotters), which
# is most of how fast it starts.  See DESIGN.md, "Start-up".
if TYPE_CHECKING:
    from ctrpy.convert import ConvertOptions
    from ctrpy.formats import (
        Exporter,
        ExportOptions,
        ExportTarget,
        ImportContext,
        Importer,
        ImportOptions,
        ImportResult,
    )
    from ctrpy.gc import Collected
    from ctrpy.handmade import HandSnapshots
    from ctrpy.pull import PullOptions, PullResult
    from ctrpy.push import PushOptions, PushResult
    from ctrpy.remote import RemoteOptions
    from ctrpy.snapshots import Snapshotter
    from ctrpy.snapshots.base import Usage
    from ctrpy.unpack import ImageLayers, Unpacker
    from ctrpy.verify import VerifyReport


class Client(RootFilesystems):
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
        content = self.content
        return Walker(content.read_json, content.exists)

    def snapshotter(self, name: str | None = None) -> Snapshotter:
        from ctrpy import snapshots as _snapshots

        base = self.root.path / "snapshots"
        self.root.ensure()
        return _snapshots.get(name or _snapshots.default_name(base), base, self.root.db, self.namespace)

    @property
    def leases(self) -> LeaseStore:
        return LeaseStore(self.root.db, self.namespace)

    def close(self) -> None:
        self.root.close()

    # the lifecycle ------------------------------------------------------------------
    @contextmanager
    def lease(self, purpose: str) -> Iterator[Held]:
        """A lease this process owns for one operation: what the operation writes is held
        by it until an image record holds it; a dead process's lease holds nothing."""
        self.root.ensure()
        store = self.leases
        lease = store.create(new_id(purpose), owner=this_process())
        try:
            yield Held(store, lease.id)
        finally:
            try:
                store.delete(lease.id)
            except CtrpyError:  # the next collection drops it (this process's as well)
                abandon(lease.id)

    def collect(self, grace: float = 0.0) -> Collected:
        """Garbage-collect the whole root (every namespace); see :mod:`ctrpy.gc`."""
        from ctrpy.gc import collect

        return collect(self.root, grace=grace)

    def snapshots_by_hand(self, snapshotter: str | None = None) -> HandSnapshots:
        """``snapshots prepare/view/commit/mounts/label/diff`` (see :mod:`ctrpy.handmade`)."""
        from ctrpy.handmade import HandSnapshots

        return HandSnapshots(self.snapshotter(snapshotter), self.root.blobs, self.content, self.lease)

    def remove_images(self, names: Iterable[str]) -> tuple[list[Image], list[ImageNotFound], Collected]:
        """Remove image records (a name that is not there is reported, not an error: its
        ImageNotFound, with suggestions), then collect what they held: (removed, missing, freed)."""
        removed: list[Image] = []
        missing: list[ImageNotFound] = []
        for name in names:
            try:
                removed.append(self.images.delete(name))
            except ImageNotFound as e:
                missing.append(e)
        return removed, missing, self.collect()

    def remove_content(self, digests: Iterable[str]) -> Collected:
        """Hide blobs in this namespace (all must exist), then collect."""
        wanted = [digest.validate(d) for d in digests]
        content = self.content
        for d in wanted:
            content.info(d)
        for d in wanted:
            content.delete(d)
        return self.collect()

    def remove_snapshots(self, keys: Iterable[str], snapshotter: str | None = None) -> Collected:
        sn = self.snapshotter(snapshotter)
        for key in keys:
            sn.remove(key)
        return self.collect()

    def remove_namespace(self, name: str) -> Collected:
        """Remove an empty namespace (its content rows go with it), then collect."""
        self.namespaces.remove(name)
        return self.collect()

    def remove_lease(self, lease_id: str) -> Collected:
        self.leases.delete(lease_id)
        return self.collect()

    def verify(self, digests: Iterable[str] | None = None, *, fix: bool = False) -> VerifyReport:
        """Re-hash stored blobs and look for vanished snapshot trees (see :func:`ctrpy.verify.verify`)."""
        from ctrpy.verify import verify

        return verify(self.root, digests, fix=fix)

    def ingest(
        self,
        stream: BinaryIO,
        *,
        expected: str | None = None,
        expected_size: int | None = None,
        labels: dict[str, str] | None = None,
    ) -> Info:
        """Store a stream as a blob and make it visible in this namespace.  No image holds
        what is ingested by hand, so it is labelled ``containerd.io/gc.root`` (its time)
        unless ``labels`` set that label themselves (``containerd.io/gc.root=`` leaves it
        collectable): a later collection keeps it."""
        from ctrpy.gc import root_label

        wanted = {**root_label(), **(labels or {})}
        with self.lease("ingest") as held:
            return self.content.ingest(stream, expected=expected, expected_size=expected_size, labels=wanted,
                                       lease=held)

    # images -------------------------------------------------------------------
    def image(self, image: ImageRef) -> Image:
        return image if isinstance(image, Image) else self.images.resolve(image)

    def summarize(self, image: ImageRef, matcher: Matcher | None = None) -> ImageSummary:
        img = self.image(image)
        walker = self.walker
        try:  # a set, sorted, as ctr prints them
            platforms = sorted(set(walker.platforms(img.target)), key=str)
        except CtrpyError:
            platforms = []
        try:
            size: int | None = walker.size(img.target, matcher or Matcher.default())
        except CtrpyError:
            size = None
        return ImageSummary(img, size, platforms)

    def inspect(self, image: ImageRef, matcher: Matcher | None = None) -> dict[str, Any]:
        """The record, and the index, manifest and config it means here (what is present)."""
        img = self.image(image)
        out = img.to_json()
        content = self.content
        if mediatypes.is_index(img.target.media_type) and content.exists(img.target.digest):
            out["index"] = content.read_json(img.target.digest)
        try:
            selected = self.walker.resolve(img.target, matcher or Matcher.default(), img.name)
        except NotFound:
            return out
        out["manifest"] = content.read_json(selected.descriptor.digest)
        if content.exists(selected.manifest.config.digest) and selected.config is not None:
            out["config"] = selected.config.raw
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
        from ctrpy.formats import get_importer

        imp = get_importer(importer) if isinstance(importer, str) else importer
        return self._import(lambda ctx: imp.import_stream(stream, ctx), options, labels, unpack, snapshotter)

    def import_layout(
        self,
        path: str | os.PathLike[str],
        options: ImportOptions | None = None,
        labels: dict[str, str] | None = None,
        unpack: bool = False,
        snapshotter: str | None = None,
    ) -> list[Image]:
        """:meth:`import_archive` of an OCI image-layout directory (skopeo's ``oci:DIR``):
        only the blobs the selected platforms need are copied, each verified."""
        from ctrpy.formats.layout_dir import import_layout_dir

        return self._import(lambda ctx: import_layout_dir(Path(path), ctx), options, labels, unpack, snapshotter)

    def import_rootfs(
        self,
        stream: BinaryIO,
        name: str,
        platform: Platform | None = None,
        labels: dict[str, str] | None = None,
        unpack: bool = False,
        snapshotter: str | None = None,
    ) -> list[Image]:
        """Make the one-layer image ``name`` from a root filesystem tar (plain, gzip or
        zstd), as ``docker import`` does; see :mod:`ctrpy.formats.rootfs`."""
        from ctrpy.formats import ImportOptions
        from ctrpy.formats.rootfs import import_rootfs_tar

        opts = ImportOptions(matcher=Matcher([platform or Platform.host()]))
        return self._import(lambda ctx: import_rootfs_tar(stream, name, ctx), opts, labels, unpack, snapshotter)

    def _import(
        self,
        read: Callable[[ImportContext], ImportResult],
        options: ImportOptions | None,
        labels: dict[str, str] | None,
        unpack: bool,
        snapshotter: str | None,
    ) -> list[Image]:
        from ctrpy.formats import ImportContext, ImportOptions
        from ctrpy.unpack import Unpacker

        opts = options or ImportOptions()
        if opts.base_name is not None and not opts.base_name.strip():
            raise InvalidArgument("the base name must not be empty")
        with self.lease("import") as held:
            ctx = ImportContext(self.root.blobs, opts, self.progress, self.content.find_labelled, held)
            result = read(ctx)
            wanted = {k: v for k, v in (labels or {}).items() if v}  # `k=` sets nothing on import
            for imported in result.images:  # refuse bad names and labels before unpacking anything
                validate_image(Image(imported.name, imported.target, labels=wanted))
            unpacker: Unpacker | None = None
            try:
                walker = ctx.walker()
                for imported in result.images:
                    _add_labels(result.blob_labels, self._reference_labels(walker, imported.target, opts.matcher))
                if unpack and result.images:
                    unpacker = Unpacker(RawContent(self.root.blobs), self.snapshotter(snapshotter), self.progress, held)
                    for imported in result.images:
                        unpacker.unpack(imported.name, imported.target, opts.matcher)
                    _add_labels(result.blob_labels, unpacker.labels)
                images = [(i.name, i.target) for i in result.images]
                recorded = self._record(result.blobs, result.blob_labels, images, wanted)
            except BaseException:
                if unpacker is not None:
                    unpacker.rollback()
                raise
        if result.replaced:  # uncompressed originals a compressed copy stands for: free them now
            self.collect()
        return recorded

    def convert(self, source: ImageRef, target: str, options: ConvertOptions | None = None) -> Image:
        """``images convert``: record ``target`` as ``source`` converted (see
        :mod:`ctrpy.convert`), with ``source``'s labels, replacing an image of that name as
        ctr does.  All or nothing: the record is written once every blob is stored."""
        from ctrpy.convert import Converter, ConvertOptions

        img = self.image(source)
        opts = options or ConvertOptions()
        opts.check()
        with self.lease("convert") as held:
            converter = Converter(self.content, self.root.blobs, held, opts, self.progress, self.content.find_labelled)
            converted = converter.convert(img.name, img.target)
            t = converted.target
            new = Descriptor(t.media_type, t.digest, t.size, dict(img.target.annotations))
            validate_image(Image(target, new, labels=dict(img.labels)))
            (recorded,) = self._record(converted.blobs, converted.labels, [(target, new)], dict(img.labels),
                                       replace=True)
        return recorded

    @staticmethod
    def _reference_labels(walker: Walker, target: Descriptor, matcher: Matcher) -> dict[str, dict[str, str]]:
        """containerd's gc reference labels for every index and manifest of an image that
        is present (see :meth:`ctrpy.images.walk.Walker.reference_labels`)."""
        out: dict[str, dict[str, str]] = {}
        for item in walker.content(target, matcher):
            d = item.descriptor
            if (mediatypes.is_index(d.media_type) or mediatypes.is_manifest(d.media_type)) and walker.exists(d.digest):
                out[d.digest] = walker.reference_labels(d)
        return out

    def _record(
        self,
        blobs: dict[str, int],
        blob_labels: dict[str, dict[str, str]],
        images: list[tuple[str, Descriptor]],
        labels: dict[str, str],
        *,
        replace: bool = False,
    ) -> list[Image]:
        """One transaction: the blobs, their labels, and the image records (``labels``
        merged into an existing record's, or with ``replace`` in place of them)."""
        content = self.content
        store = self.images
        with self.root.db.transaction() as conn:
            content.record(conn, blobs.items())
            for dgst, extra in blob_labels.items():
                size = blobs.get(dgst)
                content.record(conn, [(dgst, size if size is not None else self.root.blobs.size(dgst))], extra)
            return [store.put(conn, Image(name, target, labels=labels), merge=None if replace else labels)
                    for name, target in images]

    # registries -----------------------------------------------------------------
    def pull(self, ref: str, remote: RemoteOptions | None = None, options: PullOptions | None = None) -> PullResult:
        """Pull ``ref`` from its registry: download what the platforms need (resuming what an
        earlier pull left), unpack it on the way, record it -- all or nothing (see
        :mod:`ctrpy.pull`).  The record gets ``options.labels``, merged as import does."""
        from ctrpy.pull import PullOptions, PullResult, pull_image

        opts = options or PullOptions()
        with self.lease("pull") as held:
            sn = self.snapshotter(opts.snapshotter) if opts.unpack and not opts.metadata_only else None
            pulled = pull_image(ref, remote, opts, self.root.blobs, self.content, held, sn, self.progress)
            try:
                wanted = {k: v for k, v in opts.labels.items() if v}
                validate_image(Image(pulled.name, pulled.target, labels=wanted))
                (image,) = self._record(pulled.blobs, pulled.labels, [(pulled.name, pulled.target)], wanted)
            except BaseException:
                pulled.rollback()
                raise
        return PullResult(image, pulled.unpacked, pulled.downloaded, pulled.resumed)

    def fetch(self, ref: str, remote: RemoteOptions | None = None, options: PullOptions | None = None) -> Image:
        """``content fetch``: :meth:`pull` without unpacking."""
        from ctrpy.pull import PullOptions

        return self.pull(ref, remote, replace(options or PullOptions(), unpack=False)).image

    # unpack, check -------------------------------------------------------------
    def unpack(self, image: ImageRef, matcher: Matcher | None = None, snapshotter: str | None = None) -> str:
        """Unpack an image into snapshots; returns the top chainID ("" for an artifact)."""
        from ctrpy.unpack import Unpacker

        img = self.image(image)
        m = matcher or Matcher.default()
        with self.lease("unpack") as held:
            unpacker = Unpacker(self.content, self.snapshotter(snapshotter), self.progress, held)
            try:
                top = unpacker.unpack(img.name, img.target, m)
                labels = self._reference_labels(self.walker, img.target, m)
                _add_labels(labels, unpacker.labels)
                self.content.label_all(labels)  # the image now holds its snapshots
            except BaseException:
                unpacker.rollback()
                raise
        return top

    def layers(self, image: ImageRef, matcher: Matcher | None = None) -> ImageLayers:
        from ctrpy.unpack import require_layers

        img = self.image(image)
        return require_layers(self.content, img.name, img.target, matcher or Matcher.default())

    def check(self, image: ImageRef, matcher: Matcher | None = None, snapshotter: str | None = None) -> ImageCheck:
        """ctr's ``images check``: are the platform manifest's config and layers present
        (containerd's ``images.Check``), and is the image unpacked?  An unresolvable
        manifest counts as the target itself missing (``incomplete (0/1)``)."""
        from ctrpy.unpack import Unpacker

        img = self.image(image)
        m = matcher or Matcher.default()
        content = self.content
        try:
            selected = self.walker.resolve(img.target, m, img.name)
        except CtrpyError:
            return ImageCheck(img, 0, 1, 0, img.target.size, False)
        required = [selected.manifest.config, *selected.manifest.layers]
        have = [d for d in required if content.exists(d.digest)]
        try:
            unpacked = Unpacker(content, self.snapshotter(snapshotter)).is_unpacked(img.target, m)
        except CtrpyError:
            unpacked = False
        return ImageCheck(
            img, len(have), len(required), sum(d.size for d in have), sum(d.size for d in required), unpacked
        )

    def usage(
        self, image: ImageRef, matcher: Matcher | None = None, snapshotter: str | None = None
    ) -> list[tuple[str, Usage | None]]:
        """Disk usage of each layer's snapshot (None where not unpacked), bottom first."""
        info = self.layers(image, matcher)
        sn = self.snapshotter(snapshotter)
        return [(cid, sn.usage(cid) if sn.exists(cid) else None) for cid in info.chain_ids]

    # export -------------------------------------------------------------------
    def export_targets(
        self,
        names: Iterable[str],
        manifest: str | None = None,
        manifest_type: str = mediatypes.OCI_MANIFEST,
        ref_name: str | None = None,
    ) -> list[ExportTarget]:
        from ctrpy.formats import ExportTarget

        return [ExportTarget(desc, name, ref_name) for desc, name in self._targets(names, manifest, manifest_type)]

    def _targets(self, names: Iterable[str], manifest: str | None, manifest_type: str,
                 ) -> list[tuple[Descriptor, str | None]]:
        """What export and push send: the named images, or the stored ``manifest`` (under
        each name given, else under none)."""
        names = list(names)
        if manifest is not None:
            digest.validate(manifest)
            info = self.content.info(manifest)
            desc = Descriptor(manifest_type, manifest, info.size)
            return [(desc, n) for n in names] if names else [(desc, None)]
        if not names:
            raise InvalidArgument("name at least one image to export")
        return [(img.target, img.name) for img in map(self.image, names)]

    def export(
        self,
        targets: list[ExportTarget],
        out: Output,
        exporter: Exporter | str = "oci.v1",
        options: ExportOptions | None = None,
    ) -> None:
        """Export to a stream, or to a path atomically (a failed export leaves no file)."""
        from ctrpy.formats import ExportOptions, get_exporter

        exp = get_exporter(exporter) if isinstance(exporter, str) else exporter
        opts = options or ExportOptions()
        walker = self.walker
        with self.lease("export") as held:
            for t in targets:  # nothing exported can be collected while it is written
                held.contents(item.descriptor.digest for item in walker.content(t.descriptor, opts.selected()))
            with writable(out) as f:
                exp.export(self.content, targets, f, opts, self.progress)


    # registries ---------------------------------------------------------------
    def push(self, remote: str, local: str | None = None, options: PushOptions | None = None,
             remote_options: RemoteOptions | None = None, *, manifest: str | None = None,
             manifest_type: str = mediatypes.OCI_MANIFEST) -> PushResult:
        """``images push``: the image ``local`` (default: ``remote``), or the stored
        ``manifest``, to the registry ``remote`` names (see :mod:`ctrpy.push`)."""
        from ctrpy.push import Pusher, PushOptions, destination, plan, select
        from ctrpy.remote import Registry

        opts = options or PushOptions()
        opts.check()
        ((desc, named),) = self._targets([] if manifest else [local or remote], manifest, manifest_type)
        name = named or desc.digest
        walker = self.walker
        selection = select(walker, desc, opts.platforms, name)
        work = plan(walker, selection, name, allow_non_distributable=opts.allow_non_distributable)
        where = destination(remote, selection.top)
        with self.lease("push") as held, Registry.for_reference(remote, remote_options) as registry:
            held.contents(d.digest for d in [*work.manifests, *work.blobs])  # kept while they are read
            return Pusher(self.content, registry, opts, self.progress).push(selection, work, where)


def _add_labels(into: dict[str, dict[str, str]], more: dict[str, dict[str, str]]) -> None:
    for dgst, labels in more.items():
        into.setdefault(dgst, {}).update(labels)
