"""``docker save`` / ``podman save`` archives built in code.

Variants (member names and JSON as the real tools write them):

- ``classic`` (docker < 25, moby image/tarexport): ``<v1id>/`` directories holding
  ``VERSION`` ("1.0"), ``json`` (v1 layer config) and ``layer.tar``; ``<confighex>.json``;
  ``manifest.json`` (``[{"Config","RepoTags","Layers"}]``, ``RepoTags`` null when untagged);
  ``repositories`` (``{name: {tag: <top v1id>}}``). Sorted (directory walk) order, mtime 0.
  A layer already written is symlinked (``../<v1id>/layer.tar``) by later layer dirs.
- ``docker25`` (docker >= 25): an OCI layout (``blobs/sha256/...``, ``index.json`` with
  ``io.containerd.image.name`` + ``org.opencontainers.image.ref.name`` per tag,
  ``oci-layout``) plus ``manifest.json`` whose Config/Layers are ``blobs/sha256/<hex>`` and
  ``repositories``.
- ``podman`` (containers/image docker-archive writer, ``podman save [-m]``): layers as
  ``<digest-hex>.tar``, config ``<hex>.json``, legacy ``<v1id>/layer.tar`` symlinks to
  ``../<hex>.tar`` with ``VERSION`` and ``json``, then ``manifest.json`` (RepoTags always a
  list) and ``repositories``; members in write order, mode 0444, mtime 0.

Tags are written verbatim into ``RepoTags`` (docker writes familiar names like
``busybox:latest``, podman full ones like ``docker.io/library/busybox:latest``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from .layers import Compression, Entry, sha256_digest
from .layout import archive_bytes, write_archive
from .oci import (
    ANNOTATION_IMAGE_NAME,
    ANNOTATION_REF_NAME,
    MT_OCI_INDEX,
    AnyBlob,
    BuiltImage,
    FileBlob,
    Image,
    digest_hex,
    go_json,
    normalize_ref,
    sorted_keys,
    split_tag,
)

__all__ = [
    "DockerOrder",
    "DockerVariant",
    "docker_save_entries",
    "docker_save_tar",
    "write_docker_save_tar",
]

DockerVariant = Literal["classic", "docker25", "podman"]
DockerOrder = Literal["sorted", "natural", "manifest-last", "manifest-first"]

V1_EPOCH = "1970-01-01T00:00:00Z"
DOCKER25_OCI_LAYOUT = b'{"imageLayoutVersion": "1.0.0"}'

_EMPTY_CONTAINER_CONFIG: dict[str, Any] = {
    "Hostname": "",
    "Domainname": "",
    "User": "",
    "AttachStdin": False,
    "AttachStdout": False,
    "AttachStderr": False,
    "Tty": False,
    "OpenStdin": False,
    "StdinOnce": False,
    "Env": None,
    "Cmd": None,
    "Image": "",
    "Volumes": None,
    "WorkingDir": "",
    "Entrypoint": None,
    "OnBuild": None,
    "Labels": None,
}

_META_NAMES = ("manifest.json", "repositories")


def _file(name: str, payload: bytes | AnyBlob, mode: int) -> Entry:
    if isinstance(payload, bytes):
        return Entry(name, "file", data=payload, mode=mode, mtime=0)
    if isinstance(payload, FileBlob):
        return Entry(name, "file", source=payload, mode=mode, mtime=0)
    return Entry(name, "file", data=payload.data, mode=mode, mtime=0)


def _dir(name: str) -> Entry:
    return Entry(name.rstrip("/") + "/", "dir", mode=0o755, mtime=0)


def _walk_key(e: Entry) -> list[str]:
    # filepath.Walk order: lexical per directory level
    return e.name.rstrip("/").split("/")


_Built = Sequence[tuple[BuiltImage, Sequence[str] | None]]  # (image, tags) pairs, built
_Written = tuple[list[Entry], bytes, bytes | None]  # (members, manifest.json, repositories)


class _Members:
    """Ordered member list, first write of a name wins (like a directory on disk)."""

    def __init__(self) -> None:
        self.items: dict[str, Entry] = {}

    def add(self, e: Entry) -> None:
        self.items.setdefault(e.name, e)

    def __contains__(self, name: str) -> bool:
        return name in self.items

    def list(self) -> list[Entry]:
        return list(self.items.values())


class _Listing:
    """What ``manifest.json`` (one item per config, tags merged) and ``repositories`` list."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self.by_config: dict[str, int] = {}
        self.repos: dict[str, dict[str, str]] = {}

    def merge(self, item: dict[str, Any], config: str) -> None:
        if config in self.by_config:
            existing = self.items[self.by_config[config]]
            tags = existing["RepoTags"] or []
            for t in item["RepoTags"] or []:
                if t not in tags:
                    tags.append(t)
            existing["RepoTags"] = tags or existing["RepoTags"]
        else:
            self.by_config[config] = len(self.items)
            self.items.append(item)


