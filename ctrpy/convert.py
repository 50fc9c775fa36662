"""``images convert``: a new image from one in the store, as containerd's
``core/images/converter`` makes one for ``ctr images convert``.

What changes, and only when asked:

- **media types** (``oci``): docker schema2 manifest lists, manifests, configs and layers
  get their OCI names (containerd's ``ConvertDockerMediaTypeToOCI``);
- **layers** (``uncompress``, or ``compression`` gzip / zstd with an optional ``level``):
  each layer is decompressed, checked against its config's diffID and written again; a
  layer already in the wanted form is kept (unless a level is given); an uncompressed layer
  the store already holds, or a compressed one labelled ``containerd.io/uncompressed`` with
  the layer's diffID (verified before use), is reused instead of written;
- **platforms**: index entries the selection refuses are dropped (without one, the host's
  platform; a lone manifest is converted whatever its platform unless platforms are named).

What never changes: diffIDs (the same tar, compressed another way), so an image config is
kept byte for byte (only its descriptor's media type may change) and the converted image
has the chainIDs -- the snapshots -- of its source.  Non-distributable layers, artifacts
and index entries of unknown media types are carried as they are.  Documents are written
only when something in them changed, as Go's ``json.Marshal`` writes them, their other
fields kept in their order.

Layers are converted on ``workers`` threads (two by default), each with its own reading
thread (:func:`ctrpy.layers.write_layer`); the new image is then walked again from the
store's bytes and must be complete before :class:`Converted` is returned.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, BinaryIO, cast

from ctrpy.archive.compression import Compression, open_decompressed
from ctrpy.content import ContentStore, RawContent
from ctrpy.content.blobs import BlobStore
from ctrpy.errors import CtrpyError, InvalidArchive, InvalidArgument, UnsupportedFormat
from ctrpy.formats.base import ExportOptions
from ctrpy.formats.oci import collect_blobs
from ctrpy.images.walk import Walker
from ctrpy.layers import LayerBlob, Writable, check_level, compression_of, reuse_compressed, write_layer
from ctrpy.metadata.leases import Held
from ctrpy.oci import Descriptor, Matcher, digest, mediatypes
from ctrpy.progress import BlobStored, Sink, null_sink
from ctrpy.streams import CHUNK, json_bytes

__all__ = ["DOCKER_TO_OCI", "ConvertOptions", "Converted", "Converter"]

DOCKER_TO_OCI = {
    mediatypes.DOCKER_MANIFEST_LIST: mediatypes.OCI_INDEX,
    mediatypes.DOCKER_MANIFEST: mediatypes.OCI_MANIFEST,
    mediatypes.DOCKER_CONFIG: mediatypes.OCI_CONFIG,
    mediatypes.DOCKER_LAYER: mediatypes.OCI_LAYER,
    mediatypes.DOCKER_LAYER_GZIP: mediatypes.OCI_LAYER_GZIP,
    mediatypes.DOCKER_LAYER_ZSTD: mediatypes.OCI_LAYER_ZSTD,
    mediatypes.DOCKER_LAYER_FOREIGN: mediatypes.OCI_LAYER_ND_GZIP,
}

LabelLookup = Callable[[str, str], list[str]]


@dataclass
class ConvertOptions:
    oci: bool = False
    uncompress: bool = False
    compression: Compression | None = None  # recompress layers: GZIP or ZSTD
    level: int | None = None  # of ``compression``
    matcher: Matcher | None = None  # the platforms kept; None: the host's
    all_platforms: bool = False

    @property
    def layers(self) -> Compression | None:
        """The compression every (distributable) layer ends up in; None: as it is."""
        return Compression.NONE if self.uncompress else self.compression

    @property
    def to_oci(self) -> bool:
        """zstd layers imply OCI media types: nothing reads a docker manifest with them."""
        return self.oci or self.compression is Compression.ZSTD

    def selection(self) -> ExportOptions:
        """The platforms, chosen as an export chooses them."""
        return ExportOptions(matcher=self.matcher, all_platforms=self.all_platforms)

    def check(self) -> None:
        if self.uncompress and self.compression is not None:
            raise InvalidArgument("layers cannot be both uncompressed and compressed")
        if self.compression is Compression.NONE:
            raise InvalidArgument("compression must be gzip or zstd (uncompress is its own option)")
        if self.level is not None and self.compression is None:
            raise InvalidArgument("a compression level needs a compression (gzip or zstd)")
        if self.compression is not None:
            check_level(self.compression, self.level)


@dataclass
class Converted:
    """The converted image: its target, every blob it needs (digest -> size) and the
    labels the new blobs get (gc references, ``containerd.io/uncompressed``)."""

    target: Descriptor
    blobs: dict[str, int] = field(default_factory=dict)
    labels: dict[str, dict[str, str]] = field(default_factory=dict)
    written: list[str] = field(default_factory=list)  # blobs this conversion wrote


def _with(raw: Any, desc: Descriptor) -> dict[str, Any]:
    """A descriptor's JSON object with a new media type, digest and size, every other field
    (annotations, platform, urls, data, artifactType) kept in its place."""
    out = dict(raw)
    out.update({"mediaType": desc.media_type, "digest": desc.digest, "size": desc.size})
    return out


def _rewritten(doc: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with ``changes`` applied in place of the keys it has (new keys last)."""
    out = {k: changes.get(k, v) for k, v in doc.items()}
    out.update({k: v for k, v in changes.items() if k not in doc})
    return out


