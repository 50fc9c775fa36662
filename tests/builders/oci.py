"""OCI images, indexes and image-layout archives built in code (valid or precisely broken).

JSON is serialised like Go's ``encoding/json`` (compact, struct field order, ``<>&``
escaped), tar members like containerd's exporter (sorted, mtime 0, uid/gid 0, blobs 0444).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import shutil
import tempfile
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from .layers import (
    CHUNK,
    Compression,
    Entry,
    TarStream,
    Writable,
    compress,
    compressing_writer,
    decompress,
    layer_tar,
    sha256_digest,
)

__all__ = [
    "ANNOTATION_IMAGE_NAME",
    "ANNOTATION_REF_NAME",
    "LAYER_MEDIA_TYPES",
    "MT_DOCKER_CONFIG",
    "MT_DOCKER_LAYER",
    "MT_DOCKER_LAYER_GZIP",
    "MT_DOCKER_LAYER_ZSTD",
    "MT_DOCKER_LIST",
    "MT_DOCKER_MANIFEST",
    "MT_OCI_CONFIG",
    "MT_OCI_INDEX",
    "MT_OCI_LAYER",
    "MT_OCI_LAYER_GZIP",
    "MT_OCI_LAYER_ZSTD",
    "MT_OCI_MANIFEST",
    "AnyBlob",
    "Blob",
    "BuiltImage",
    "FileBlob",
    "GeneratedLayer",
    "Image",
    "IndexBlob",
    "Layer",
    "LayerSpec",
    "LayoutOrder",
    "MediaFamily",
    "OCILayout",
    "archive_bytes",
    "big_image",
    "chain_id",
    "chain_ids",
    "descriptor",
    "digest_hex",
    "familiarize_ref",
    "go_json",
    "index_of",
    "normalize_ref",
    "sorted_keys",
    "split_tag",
    "write_archive",
]

# ---------------------------------------------------------------------------------------------
# media types and annotations

MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
MT_OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MT_OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MT_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
MT_DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
MT_DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MT_DOCKER_LAYER_ZSTD = "application/vnd.docker.image.rootfs.diff.tar.zstd"

ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
ANNOTATION_IMAGE_NAME = "io.containerd.image.name"

MediaFamily = Literal["oci", "docker"]
LayoutOrder = Literal["sorted", "index-first", "index-last", "blobs-reverse"]

LAYER_MEDIA_TYPES: dict[tuple[str, str], str] = {
    ("oci", "none"): MT_OCI_LAYER,
    ("oci", "gzip"): MT_OCI_LAYER_GZIP,
    ("oci", "zstd"): MT_OCI_LAYER_ZSTD,
    ("docker", "none"): MT_DOCKER_LAYER,
    ("docker", "gzip"): MT_DOCKER_LAYER_GZIP,
    ("docker", "zstd"): MT_DOCKER_LAYER_ZSTD,
}

DEFAULT_CREATED = "2020-09-13T12:26:40Z"  # 1_600_000_000
DEFAULT_ENV = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]


# ---------------------------------------------------------------------------------------------
# JSON and digests


def go_json(obj: Any) -> bytes:
    """JSON as Go's ``json.Marshal`` writes it: compact, UTF-8, ``<``/``>``/``&`` escaped.

    Key order is the dict's order (build dicts in Go struct field order; Go sorts map keys:
    use :func:`sorted_keys` for those).
    """
    s = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        s = s.replace(ch, esc)
    s = s.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return s.encode()


def sorted_keys(obj: Any) -> Any:
    """Recursively sort dict keys (how Go marshals ``map[string]...``)."""
    if isinstance(obj, dict):
        return {k: sorted_keys(obj[k]) for k in sorted(obj)}
    if isinstance(obj, list):
        return [sorted_keys(v) for v in obj]
    return obj


def digest_hex(digest: str) -> str:
    return digest.split(":", 1)[1]


def chain_ids(diff_ids: Sequence[str]) -> list[str]:
    """chainID of every prefix: ``chain(0) = diff(0)``, ``chain(n) = sha256(chain(n-1) + " " + diff(n))``."""
    out: list[str] = []
    for d in diff_ids:
        out.append(d if not out else sha256_digest(f"{out[-1]} {d}".encode()))
    return out


def chain_id(diff_ids: Sequence[str]) -> str:
    """chainID of the whole stack (the last of :func:`chain_ids`)."""
    return chain_ids(diff_ids)[-1]


def _apply_extra(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` updated with ``extra``; a ``None`` value deletes the key."""
    out = dict(base)
    for k, v in extra.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = v
    return out