# ---------------------------------------------------------------------------------------------
# classic docker save


def _v1_top(cfg: Mapping[str, Any]) -> dict[str, Any]:
    v1: dict[str, Any] = {}
    for key in ("comment", "created", "container"):
        if cfg.get(key):
            v1[key] = cfg[key]
    v1["container_config"] = cfg.get("container_config") or dict(_EMPTY_CONTAINER_CONFIG)
    for key in ("docker_version", "author", "config", "architecture", "variant", "os"):
        if cfg.get(key):
            v1[key] = cfg[key]
    v1.setdefault("created", V1_EPOCH)
    return v1


def _v1_id(v1: Mapping[str, Any], chain: str, parent_hex: str) -> str:
    cfg = {k: v for k, v in v1.items() if k not in ("id", "parent")}
    cfg["layer_id"] = chain
    if parent_hex:
        cfg["parent"] = "sha256:" + parent_hex
    return digest_hex(sha256_digest(go_json(sorted_keys(cfg))))


def _classic(built: _Built, *, symlinks: bool, repositories: bool) -> _Written:
    members = _Members()
    diff_paths: dict[str, str] = {}
    listing = _Listing()
    for img, tags in built:
        cfg = json.loads(img.config.data) if _is_json(img.config.data) else {}
        os_name = cfg.get("os") if isinstance(cfg, dict) else None
        parent = ""
        chain = ""
        ids: list[str] = []
        for i, (blob, diff) in enumerate(zip(img.layers, img.diff_ids, strict=True)):
            chain = diff if i == 0 else sha256_digest(f"{chain} {diff}".encode())
            top = i == len(img.layers) - 1
            v1 = (
                _v1_top(cfg)
                if top and isinstance(cfg, dict)
                else {
                    "created": V1_EPOCH,
                    "container_config": dict(_EMPTY_CONTAINER_CONFIG),
                }
            )
            vid = _v1_id(v1, chain, parent)
            body: dict[str, Any] = {"id": vid}
            if parent:
                body["parent"] = parent
            body.update(v1)
            if os_name:
                body["os"] = os_name
            if f"{vid}/" not in members:
                members.add(_dir(vid))
                members.add(_file(f"{vid}/VERSION", b"1.0", 0o644))
                members.add(_file(f"{vid}/json", go_json(body), 0o644))
                first = diff_paths.get(blob.digest)
                if first is not None and symlinks:
                    members.add(
                        Entry(f"{vid}/layer.tar", "symlink", linkname=f"../{first}", mode=0o777, mtime=0)
                    )
                else:
                    members.add(_file(f"{vid}/layer.tar", blob, 0o644))
                    diff_paths.setdefault(blob.digest, f"{vid}/layer.tar")
            ids.append(vid)
            parent = vid
        members.add(_file(f"{img.config.hex}.json", img.config, 0o644))
        item = {
            "Config": f"{img.config.hex}.json",
            "RepoTags": list(tags) if tags else None,
            "Layers": [f"{v}/layer.tar" for v in ids],
        }
        listing.merge(item, img.config.digest)
        for t in tags or []:
            name, tag = split_tag(t)
            if ids:
                listing.repos.setdefault(name, {})[tag] = ids[-1]
    manifest = go_json(listing.items) + b"\n"
    repo = go_json(listing.repos) + b"\n" if listing.repos and repositories else None
    return members.list(), manifest, repo


def _is_json(data: bytes) -> bool:
    try:
        return isinstance(json.loads(data), dict)
    except (ValueError, RecursionError):  # a config_raw that is not JSON, or nested too deep
        return False


