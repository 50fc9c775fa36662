"""OCI image layouts and archives (``oci-layout``, ``index.json``, ``blobs/sha256/...``) of
the images and indexes of ``oci.py``, written like containerd's exporter (sorted, mtime 0,
uid/gid 0, blobs 0444), or precisely broken.
"""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .layers import (
    Compression,
    Entry,
    TarStream,
    Writable,
    compressing_writer,
)
from .oci import (
    ANNOTATION_IMAGE_NAME,
    MT_OCI_INDEX,
    AnyBlob,
    Blob,
    BuiltImage,
    FileBlob,
    Image,
    IndexBlob,
    LayoutOrder,
    _apply_extra,
    digest_hex,
    familiarize_ref,
    go_json,
)

__all__ = ["OCILayout", "archive_bytes", "write_archive"]


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