def descriptor(
    media_type: str,
    digest: str,
    size: int,
    *,
    annotations: Mapping[str, str] | None = None,
    platform: Mapping[str, Any] | None = None,
    urls: Sequence[str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A descriptor dict in Go's ``ocispec.Descriptor`` field order."""
    d: dict[str, Any] = {"mediaType": media_type, "digest": digest, "size": size}
    if urls:
        d["urls"] = list(urls)
    if annotations:
        d["annotations"] = dict(annotations)
    if platform:
        d["platform"] = dict(platform)
    return _apply_extra(d, extra or {})


# ---------------------------------------------------------------------------------------------
# blobs


class _Addressed:
    """What every blob kind answers from its ``media_type``, ``digest`` and ``size``."""

    media_type: str
    digest: str
    size: int

    @property
    def hex(self) -> str:
        return digest_hex(self.digest)

    def descriptor(
        self,
        annotations: Mapping[str, str] | None = None,
        *,
        platform: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        return descriptor(self.media_type, self.digest, self.size, annotations=annotations, platform=platform)


@dataclass(frozen=True)
class Blob(_Addressed):
    """Bytes with a media type; addressed by ``sha256:<hex>`` of the bytes."""

    media_type: str
    data: bytes

    @cached_property
    def digest(self) -> str:
        return sha256_digest(self.data)

    @property
    def size(self) -> int:
        return len(self.data)

    def chunks(self) -> Iterator[bytes]:
        for i in range(0, len(self.data), CHUNK):
            yield self.data[i : i + CHUNK]

    def json(self) -> Any:
        return json.loads(self.data)


@dataclass(frozen=True)
class FileBlob(_Addressed):
    """A blob kept in a file (large generated layers); streamed, never loaded whole."""

    media_type: str
    path: str
    digest: str
    size: int
    owner: object = field(default=None, compare=False, repr=False)  # keeps the file alive

    @property
    def data(self) -> bytes:
        return Path(self.path).read_bytes()

    def chunks(self) -> Iterator[bytes]:
        with Path(self.path).open("rb") as f:
            while chunk := f.read(CHUNK):
                yield chunk


AnyBlob = Blob | FileBlob


@dataclass(frozen=True)
class BuiltImage:
    """The blobs of one image, built: manifest -> config + layers."""

    manifest: Blob
    config: Blob
    layers: tuple[AnyBlob, ...]
    diff_ids: tuple[str, ...]
    platform: dict[str, Any]

    def blobs(self) -> list[AnyBlob]:
        return [self.manifest, self.config, *self.layers]


@dataclass(frozen=True)
class IndexBlob(Blob):
    """An image index / manifest list blob, carrying the blobs it reaches (for layouts)."""

    descendants: tuple[AnyBlob, ...] = ()
    images: tuple[BuiltImage, ...] = ()

    def blobs(self) -> list[AnyBlob]:
        return [self, *self.descendants]


# ---------------------------------------------------------------------------------------------
# layers of an image


@dataclass
class Layer:
    """A layer with explicit control (plain ``list[Entry]`` or ``bytes`` layers use the image's
    settings).

    ``content``: entries, or the uncompressed tar bytes. ``compression``: overrides the
    image's. ``blob``: the exact blob bytes to ship (e.g. garbage, or a different compression
    than the media type says); ``content`` then only feeds the diffID (if ``content`` is None
    the diffID is the sha256 of the decompressed blob). ``media_type``/``diff_id`` override
    what goes into the manifest / config. ``annotations``/``urls`` go into the descriptor.
    """

    content: Sequence[Entry] | bytes | None = None
    compression: Compression | None = None
    media_type: str | None = None
    diff_id: str | None = None
    blob: bytes | None = None
    annotations: dict[str, str] | None = None
    urls: list[str] | None = None


@dataclass
class _BigFile:
    name: str
    size: int


class GeneratedLayer:
    """A large reproducible layer of random files, materialised lazily into a temp file (one
    per compression), so archives can be streamed to disk without holding it in memory."""

    def __init__(
        self,
        files: Sequence[_BigFile],
        dirs: Sequence[str],
        seed: int,
        *,
        compressible: float = 0.1,
        level: int | None = None,
        workdir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.files = list(files)
        self.dirs = list(dirs)
        self.seed = seed
        self.compressible = compressible
        self.level = level
        self.workdir = workdir
        self._built: dict[str, tuple[FileBlob, str]] = {}

    @property
    def uncompressed_payload(self) -> int:
        return sum(f.size for f in self.files)

    def entries(self) -> Iterator[Entry]:
        for d in self.dirs:
            yield Entry(d, "dir", mode=0o755)
        for i, f in enumerate(self.files):
            yield Entry(
                f.name, "file", mode=0o644, source=_RandomSource(f.size, self.seed, i, self.compressible)
            )

    def materialize(self, compression: Compression, family: MediaFamily = "oci") -> tuple[FileBlob, str]:
        """(blob on disk, diffID) for this compression; generated once."""
        if compression not in self._built:
            fd, path = tempfile.mkstemp(prefix="ctrpy-big-layer-", suffix=".blob", dir=self.workdir)
            with os.fdopen(fd, "wb") as raw:
                blob_hash = _HashingWriter(raw)
                comp = compressing_writer(blob_hash, compression, level=self.level)
                tar_hash = _HashingWriter(comp)
                ts = TarStream(tar_hash)
                for e in self.entries():
                    ts.add(e)
                ts.close()
                comp.close()
            holder = _TempFile(path)
            blob = FileBlob(
                LAYER_MEDIA_TYPES[("oci", compression)],
                path,
                "sha256:" + blob_hash.h.hexdigest(),
                blob_hash.n,
                holder,
            )
            self._built[compression] = (blob, "sha256:" + tar_hash.h.hexdigest())
        blob, diff = self._built[compression]
        mt = LAYER_MEDIA_TYPES[(family, compression)]
        return FileBlob(mt, blob.path, blob.digest, blob.size, blob.owner), diff


def _unlink(path: str) -> None:
    Path(path).unlink(missing_ok=True)


class _TempFile:
    """Owns a temp file: removed when the last FileBlob/layer referring to it is gone."""

    def __init__(self, path: str) -> None:
        self.path = path
        weakref.finalize(self, _unlink, path)


class _HashingWriter:
    def __init__(self, out: Writable) -> None:
        self.out = out
        self.h = hashlib.sha256()
        self.n = 0

    def write(self, b: bytes, /) -> int:
        self.h.update(b)
        self.n += len(b)
        self.out.write(b)
        return len(b)

    def flush(self) -> None:
        pass


class _RandomSource:
    """Reproducible pseudo-random file content: mostly random bytes, a ``compressible``
    fraction of zeros per 64 KiB chunk."""

    def __init__(self, size: int, seed: int, index: int, compressible: float) -> None:
        self._size = size
        self.seed = seed
        self.index = index
        self.compressible = compressible

    @property
    def size(self) -> int:
        return self._size

    def chunks(self) -> Iterator[bytes]:
        rng = random.Random(self.seed * 1_000_003 + self.index)
        left = self._size
        step = 1 << 16
        while left > 0:
            n = min(step, left)
            z = int(n * self.compressible)  # the same fraction of every chunk, short ones too
            yield rng.randbytes(n - z) + bytes(z)
            left -= n


LayerSpec = Sequence[Entry] | bytes | Layer | GeneratedLayer


# ---------------------------------------------------------------------------------------------
# images


def _platform(os_: str, arch: str, variant: str | None, os_version: str | None) -> dict[str, Any]:
    p: dict[str, Any] = {"architecture": arch, "os": os_}
    if os_version:
        p["os.version"] = os_version
    if variant:
        p["variant"] = variant
    return p


@dataclass
class Image:
    """One single-platform image.

    ``layers``: each a list of entries or uncompressed tar bytes (compressed with
    ``compression``), a :class:`Layer` for exact control, or a :class:`GeneratedLayer`.
    ``media_types="docker"`` gives a docker schema2 manifest with docker media types.
    ``config_extra`` / ``manifest_extra`` update the top-level JSON objects (``None`` deletes a
    key); ``config_raw`` / ``manifest_raw`` replace the blobs' bytes outright.
    """

    layers: list[LayerSpec] = field(default_factory=list)
    compression: Compression = "gzip"
    os: str = "linux"
    architecture: str = "amd64"
    variant: str | None = None
    config_extra: dict[str, Any] = field(default_factory=dict)
    media_types: MediaFamily = "oci"
    os_version: str | None = None
    created: str = DEFAULT_CREATED
    compression_level: int | None = None
    manifest_annotations: dict[str, str] | None = None
    manifest_extra: dict[str, Any] = field(default_factory=dict)
    config_raw: bytes | None = None
    manifest_raw: bytes | None = None

    # -- building ---------------------------------------------------------------------------

    def platform(self) -> dict[str, Any]:
        return _platform(self.os, self.architecture, self.variant, self.os_version)

    def _layer(
        self, spec: LayerSpec, compression: Compression | None, family: MediaFamily
    ) -> tuple[AnyBlob, str, dict[str, Any]]:
        comp: Compression = compression or self.compression
        if isinstance(spec, GeneratedLayer):
            fb, diff = spec.materialize(comp, family)
            return fb, diff, fb.descriptor()
        if not isinstance(spec, Layer):
            spec = Layer(content=spec)
        comp = spec.compression or comp
        tar: bytes | None
        if spec.content is None:
            tar = None
        elif isinstance(spec.content, bytes | bytearray):
            tar = bytes(spec.content)
        else:
            tar = layer_tar(spec.content)
        if spec.blob is not None:
            data = spec.blob
        elif tar is not None:
            data = compress(tar, comp, level=self.compression_level)
        else:
            raise ValueError("Layer needs content or blob")
        if spec.diff_id is not None:
            diff = spec.diff_id
        elif tar is not None:
            diff = sha256_digest(tar)
        else:
            try:
                diff = sha256_digest(decompress(data))
            except Exception:
                diff = sha256_digest(data)
        blob = Blob(spec.media_type or LAYER_MEDIA_TYPES[(family, comp)], data)
        desc = descriptor(
            blob.media_type, blob.digest, blob.size, annotations=spec.annotations, urls=spec.urls
        )
        return blob, diff, desc

    def config_dict(self, diff_ids: Sequence[str]) -> dict[str, Any]:
        cfg: dict[str, Any] = {"created": self.created, "architecture": self.architecture, "os": self.os}
        if self.os_version:
            cfg["os.version"] = self.os_version
        if self.variant:
            cfg["variant"] = self.variant
        cfg["config"] = {"Env": list(DEFAULT_ENV), "Cmd": ["/bin/sh"]}
        cfg["rootfs"] = {"type": "layers", "diff_ids": list(diff_ids)}
        cfg["history"] = [
            {"created": self.created, "created_by": f"/bin/sh -c #(nop) layer {i}"}
            for i in range(len(diff_ids))
        ]
        return _apply_extra(cfg, self.config_extra)

    def build(
        self,
        *,
        compression: Compression | None = None,
        media_types: MediaFamily | None = None,
        config_platform: bool = False,
    ) -> BuiltImage:
        """Build all blobs. ``compression`` overrides the image's for layers that do not set
        their own; ``media_types`` overrides the family; ``config_platform`` puts the platform
        into the config descriptor (as Docker 25+ ``docker save`` does)."""
        family: MediaFamily = media_types or self.media_types
        layers: list[AnyBlob] = []
        diffs: list[str] = []
        descs: list[dict[str, Any]] = []
        for spec in self.layers:
            blob, diff, desc = self._layer(spec, compression, family)
            layers.append(blob)
            diffs.append(diff)
            descs.append(desc)
        config_mt = MT_OCI_CONFIG if family == "oci" else MT_DOCKER_CONFIG
        config_data = self.config_raw if self.config_raw is not None else go_json(self.config_dict(diffs))
        config = Blob(config_mt, config_data)
        platform = self.platform()
        m: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": MT_OCI_MANIFEST if family == "oci" else MT_DOCKER_MANIFEST,
            "config": config.descriptor(platform=platform if config_platform else None),
            "layers": descs,
        }
        if self.manifest_annotations:
            m["annotations"] = dict(self.manifest_annotations)
        m = _apply_extra(m, self.manifest_extra)
        manifest_mt = MT_OCI_MANIFEST if family == "oci" else MT_DOCKER_MANIFEST
        manifest = Blob(manifest_mt, self.manifest_raw if self.manifest_raw is not None else go_json(m))
        return BuiltImage(manifest, config, tuple(layers), tuple(diffs), platform)

    # -- convenience accessors (each builds afresh: build() once when you need several) -----

    def config_blob(self) -> Blob:
        return self.build().config

    def layer_blobs(self) -> list[AnyBlob]:
        return list(self.build().layers)

    def manifest_blob(self) -> Blob:
        return self.build().manifest

    def blobs(self) -> list[AnyBlob]:
        """manifest, config, layers."""
        return self.build().blobs()

    @property
    def diff_ids(self) -> list[str]:
        return list(self.build().diff_ids)

    @property
    def digest(self) -> str:
        """The manifest digest."""
        return self.build().manifest.digest

    def descriptor(
        self,
        annotations: Mapping[str, str] | None = None,
        *,
        platform: bool = True,
    ) -> dict[str, Any]:
        """The manifest descriptor (with the platform unless ``platform=False``)."""
        b = self.build()
        return b.manifest.descriptor(annotations, platform=b.platform if platform else None)


# ---------------------------------------------------------------------------------------------
# indexes


def index_of(
    items: Sequence[Image | BuiltImage | Blob],
    annotations_per_entry: Sequence[Mapping[str, str] | None] | None = None,
    *,
    media_type: Literal["oci", "docker-list"] = "oci",
    annotations: Mapping[str, str] | None = None,
    platforms: Sequence[Mapping[str, Any] | None] | None = None,
    with_media_type: bool = True,
) -> IndexBlob:
    """An image index (``oci``) or docker manifest list (``docker-list``) over images and/or
    nested indexes. Image entries carry their platform (override with ``platforms``; a nested
    index gets none unless given). ``with_media_type=False`` leaves out the index's own
    ``mediaType`` field (optional in OCI)."""
    descs: list[dict[str, Any]] = []
    descendants: list[AnyBlob] = []
    images: list[BuiltImage] = []
    for i, item in enumerate(items):
        ann = annotations_per_entry[i] if annotations_per_entry is not None else None
        plat: Mapping[str, Any] | None
        if isinstance(item, Image):
            item = item.build()
        if isinstance(item, BuiltImage):
            plat = item.platform
            blob: Blob = item.manifest
            descendants.extend(item.blobs())
            images.append(item)
        else:
            plat = None
            blob = item
            if isinstance(item, IndexBlob):
                descendants.extend(item.blobs())
                images.extend(item.images)
            else:
                descendants.append(item)
        if platforms is not None:
            plat = platforms[i]
        descs.append(blob.descriptor(ann, platform=plat))
    mt = MT_OCI_INDEX if media_type == "oci" else MT_DOCKER_LIST
    idx: dict[str, Any] = {"schemaVersion": 2}
    if with_media_type:
        idx["mediaType"] = mt
    idx["manifests"] = descs
    if annotations:
        idx["annotations"] = dict(annotations)
    return IndexBlob(mt, go_json(idx), tuple(_dedup(descendants)), tuple(images))


def _dedup(blobs: Iterable[AnyBlob]) -> list[AnyBlob]:
    seen: dict[str, AnyBlob] = {}
    for b in blobs:
        seen.setdefault(b.digest, b)
    return list(seen.values())


# ---------------------------------------------------------------------------------------------
# references (an independent, minimal docker-style normaliser)


def normalize_ref(ref: str) -> str:
    """``busybox`` -> ``docker.io/library/busybox:latest``; ``x/y:1`` -> ``docker.io/x/y:1``."""
    name, sep, digest = ref.partition("@")
    first, slash, rest = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        domain, path = first, rest
    else:
        domain, path = "docker.io", name
    if domain == "docker.io" and "/" not in path:
        path = "library/" + path
    last = path.rsplit("/", 1)[-1]
    if ":" not in last and not sep:
        path += ":latest"
    return f"{domain}/{path}" + (f"@{digest}" if sep else "")


def familiarize_ref(ref: str) -> str:
    """``docker.io/library/busybox:latest`` -> ``busybox:latest`` (inverse of normalize_ref)."""
    ref = normalize_ref(ref)
    if ref.startswith("docker.io/"):
        ref = ref[len("docker.io/") :]
        if ref.startswith("library/") and "/" not in ref[len("library/") :]:
            ref = ref[len("library/") :]
    return ref


def split_tag(ref: str) -> tuple[str, str]:
    """``name:tag`` -> (name, tag); no tag -> (name, "latest")."""
    head, _, last = ref.rpartition("/")
    if ":" in last:
        base, tag = last.rsplit(":", 1)
        return (f"{head}/{base}" if head else base), tag
    return ref, "latest"


# ---------------------------------------------------------------------------------------------
# writing archives


def _finish_archive(
    entries: Iterable[Entry],
    out: Writable,
    compression: Compression,
) -> None:
    comp = compressing_writer(out, compression)
    ts = TarStream(comp)
    for e in entries:
        ts.add(e)
    ts.close()
    comp.close()


def archive_bytes(
    entries: Iterable[Entry],
    *,
    compression: Compression = "none",
    truncate_at: int | None = None,
) -> bytes:
    """Tar (optionally compressed) of ``entries`` in order; ``truncate_at`` cuts the final bytes
    (negative: drop that many from the end)."""
    buf = io.BytesIO()
    _finish_archive(entries, buf, compression)
    data = buf.getvalue()
    return data if truncate_at is None else data[:truncate_at]


def write_archive(
    path: str | os.PathLike[str],
    entries: Iterable[Entry],
    *,
    compression: Compression = "none",
    truncate_at: int | None = None,
) -> None:
    """Like :func:`archive_bytes` but streamed to a file."""
    with Path(path).open("wb") as f:
        _finish_archive(entries, f, compression)
        if truncate_at is not None:
            size = f.tell()
            f.truncate(truncate_at if truncate_at >= 0 else max(0, size + truncate_at))


def _member(name: str, payload: bytes | AnyBlob, mode: int = 0o444) -> Entry:
    if isinstance(payload, bytes):
        return Entry(name, "file", data=payload, mode=mode, mtime=0)
    if isinstance(payload, Blob):
        return Entry(name, "file", data=payload.data, mode=mode, mtime=0)
    return Entry(name, "file", source=payload, mode=mode, mtime=0)


def _dir_member(name: str) -> Entry:
    return Entry(name.rstrip("/") + "/", "dir", mode=0o755, mtime=0)


class OCILayout:
    """An OCI image layout (``oci-layout``, ``index.json``, ``blobs/sha256/...``).

    ``add_manifest`` adds a top-level ``index.json`` entry for an :class:`Image` (or
    :class:`BuiltImage`), an index from :func:`index_of`, or any :class:`Blob`, with its
    annotations, e.g. ``{"org.opencontainers.image.ref.name": "latest"}`` or
    ``{"io.containerd.image.name": "docker.io/library/x:1"}``. ``extra_files`` are written
    into the archive as they are (name -> bytes).
    """

    def __init__(
        self,
        *,
        layout_version: str = "1.0.0",
        extra_files: Mapping[str, bytes] | None = None,
        index_media_type: bool = True,
        index_annotations: Mapping[str, str] | None = None,
    ) -> None:
        self.layout_version = layout_version
        self.extra_files: dict[str, bytes] = dict(extra_files or {})
        self.index_media_type = index_media_type
        self.index_annotations: dict[str, str] = dict(index_annotations or {})
        self.manifests: list[dict[str, Any]] = []
        self._blobs: dict[str, AnyBlob] = {}
        self._roots: list[BuiltImage | IndexBlob | Blob] = []

    # -- content ------------------------------------------------------------------------------

    def add_manifest(
        self,
        item: Image | BuiltImage | Blob,
        annotations: Mapping[str, str] | None = None,
        *,
        platform: bool = False,
        descriptor_extra: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Add a top-level index entry (and all blobs it reaches); returns the descriptor.
        ``platform=True`` puts the image's platform into the entry."""
        if isinstance(item, Image):
            item = item.build()
        if isinstance(item, BuiltImage):
            blobs = item.blobs()
            desc = item.manifest.descriptor(annotations, platform=item.platform if platform else None)
        else:
            blobs = item.blobs() if isinstance(item, IndexBlob) else [item]
            desc = item.descriptor(annotations)
        desc = _apply_extra(desc, descriptor_extra or {})
        for b in blobs:
            self._blobs.setdefault(b.digest, b)
        self.manifests.append(desc)
        self._roots.append(item)
        return desc

    def add_blob(self, blob: AnyBlob) -> None:
        """Add a blob not referenced from index.json (or referenced in a custom way)."""
        self._blobs.setdefault(blob.digest, blob)

    def blobs(self) -> dict[str, AnyBlob]:
        """digest -> blob, every blob of the layout."""
        return dict(self._blobs)

    def index_json(self) -> bytes:
        idx: dict[str, Any] = {"schemaVersion": 2}
        if self.index_media_type:
            idx["mediaType"] = MT_OCI_INDEX
        idx["manifests"] = self.manifests
        if self.index_annotations:
            idx["annotations"] = self.index_annotations
        return go_json(idx)

    def oci_layout_json(self) -> bytes:
        return go_json({"imageLayoutVersion": self.layout_version})

    def docker_manifest_json(self) -> bytes:
        """``manifest.json`` as ``ctr export`` writes it: per top-level entry, the resolved
        (linux/amd64 or first) image with RepoTags from ``io.containerd.image.name``."""
        items: list[dict[str, Any]] = []
        for desc, root in zip(self.manifests, self._roots, strict=True):
            img = _resolve_image(root)
            if img is None:
                continue
            name = (desc.get("annotations") or {}).get(ANNOTATION_IMAGE_NAME)
            items.append(
                {
                    "Config": f"blobs/sha256/{img.config.hex}",
                    "RepoTags": [familiarize_ref(name)] if name else None,
                    "Layers": [f"blobs/sha256/{digest_hex(b.digest)}" for b in img.layers],
                }
            )
        return go_json(items)

    # -- archives -----------------------------------------------------------------------------

    def entries(
        self,
        *,
        order: LayoutOrder = "sorted",
        omit_blobs: Iterable[str] = (),
        tamper: Mapping[str, bytes] | None = None,
        index_json_override: bytes | None = None,
        oci_layout_override: bytes | None = None,
        extra_entries: Sequence[Entry] = (),
        docker_manifest_json: bool = False,
        include_dirs: bool = True,
        omit_files: Iterable[str] = (),
    ) -> list[Entry]:
        """The tar members, in archive order (see :meth:`tar_bytes`)."""
        omit = set(omit_blobs)
        tamper = dict(tamper or {})
        blob_entries: list[Entry] = []
        for digest, blob in self._blobs.items():
            if digest in omit:
                continue
            name = f"blobs/sha256/{digest_hex(digest)}"
            blob_entries.append(_member(name, tamper.get(digest, blob)))
        for digest, data in tamper.items():
            if digest not in self._blobs and digest not in omit:
                blob_entries.append(_member(f"blobs/sha256/{digest_hex(digest)}", data))
        blob_entries.sort(key=lambda e: e.name)
        dirs = [_dir_member("blobs/"), _dir_member("blobs/sha256/")] if include_dirs else []
        meta = [
            _member(
                "index.json",
                index_json_override if index_json_override is not None else self.index_json(),
                0o644,
            ),
            _member(
                "oci-layout",
                oci_layout_override if oci_layout_override is not None else self.oci_layout_json(),
            ),
        ]
        if docker_manifest_json:
            meta.append(_member("manifest.json", self.docker_manifest_json(), 0o644))
        extra = [_member(n, d, 0o644) for n, d in self.extra_files.items()]

        if order == "sorted":
            out = sorted(dirs + blob_entries + meta + extra, key=lambda e: e.name)
        elif order == "index-first":
            out = sorted(meta, key=lambda e: e.name) + sorted(
                dirs + blob_entries + extra, key=lambda e: e.name
            )
        elif order == "index-last":
            out = sorted(dirs + blob_entries + extra, key=lambda e: e.name) + sorted(
                meta, key=lambda e: e.name != "oci-layout"
            )
            # index.json last, oci-layout first among the metadata
            out = [e for e in out if e.name != "index.json"] + [e for e in out if e.name == "index.json"]
        elif order == "blobs-reverse":
            out = dirs + blob_entries[::-1] + sorted(meta + extra, key=lambda e: e.name)
        else:
            raise ValueError(f"unknown order {order!r}")
        skip = set(omit_files)
        out = [e for e in out if e.name not in skip and e.name.rstrip("/") not in skip]
        return out + list(extra_entries)

    def tar_bytes(
        self, *, compression: Compression = "none", truncate_at: int | None = None, **options: Any
    ) -> bytes:
        """The layout as an (``oci-archive``) tarball; ``options`` are :meth:`entries`'.

        ``order``: ``sorted`` (as ``ctr export``), ``index-first`` (index.json, oci-layout
        [, manifest.json] before the blobs), ``index-last`` (blobs, then oci-layout, then
        index.json last), ``blobs-reverse`` (blobs in reverse digest order, metadata last).
        ``omit_blobs``: digests left out. ``tamper``: digest -> bytes written under that
        digest's name instead (a digest not in the layout adds a stray blob).
        ``extra_entries`` are appended as given (``../evil``, ``/abs``, symlinks...).
        ``docker_manifest_json`` also writes ``manifest.json`` (Docker 25+ / ``ctr export``).
        ``include_dirs``: ``blobs/`` and ``blobs/sha256/`` directory entries (containerd
        writes them). ``omit_files``: other names to leave out (``oci-layout``,
        ``index.json``, ``blobs``). ``compression`` compresses the whole archive;
        ``truncate_at`` cuts the final bytes there.
        """
        return archive_bytes(self.entries(**options), compression=compression, truncate_at=truncate_at)

    def write_tar(
        self,
        path: str | os.PathLike[str],
        *,
        compression: Compression = "none",
        truncate_at: int | None = None,
        **options: Any,
    ) -> None:
        """:meth:`tar_bytes` streamed to a file (large blobs are never held in memory)."""
        write_archive(path, self.entries(**options), compression=compression, truncate_at=truncate_at)

    def write_dir(
        self,
        path: str | os.PathLike[str],
        *,
        omit_blobs: Iterable[str] = (),
        tamper: Mapping[str, bytes] | None = None,
        index_json_override: bytes | None = None,
        oci_layout_override: bytes | None = None,
    ) -> Path:
        """The layout as a directory (``oci:DIR`` for skopeo, ``--layout DIR`` for umoci)."""
        root = Path(path)
        blobdir = root / "blobs" / "sha256"
        blobdir.mkdir(parents=True, exist_ok=True)
        omit = set(omit_blobs)
        tamper = dict(tamper or {})
        for digest, blob in self._blobs.items():
            if digest in omit:
                continue
            target = blobdir / digest_hex(digest)
            if digest in tamper:
                target.write_bytes(tamper[digest])
            elif isinstance(blob, FileBlob):
                shutil.copyfile(blob.path, target)
            else:
                target.write_bytes(blob.data)
        (root / "oci-layout").write_bytes(
            oci_layout_override if oci_layout_override is not None else self.oci_layout_json()
        )
        (root / "index.json").write_bytes(
            index_json_override if index_json_override is not None else self.index_json()
        )
        for name, data in self.extra_files.items():
            p = root / name
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
        return root


def _resolve_image(root: BuiltImage | IndexBlob | Blob) -> BuiltImage | None:
    if isinstance(root, BuiltImage):
        return root
    if isinstance(root, IndexBlob) and root.images:
        for img in root.images:
            if img.platform.get("os") == "linux" and img.platform.get("architecture") == "amd64":
                return img
        return root.images[0]
    return None


# ---------------------------------------------------------------------------------------------
# big images for benchmarks


def big_image(
    total_bytes: int,
    files: int,
    seed: int,
    *,
    layers: int = 1,
    compression: Compression = "gzip",
    level: int | None = 1,
    compressible: float = 0.1,
    files_per_dir: int = 256,
    workdir: str | os.PathLike[str] | None = None,
) -> Image:
    """A reproducible image with ``files`` files totalling ``total_bytes`` of pseudo-random
    content (a ``compressible`` fraction is zeros), spread over ``layers`` layers and
    directories of ``files_per_dir``. Layers are generated lazily, streamed into temp files
    under ``workdir`` (deleted when the layer object is collected): write archives with
    :meth:`OCILayout.write_tar` / ``write_docker_save_tar`` to stay out of memory.
    """
    if files < 1 or layers < 1:
        raise ValueError("need at least one file and one layer")
    rng = random.Random(seed)
    weights = [rng.uniform(0.5, 1.5) for _ in range(files)]
    scale = total_bytes / sum(weights)
    sizes = [int(w * scale) for w in weights]
    sizes[-1] += total_bytes - sum(sizes)
    per_layer: list[list[_BigFile]] = [[] for _ in range(layers)]
    for i, size in enumerate(sizes):
        d = f"data/d{i // files_per_dir:04d}"
        per_layer[i * layers // files].append(_BigFile(f"{d}/f{i:07d}.bin", size))
    out: list[LayerSpec] = []
    for li, fs in enumerate(per_layer):
        dirs = ["data", *sorted({f.name.rsplit("/", 1)[0] for f in fs})]
        out.append(
            GeneratedLayer(
                fs, dirs, seed * 7919 + li, compressible=compressible, level=level, workdir=workdir
            )
        )
    return Image(
        out,
        compression=compression,
        config_extra={"config": {"Env": list(DEFAULT_ENV), "Labels": {"ctrpy.bench.seed": str(seed)}}},
    )
