"""OCI images and indexes built in code (valid or precisely broken); their layouts and
archives are ``layout.py``'s, generated big layers ``big.py``'s.

JSON is serialised like Go's ``encoding/json`` (compact, struct field order, ``<>&``
escaped), tar members like containerd's exporter (sorted, mtime 0, uid/gid 0, blobs 0444).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from .layers import (
    CHUNK,
    Compression,
    Entry,
    compress,
    decompress,
    layer_tar,
    sha256_digest,
)

if TYPE_CHECKING:
    from .big import GeneratedLayer

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
    "Image",
    "IndexBlob",
    "Layer",
    "LayerSpec",
    "LayoutOrder",
    "MediaFamily",
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


LayerSpec: TypeAlias = "Sequence[Entry] | bytes | Layer | GeneratedLayer"


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
        if hasattr(spec, "materialize"):  # a GeneratedLayer (tests.builders.big)
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