def _default_workers() -> int:
    return min(2, os.cpu_count() or 1)


@dataclass(eq=False)
class Converter:
    """Converts one image; reads through ``content`` (this namespace), writes raw blobs
    held by ``lease``; ``workers`` layers at a time."""

    content: ContentStore
    blobs: BlobStore
    lease: Held
    options: ConvertOptions
    progress: Sink = null_sink
    find_labelled: LabelLookup | None = None
    workers: int = field(default_factory=_default_workers)
    result: Converted = field(init=False, default_factory=lambda: Converted(Descriptor("", "", 0)))
    _layers: dict[str, LayerBlob | None] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.options.check()
        self.walker = Walker(self.content.read_json, self.content.exists)
        self.written = Walker(RawContent(self.blobs).read_json, self.blobs.exists)  # reads what this wrote

    # -- the whole image ----------------------------------------------------------------------
    def convert(self, name: str, target: Descriptor) -> Converted:
        selection = self.options.selection()
        matcher = selection.selected()
        try:
            needed: dict[str, int] = {}
            collect_blobs(self.content, self.walker, target, selection, needed, name)
            self.lease.contents(needed)  # what the new image shares with its source stays
            self._convert_layers(self._layer_jobs(target, matcher))
            new_target = self._document(target, matcher)
            collect_blobs(RawContent(self.blobs), self.written, new_target, selection, self.result.blobs, name)
        except CtrpyError as e:
            raise e.within(f"image {name}") from None
        self.result.target = new_target
        return self.result

    def _layer_jobs(self, target: Descriptor, matcher: Matcher) -> dict[str, tuple[Descriptor, str]]:
        """layer digest -> (its descriptor, its diffID), for every image manifest selected."""
        jobs: dict[str, tuple[Descriptor, str]] = {}
        for item in self.walker.content(target, matcher):
            d = item.descriptor
            if not mediatypes.is_manifest(d.media_type) or not self.walker.exists(d.digest):
                continue
            m = self.walker.manifest(d)
            if not m.is_image:
                continue
            diff_ids = self.walker.config(m.config).diff_ids
            layers = [layer for layer in m.layers if mediatypes.is_layer(layer.media_type)]
            if len(layers) != len(diff_ids):
                raise InvalidArchive(
                    f"manifest {d.digest} lists {len(layers)} layers, its config {len(diff_ids)} diff_ids"
                )
            for layer, diff_id in zip(layers, diff_ids, strict=True):
                jobs.setdefault(layer.digest, (layer, diff_id))
        return jobs

    def _convert_layers(self, jobs: dict[str, tuple[Descriptor, str]]) -> None:
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="ctrpy-convert") as pool:
            futures: dict[str, Future[LayerBlob | None]] = {
                dgst: pool.submit(self._layer, desc, diff_id) for dgst, (desc, diff_id) in jobs.items()
            }
            try:
                for dgst, future in futures.items():  # the first failure in layer order wins
                    self._layers[dgst] = future.result()
            except BaseException:
                for future in futures.values():
                    future.cancel()
                raise
        for blob in self._layers.values():
            if blob is not None and blob.compression is not Compression.NONE:
                self.result.labels.setdefault(blob.digest, {})[mediatypes.LABEL_UNCOMPRESSED] = blob.diff_id

    # -- one layer ---------------------------------------------------------------------------
    def _layer(self, desc: Descriptor, diff_id: str) -> LayerBlob | None:
        """The layer as it is after the conversion; None when it stays as it is."""
        wanted = self.options.layers
        if wanted is None or desc.media_type in mediatypes.NON_DISTRIBUTABLE or desc.urls:
            return None
        current = compression_of(desc.media_type)
        if current is None:
            raise UnsupportedFormat(f"layer {desc.digest} is {desc.media_type!r}, which ctrpy cannot convert")
        level = self.options.level
        if wanted is current and (level is None or wanted is Compression.NONE):
            return None
        found = self._reuse(diff_id, wanted) if level is None else None
        if found is None:
            try:
                found = write_layer(
                    self.blobs, self._decompressed(desc), wanted, level=level, lease=self.lease,
                    expected_diff_id=diff_id,
                )
            except CtrpyError as e:
                raise e.within(f"layer {desc.digest}") from None
            if found.new:
                self.result.written.append(found.digest)
        self.progress(BlobStored(found.digest, found.size, f"layer {diff_id}", new=found.new))
        return found

    def _reuse(self, diff_id: str, wanted: Compression) -> LayerBlob | None:
        """A stored blob that already is the layer in the wanted form."""
        if wanted is Compression.NONE:
            self.lease.content(diff_id)  # held before we look
            if self.blobs.exists(diff_id):
                return LayerBlob(diff_id, self.blobs.size(diff_id), diff_id, wanted, False)
            return None
        if self.find_labelled is None:
            return None
        candidates = self.find_labelled(mediatypes.LABEL_UNCOMPRESSED, diff_id)
        self.lease.contents(candidates)
        return reuse_compressed(self.blobs, candidates, diff_id, [wanted])

    def _decompressed(self, desc: Descriptor) -> Callable[[Writable], None]:
        def produce(out: Writable) -> None:
            with self.content.open(desc.digest) as raw:
                _kind, stream = open_decompressed(cast(BinaryIO, raw))
                while chunk := stream.read(CHUNK):
                    out.write(chunk)
                while raw.read(CHUNK):  # verify the stored blob to its last byte
                    pass

        return produce

    # -- documents ---------------------------------------------------------------------------
    def _media_type(self, media_type: str) -> str:
        return DOCKER_TO_OCI.get(media_type, media_type) if self.options.to_oci else media_type

    def _document(self, desc: Descriptor, matcher: Matcher) -> Descriptor:
        """``desc`` as it is after the conversion (``desc`` itself when nothing changed)."""
        if mediatypes.is_index(desc.media_type):
            return self._index(desc, matcher)
        if mediatypes.is_manifest(desc.media_type):
            return self._manifest(desc)
        return desc

    def _index(self, desc: Descriptor, matcher: Matcher) -> Descriptor:
        doc = self.walker.read_json(desc.digest)
        entries = self.walker.index(desc)
        media_type = self._media_type(desc.media_type)
        changed = media_type != desc.media_type
        kept: list[Any] = []
        for raw, entry in zip(doc["manifests"], entries, strict=True):
            if entry.platform is not None and not matcher.match(entry.platform):
                changed = True  # a platform not selected
                continue
            new = self._document(entry, matcher) if mediatypes.is_known(entry.media_type) else entry
            if (new.media_type, new.digest) != (entry.media_type, entry.digest):
                changed = True
                raw = _with(raw, new)
            kept.append(raw)
        if not changed:
            return desc
        changes: dict[str, Any] = {"manifests": kept}
        if "mediaType" in doc or media_type != desc.media_type:
            changes["mediaType"] = media_type
        return self._write(_rewritten(doc, changes), media_type, desc)

    def _manifest(self, desc: Descriptor) -> Descriptor:
        m = self.walker.manifest(desc)
        if not m.is_image:
            return desc  # an artifact: carried as it is
        doc = self.walker.read_json(desc.digest)
        media_type = self._media_type(desc.media_type)
        docker = not self.options.to_oci and media_type == mediatypes.DOCKER_MANIFEST
        config = Descriptor(self._media_type(m.config.media_type), m.config.digest, m.config.size)
        layers: list[Any] = []
        for raw, layer in zip(doc["layers"], m.layers, strict=True):
            blob = self._layers.get(layer.digest)
            if blob is None:
                new = Descriptor(self._media_type(layer.media_type), layer.digest, layer.size)
            else:
                new = Descriptor(blob.media_type(docker=docker), blob.digest, blob.size)
            layers.append(_with(raw, new))
        changes: dict[str, Any] = {"config": _with(doc["config"], config), "layers": layers}
        if "mediaType" in doc or media_type != desc.media_type:
            changes["mediaType"] = media_type
        new_doc = _rewritten(doc, changes)
        if new_doc == doc:
            return desc
        return self._write(new_doc, media_type, desc)

    def _write(self, doc: dict[str, Any], media_type: str, old: Descriptor) -> Descriptor:
        data = json_bytes(doc)
        dgst = digest.of_bytes(data)
        with self.blobs.writer(dgst, len(data), self.lease) as w:
            w.write(data)
            w.commit()
        if not w.existed:
            self.result.written.append(dgst)
        new = Descriptor(media_type, dgst, len(data), old.annotations, old.platform, old.urls)
        self.result.labels.setdefault(dgst, {}).update(self.written.reference_labels(new))
        self.progress(BlobStored(dgst, len(data), "index" if mediatypes.is_index(media_type) else "manifest",
                                 new=not w.existed))
        return new
