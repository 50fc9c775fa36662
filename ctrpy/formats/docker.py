"""``docker.v1.2`` (alias ``docker.v1.1``): archives written by ``docker save``, ``podman save``
and ``skopeo copy ... docker-archive:``.

What the archive holds, by writer:

- classic ``docker save`` (docker < 25): ``<v1id>/layer.tar`` (later duplicates are symlinks to
  the first copy), ``<v1id>/json``, ``<v1id>/VERSION``, the config as ``<hex>.json``,
  ``manifest.json`` and ``repositories``;
- docker >= 25: an OCI image layout plus ``manifest.json`` naming ``blobs/sha256/<hex>`` paths
  (``--format auto`` reads these as OCI; ``--format docker.v1.2`` reads ``manifest.json``);
- ``podman save [-m]`` / skopeo: layers as ``<hex>.tar``, config ``<hex>.json``, legacy
  ``<v1id>/layer.tar`` symlinks, ``manifest.json`` (``RepoTags`` always a list).

Only ``manifest.json`` (``[{"Config", "RepoTags", "Layers"}]``) is authoritative; the legacy
``<v1id>/json`` and ``repositories`` files are ignored.  The archive is read once
(:func:`ctrpy.formats.reader.read_archive`), then every image is resolved from what was stored.

**The manifests written are Docker schema2** (``application/vnd.docker.distribution.manifest.v2+json``,
config ``application/vnd.docker.container.image.v1+json``, layers
``application/vnd.docker.image.rootfs.diff.tar[.gzip|.zstd]``), for three reasons:

1. the config of a docker archive *is* a Docker image config; calling it an OCI config would
   relabel bytes we did not write;
2. it is what containerd writes for the same archive, byte for byte for uncompressed and gzip
   layers (same fields, same order, compact JSON), so a ctrpy import and a ``ctr images import``
   of one archive give the same manifest digests, and ``images ls`` shows the TYPE ctr users
   expect;
3. every peer we interoperate with (containerd, skopeo, podman, docker) reads schema2.

Where we deliberately differ from containerd: a zstd layer is labelled
``application/vnd.docker.image.rootfs.diff.tar.zstd`` (containerd's own name for it) instead of
containerd 1.6's ``...tar.gzip``, because the media type must say what the bytes are.

Every compressed layer's diffID is verified by decompressing it, and the blob is labelled
``containerd.io/uncompressed=<diffID>`` (as containerd's unpacker does).  An uncompressed layer
the store already holds as a gzip blob so labelled (an image pulled or imported before, once
verified) is replaced by that blob, as containerd's importer does; with ``--compress-blobs`` the
others are gzipped.  The uncompressed originals are then held by nothing
(``ImportResult.replaced``): the client frees them when the import ends.

The manifest JSON is deterministic (fixed key order, compact separators), so importing the same
archive twice yields the same digests.  With several images an OCI index for the whole archive
is written too (one entry per tag, annotated like containerd's importer does); ``--index-name``
records an image for it (and writes it for a single image as well).
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass, field
from typing import Any, BinaryIO, ClassVar

from ctrpy.archive.compression import Compression, compress_stream, sniff
from ctrpy.content.store import parse_json
from ctrpy.errors import (
    DigestMismatch,
    InvalidArchive,
    InvalidArgument,
    PlatformNotFound,
    UnsupportedFormat,
)
from ctrpy.formats.base import ImportContext, ImportedImage, ImportResult, check_complete
from ctrpy.formats.reader import ArchiveContents, read_archive
from ctrpy.images.walk import parse_config
from ctrpy.layers import reuse_compressed, uncompressed_digest
from ctrpy.oci import Descriptor, Platform, digest, mediatypes, reference
from ctrpy.progress import BlobStored, Warn
from ctrpy.streams import json_bytes

MANIFEST_JSON = "manifest.json"

LAYER_MEDIA_TYPES: dict[Compression, str] = {
    Compression.NONE: mediatypes.DOCKER_LAYER,
    Compression.GZIP: mediatypes.DOCKER_LAYER_GZIP,
    Compression.ZSTD: mediatypes.DOCKER_LAYER_ZSTD,
}

# docker load also takes these; say so instead of reporting a diff_id mismatch
_UNSUPPORTED = ((b"\xfd7zXZ\x00", "xz"), (b"BZh", "bzip2"))

_HEX_NAME = re.compile(r"(?:.*/)?([0-9a-f]{64})(?:\.json)?")


def _today() -> str:
    """The date in ``import-<date>@<digest>`` names (local time, as ctr does)."""
    return datetime.date.today().isoformat()


# --------------------------------------------------------------------------- manifest.json
@dataclass
class ArchiveEntry:
    """One item of ``manifest.json``."""

    index: int
    config: str
    repo_tags: list[str]
    layers: list[str]

    @property
    def where(self) -> str:
        return f"manifest.json[{self.index}]"

    @property
    def label(self) -> str:
        """How messages name this image: its first tag, else its place in manifest.json."""
        return self.repo_tags[0] if self.repo_tags else self.where


def parse_manifest_json(obj: Any) -> list[ArchiveEntry]:
    """Schema-check ``manifest.json``; ``RepoTags`` null or missing means untagged."""
    if not isinstance(obj, list):
        raise InvalidArchive("manifest.json: not a JSON list")
    if not obj:
        raise InvalidArchive("manifest.json lists no images")
    out: list[ArchiveEntry] = []
    for i, item in enumerate(obj):
        where = f"manifest.json[{i}]"
        if not isinstance(item, dict):
            raise InvalidArchive(f"{where}: not a JSON object")
        config = item.get("Config")
        if not isinstance(config, str) or not config:
            raise InvalidArchive(f"{where}: Config must be a file name")
        tags = item.get("RepoTags")
        if tags is None:
            tags = []
        if not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags):
            raise InvalidArchive(f"{where}: RepoTags must be a list of names or null")
        layers = item.get("Layers")
        if not isinstance(layers, list) or not all(isinstance(x, str) and x for x in layers):
            raise InvalidArchive(f"{where}: Layers must be a list of file names")
        out.append(ArchiveEntry(i, config, list(tags), list(layers)))
    return out


def normalize_tag(tag: str, where: str) -> str:
    """A RepoTags entry as a full name: ``busybox:latest`` -> ``docker.io/library/busybox:latest``."""
    try:
        return reference.normalize(tag)
    except InvalidArgument as e:
        raise InvalidArchive(f"{where}: RepoTags: {e}") from e


def names_for(entry: ArchiveEntry, manifest_digest: str, ctx: ImportContext) -> list[str]:
    """The image names one manifest.json item gets.

    Tagged: the normalised tags (plus ``BASE@digest`` with ``--digests``, unless
    ``--skip-digest-for-named``).  Untagged: ``BASE@digest``, where BASE is ``--base-name``
    when given, else ``import-<YYYY-MM-DD>`` (ctr's prefix); an untagged image is never dropped.
    """
    opts = ctx.options
    base = opts.base_name or f"import-{_today()}"
    with_digest = reference.with_digest(base, manifest_digest)
    named = [normalize_tag(t, entry.where) for t in entry.repo_tags]
    if not named:
        return [with_digest]
    if opts.digests and not opts.skip_digest_for_named:
        return [*named, with_digest]
    return named


# --------------------------------------------------------------------------- the import
@dataclass
class _Layer:
    member: str
    descriptor: Descriptor
    diff_id: str


@dataclass
class _Resolved:
    entry: ArchiveEntry
    config: Descriptor
    platform: Platform
    layers: list[_Layer]
    manifest: Descriptor = field(init=False)


class DockerImporter:
    """Resolves the items of ``manifest.json`` against the blobs ``read_archive`` stored."""

    def __init__(self, contents: ArchiveContents, ctx: ImportContext):
        self.contents = contents
        self.ctx = ctx
        self.result = ImportResult()
        self._diff_ids: dict[str, str] = {}  # verified: blob digest -> diffID
        self._compressed: dict[str, Descriptor] = {}  # diffID -> gzip blob (--compress-blobs)
        self._members: dict[str, tuple[str, int]] = {}

    # -- members --------------------------------------------------------------------------
    def member(self, name: str, kind: str, entry: ArchiveEntry) -> tuple[str, int]:
        """(digest, size) of archive member ``name`` (links followed), stored if still in memory."""
        cached = self._members.get(name)
        if cached is not None:
            return cached
        dgst = self.contents.blob_digest(name)
        if dgst is not None:
            found = (dgst, self.contents.sizes[dgst])
        else:
            data = self.contents.metadata_bytes(name)
            if data is None:
                raise InvalidArchive(f"{entry.where}: archive is missing {kind} {name!r} of image {entry.label}")
            found = self.store_bytes(data)
        self._members[name] = found
        return found

    def store_bytes(self, data: bytes) -> tuple[str, int]:
        dgst = digest.of_bytes(data)
        with self.ctx.writer(dgst, len(data)) as w:
            w.write(data)
            return w.commit()

    # -- config -----------------------------------------------------------------------------
    def config(self, entry: ArchiveEntry) -> tuple[Descriptor, Platform, list[str]]:
        name = entry.config
        what = f"image config {name!r} of image {entry.label}"
        dgst, size = self.member(name, "image config", entry)
        named = _HEX_NAME.fullmatch(name)
        if named and dgst != "sha256:" + named.group(1):
            raise DigestMismatch("sha256:" + named.group(1), dgst, what)
        obj = parse_json(self.ctx.blobs.read_small(dgst, what=what), what)
        cfg = parse_config(obj, name)
        platform = cfg.platform
        if not platform.is_known():
            raise InvalidArchive(f"{what}: unknown platform {platform}")
        desc = Descriptor(mediatypes.DOCKER_CONFIG, dgst, size)
        return desc, platform.normalized(), cfg.diff_ids

    # -- layers -----------------------------------------------------------------------------
    def layer(self, entry: ArchiveEntry, i: int, name: str, diff_id: str) -> _Layer:
        dgst, size = self.member(name, "layer", entry)
        what = f"layer {name!r} of image {entry.label}"
        with self.ctx.blobs.open(dgst) as f:
            head = f.read(6)
        for magic, algo in _UNSUPPORTED:
            if head.startswith(magic):
                raise UnsupportedFormat(f"{what} is {algo}-compressed; ctrpy reads uncompressed, gzip and zstd layers")
        kind = sniff(head)
        if kind is Compression.NONE:
            if dgst != diff_id:
                raise DigestMismatch(diff_id, dgst, f"{what} (rootfs.diff_ids[{i}])")
            found = self.compressed(name, diff_id, create=self.ctx.options.compress_blobs)
            if found is not None:  # the uncompressed original is left to the collector
                self.result.replaced.append(dgst)
                return _Layer(name, found, diff_id)
        else:
            actual = self.diff_id_of(dgst)
            if actual != diff_id:
                raise DigestMismatch(diff_id, actual, f"the uncompressed {what} (rootfs.diff_ids[{i}])")
            self.result.blob_labels.setdefault(dgst, {})[mediatypes.LABEL_UNCOMPRESSED] = diff_id
        return _Layer(name, Descriptor(LAYER_MEDIA_TYPES[kind], dgst, size), diff_id)

    def diff_id_of(self, dgst: str) -> str:
        """sha256 of the decompressed bytes of a stored (compressed) blob; computed once."""
        known = self._diff_ids.get(dgst)
        if known is None:
            with self.ctx.blobs.open(dgst) as f:
                known = uncompressed_digest(f)
            self._diff_ids[dgst] = known
        return known

    def compressed(self, name: str, diff_id: str, *, create: bool) -> Descriptor | None:
        """A gzip blob of the uncompressed layer ``diff_id``: one the store already holds
        (containerd's importer does the same), else with ``create`` a new one."""
        found = self._compressed.get(diff_id) or self._reuse(diff_id)
        if found is None:
            if not create:
                return None
            with self.ctx.blobs.open(diff_id) as src, self.ctx.writer() as w:
                compress_stream(src, w, Compression.GZIP)
                dgst, size = w.commit()
            self.ctx.progress(BlobStored(dgst, size, name, new=True))
            found = Descriptor(mediatypes.DOCKER_LAYER_GZIP, dgst, size)
        self._compressed[diff_id] = found
        self.result.blob_labels.setdefault(found.digest, {})[mediatypes.LABEL_UNCOMPRESSED] = diff_id
        return found

    def _reuse(self, diff_id: str) -> Descriptor | None:
        """A stored gzip blob labelled with ``diff_id`` (any namespace), once verified.

        Only gzip: a docker schema2 manifest with zstd layers is not read by containerd 1.6,
        and what the store holds must not change what kind of image an archive gives."""
        lookup = self.ctx.find_labelled
        if lookup is None:
            return None
        candidates = lookup(mediatypes.LABEL_UNCOMPRESSED, diff_id)
        for dgst in candidates:
            self.ctx.hold(dgst)  # held before it is looked at: a collection now keeps it
        found = reuse_compressed(self.ctx.blobs, candidates, diff_id, [Compression.GZIP])
        if found is None:
            return None
        self._diff_ids[found.digest] = diff_id
        return Descriptor(LAYER_MEDIA_TYPES[found.compression], found.digest, found.size)

    # -- images -----------------------------------------------------------------------------
    def resolve(self, entry: ArchiveEntry) -> _Resolved:
        config, platform, diff_ids = self.config(entry)
        if len(entry.layers) != len(diff_ids):
            raise InvalidArchive(
                f"{entry.where}: image {entry.label} lists {len(entry.layers)} layers, "
                f"but its config has {len(diff_ids)} diff_ids"
            )
        layers = [self.layer(entry, i, n, d) for i, (n, d) in enumerate(zip(entry.layers, diff_ids, strict=True))]
        r = _Resolved(entry, config, platform, layers)
        manifest = {
            "schemaVersion": 2,
            "mediaType": mediatypes.DOCKER_MANIFEST,
            "config": config.to_json(),
            "layers": [layer.descriptor.to_json() for layer in layers],
        }
        dgst, size = self.store_bytes(json_bytes(manifest))
        r.manifest = Descriptor(mediatypes.DOCKER_MANIFEST, dgst, size, platform=platform)
        self._record(config, *(layer.descriptor for layer in layers), r.manifest)
        return r

    def _record(self, *descs: Descriptor) -> None:
        for d in descs:
            self.result.blobs[d.digest] = d.size

    def run(self) -> ImportResult:
        entries = parse_manifest_json(self.contents.json(MANIFEST_JSON))
        resolved = [self.resolve(e) for e in entries]
        opts = self.ctx.options
        named: dict[str, Descriptor] = {}
        for r in resolved:
            names = names_for(r.entry, r.manifest.digest, self.ctx)
            if not opts.matcher.match(r.platform):
                self.ctx.progress(Warn(
                    f"skipping {names[0]}: the image is for {r.platform}, not {opts.matcher.describe()}", "platform"
                ))
                continue
            target = Descriptor(mediatypes.DOCKER_MANIFEST, r.manifest.digest, r.manifest.size)
            for name in names:
                if name in named:
                    if named[name] != target:
                        raise InvalidArchive(f"manifest.json names {name} twice, for different images")
                    continue
                named[name] = target
                self.result.images.append(ImportedImage(name, target))
        if not self.result.images and not opts.index_name:
            raise PlatformNotFound("the archive", opts.matcher.describe(), "image")
        if len(resolved) > 1 or opts.index_name:
            index = self.index(resolved)
            if opts.index_name:
                self.result.images.append(ImportedImage(opts.index_name, index))
        for image in self.result.images:
            check_complete(self.ctx, image, self.result.blobs)
        return self.result

    def index(self, resolved: list[_Resolved]) -> Descriptor:
        """An OCI index of the whole archive: one entry per tag (containerd's annotations)."""
        manifests: list[dict[str, Any]] = []
        for r in resolved:
            if not r.entry.repo_tags:
                manifests.append(r.manifest.to_json())
            for tag in r.entry.repo_tags:
                full = normalize_tag(tag, r.entry.where)
                ann = {
                    mediatypes.ANNOTATION_IMAGE_NAME: full,
                    mediatypes.ANNOTATION_REF_NAME: reference.split_tag(full)[1] or full,
                }
                m = r.manifest
                manifests.append(Descriptor(m.media_type, m.digest, m.size, ann, m.platform).to_json())
        index = {"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX, "manifests": manifests}
        dgst, size = self.store_bytes(json_bytes(index))
        desc = Descriptor(mediatypes.OCI_INDEX, dgst, size)
        self._record(desc)
        return desc


def import_docker_save(contents: ArchiveContents, ctx: ImportContext) -> ImportResult:
    """Import already-read archive contents as a docker-save archive (``manifest.json``)."""
    if not contents.has(MANIFEST_JSON):
        raise InvalidArchive("not a docker-save archive: the archive has no manifest.json")
    return DockerImporter(contents, ctx).run()


class DockerFormat:
    """The ``docker.v1.2`` importer (alias ``docker.v1.1``)."""

    name: ClassVar[str] = "docker.v1.2"

    def import_stream(self, stream: BinaryIO, ctx: ImportContext) -> ImportResult:
        return import_docker_save(read_archive(stream, ctx), ctx)