# ---------------------------------------------------------------------------------------------
# docker 25+


def _docker25(built: _Built, *, repositories: bool) -> _Written:
    members = _Members()
    members.add(_dir("blobs"))
    members.add(_dir("blobs/sha256"))
    listing = _Listing()
    index_entries: list[dict[str, Any]] = []
    for img, tags in built:
        for b in img.blobs():
            members.add(_file(f"blobs/sha256/{digest_hex(b.digest)}", b, 0o644))
        if tags:
            for t in tags:
                name, tag = split_tag(t)
                index_entries.append(
                    img.manifest.descriptor(
                        {ANNOTATION_IMAGE_NAME: normalize_ref(t), ANNOTATION_REF_NAME: tag},
                        platform=img.platform,
                    )
                )
                if img.diff_ids:
                    listing.repos.setdefault(name, {})[tag] = digest_hex(img.diff_ids[-1])
        else:
            index_entries.append(img.manifest.descriptor(platform=img.platform))
        item = {
            "Config": f"blobs/sha256/{img.config.hex}",
            "RepoTags": list(tags) if tags else None,
            "Layers": [f"blobs/sha256/{digest_hex(b.digest)}" for b in img.layers],
        }
        listing.merge(item, img.config.digest)
    index = go_json({"schemaVersion": 2, "mediaType": MT_OCI_INDEX, "manifests": index_entries})
    members.add(_file("index.json", index, 0o644))
    members.add(_file("oci-layout", DOCKER25_OCI_LAYOUT, 0o644))
    manifest = go_json(listing.items) + b"\n"
    repo = go_json(listing.repos) + b"\n" if listing.repos and repositories else None
    return members.list(), manifest, repo


# ---------------------------------------------------------------------------------------------
# podman / containers-image


def _podman(built: _Built, *, legacy: bool, repositories: bool) -> _Written:
    members = _Members()
    listing = _Listing()
    for img, tags in built:
        for b in img.layers:
            members.add(_file(f"{digest_hex(b.digest)}.tar", b, 0o444))
        members.add(_file(f"{img.config.hex}.json", img.config, 0o444))
        cfg: Any = json.loads(img.config.data) if _is_json(img.config.data) else {}
        last = ""
        chain = ""
        for i, b in enumerate(img.layers):
            layer_cfg: dict[str, Any] = {}
            if last:
                layer_cfg["parent"] = last
            if i == len(img.layers) - 1:
                for attr in (
                    "architecture",
                    "config",
                    "container",
                    "container_config",
                    "created",
                    "docker_version",
                    "os",
                ):
                    layer_cfg[attr] = cfg.get(attr)
            chain = b.digest if i == 0 else sha256_digest(f"{chain} {b.digest}".encode())
            layer_cfg["layer_id"] = chain
            lid = digest_hex(sha256_digest(go_json(sorted_keys(layer_cfg))))
            del layer_cfg["layer_id"]
            layer_cfg["id"] = lid
            if legacy and f"{lid}/layer.tar" not in members:
                members.add(
                    Entry(
                        f"{lid}/layer.tar",
                        "symlink",
                        linkname=f"../{digest_hex(b.digest)}.tar",
                        mode=0,
                        mtime=0,
                    )
                )
                members.add(_file(f"{lid}/VERSION", b"1.0", 0o444))
                members.add(_file(f"{lid}/json", go_json(sorted_keys(layer_cfg)), 0o444))
            last = lid
        if last:
            for t in tags or []:
                name, tag = split_tag(t)
                listing.repos.setdefault(name, {})[tag] = last
        item = {
            "Config": f"{img.config.hex}.json",
            "RepoTags": list(tags or []),
            "Layers": [f"{digest_hex(b.digest)}.tar" for b in img.layers],
        }
        listing.merge(item, img.config.digest)
    return members.list(), go_json(listing.items), go_json(listing.repos) if repositories else None


# ---------------------------------------------------------------------------------------------
# public


def docker_save_entries(
    images: Sequence[tuple[Image | BuiltImage, Sequence[str] | None]],
    *,
    variant: DockerVariant = "classic",
    layer_symlinks: bool | None = None,
    include_repositories: bool = True,
    order: DockerOrder | None = None,
    compression_of_layers: Compression = "none",
    omit: Iterable[str] = (),
    tamper: Mapping[str, bytes] | None = None,
    extra_members: Sequence[Entry] = (),
    manifest_json_override: bytes | None = None,
    repositories_override: bytes | None = None,
    include_dirs: bool = True,
) -> list[Entry]:
    """The members of a docker-save archive in archive order (see :func:`docker_save_tar`)."""
    built: list[tuple[BuiltImage, Sequence[str] | None]] = []
    for img, tags in images:
        if isinstance(img, Image):
            if variant == "docker25":
                img = img.build(compression=compression_of_layers, media_types="oci", config_platform=True)
            else:
                img = img.build(compression=compression_of_layers)
        built.append((img, tags))

    links = True if layer_symlinks is None else layer_symlinks  # classic: symlinks; podman: legacy dirs
    if variant == "classic":
        body, manifest, repos = _classic(built, symlinks=links, repositories=include_repositories)
    elif variant == "docker25":
        body, manifest, repos = _docker25(built, repositories=include_repositories)
    elif variant == "podman":
        body, manifest, repos = _podman(built, legacy=links, repositories=include_repositories)
    else:
        raise ValueError(f"unknown variant {variant!r}")
    meta_mode = 0o444 if variant == "podman" else 0o644

    if manifest_json_override is not None:
        manifest = manifest_json_override
    if repositories_override is not None:
        repos = repositories_override
    meta = [_file("manifest.json", manifest, meta_mode)]
    if repos is not None:
        meta.append(_file("repositories", repos, meta_mode))

    if order is None:
        order = "natural" if variant == "podman" else "sorted"
    if order == "sorted":
        out = sorted(body + meta, key=_walk_key)
    elif order == "natural":
        out = body + meta
    elif order == "manifest-last":
        out = sorted(body, key=_walk_key) + meta
    elif order == "manifest-first":
        out = meta + sorted(body, key=_walk_key)
    else:
        raise ValueError(f"unknown order {order!r}")

    if not include_dirs:
        out = [e for e in out if e.type != "dir"]
    skip = set(omit)
    out = [e for e in out if e.name not in skip and e.name.rstrip("/") not in skip]
    if tamper:
        out = [
            Entry(e.name, "file", data=tamper[e.name], mode=e.mode, mtime=0) if e.name in tamper else e
            for e in out
        ]
    return out + list(extra_members)


def docker_save_tar(
    images: Sequence[tuple[Image | BuiltImage, Sequence[str] | None]],
    *,
    compression: Compression = "none",
    truncate_at: int | None = None,
    **options: Any,
) -> bytes:
    """A ``docker save`` / ``podman save`` archive of ``images`` = [(image, tags or None)];
    ``options`` are :func:`docker_save_entries`'.

    ``variant``: ``classic`` (default), ``docker25``, ``podman``. ``layer_symlinks``:
    classic: a layer already written is symlinked from later layer dirs (default True, like
    docker; False writes full copies). podman: write the legacy ``<id>/layer.tar`` symlink
    dirs (default True, like podman). ``order``: ``sorted`` (docker's directory walk; default
    for classic/docker25), ``natural`` (write order; default for podman), ``manifest-last`` /
    ``manifest-first`` (manifest.json and repositories after / before everything else).
    ``compression_of_layers``: layer files compressed (docker load accepts that); layers
    with an explicit compression keep it. ``omit``: member names left out (``repositories``,
    ``<id>/json``, ...). ``tamper``: member name -> replacement bytes. ``extra_members`` are
    appended as given. ``include_dirs``: directory entries. ``compression`` compresses the
    whole archive; ``truncate_at`` cuts it.
    """
    return archive_bytes(docker_save_entries(images, **options), compression=compression, truncate_at=truncate_at)


def write_docker_save_tar(
    path: str | os.PathLike[str],
    images: Sequence[tuple[Image | BuiltImage, Sequence[str] | None]],
    *,
    compression: Compression = "none",
    truncate_at: int | None = None,
    **options: Any,
) -> None:
    """:func:`docker_save_tar` streamed to a file (for big images)."""
    write_archive(path, docker_save_entries(images, **options), compression=compression, truncate_at=truncate_at)
