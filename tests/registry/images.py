"""Putting test images into a registry: with skopeo (as a user would), or by raw HTTP
(for content skopeo would refuse to make, such as an index whose child was deleted).

Images come from ``tests.builders`` (``Image``, ``index_of``), so their digests are known
before the push and can be checked after.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ctrpy.oci import Descriptor
from tests.builders import ANNOTATION_REF_NAME, Blob, BuiltImage, Image, IndexBlob, OCILayout
from tests.peers import run
from tests.registry.distribution import DistributionRegistry

PushItem = Image | BuiltImage | IndexBlob


@dataclass(frozen=True)
class Pushed:
    """What a push put where: ``ref`` is ``host/repo:tag``."""

    registry_host: str
    repo: str
    tag: str
    manifest: Blob
    images: tuple[BuiltImage, ...]  # the index's images in order, or the one image

    @property
    def ref(self) -> str:
        return f"{self.registry_host}/{self.repo}:{self.tag}"

    @property
    def digest(self) -> str:
        return self.manifest.digest

    @property
    def descriptor(self) -> Descriptor:
        return Descriptor(self.manifest.media_type, self.manifest.digest, self.manifest.size)

    @property
    def image(self) -> BuiltImage:
        return self.images[0]

    def layer_descriptors(self) -> list[Descriptor]:
        return [Descriptor(b.media_type, b.digest, b.size) for img in self.images for b in img.layers]

    def config_descriptor(self) -> Descriptor:
        c = self.images[0].config
        return Descriptor(c.media_type, c.digest, c.size)


def _built(item: PushItem) -> BuiltImage | IndexBlob:
    return item.build() if isinstance(item, Image) else item


def skopeo_push(
    registry: DistributionRegistry,
    item: PushItem,
    repo: str,
    tag: str,
    workdir: Path,
    *,
    creds: str | None = None,
) -> Pushed:
    """``skopeo copy oci-archive:... docker://HOST/repo:tag`` (``--all`` for an index)."""
    built = _built(item)
    layout = OCILayout()
    layout.add_manifest(built, {ANNOTATION_REF_NAME: tag})
    workdir.mkdir(parents=True, exist_ok=True)
    archive = workdir / f"{repo.replace('/', '_')}-{tag}.tar"
    layout.write_tar(archive)
    args = ["skopeo", "copy", "--retry-times", "2"]
    if isinstance(built, IndexBlob):
        args.append("--all")
    if registry.tls:
        certs = workdir / "skopeo-certs"
        certs.mkdir(exist_ok=True)
        (certs / "ca.crt").write_bytes(registry.tls.cert.read_bytes())
        args += ["--dest-cert-dir", str(certs)]
    else:
        args.append("--dest-tls-verify=false")
    if creds:
        args += ["--dest-creds", creds]
    args += [f"oci-archive:{archive}", f"docker://{registry.host}/{repo}:{tag}"]
    run(*args, env={**os.environ, "HOME": str(workdir)}, timeout=300)
    archive.unlink(missing_ok=True)
    if isinstance(built, IndexBlob):
        return Pushed(registry.host, repo, tag, built, tuple(built.images))
    return Pushed(registry.host, repo, tag, built.manifest, (built,))


# ---------------------------------------------------------------------------------------------
# raw HTTP (no auth: use the plain registry)


class RawError(RuntimeError):
    pass


def _request(
    registry: DistributionRegistry,
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    conn = registry.connection()
    try:
        hdrs = dict(headers or {})
        if body or method in ("POST", "PUT", "PATCH"):
            hdrs["Content-Length"] = str(len(body))
        conn.request(method, path, body=body or None, headers=hdrs)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


def raw_push_blob(registry: DistributionRegistry, repo: str, data: bytes) -> str:
    """POST an upload, PUT the bytes; returns the digest."""
    dgst = "sha256:" + hashlib.sha256(data).hexdigest()
    status, headers, body = _request(registry, "POST", f"/v2/{repo}/blobs/uploads/")
    if status != 202:
        raise RawError(f"POST upload: {status} {body[:200]!r}")
    loc = urlsplit(headers["location"])
    sep = "&" if loc.query else "?"
    target = f"{loc.path}?{loc.query}{sep}digest={dgst}" if loc.query else f"{loc.path}?digest={dgst}"
    status, _, body = _request(registry, "PUT", target, data, {"Content-Type": "application/octet-stream"})
    if status != 201:
        raise RawError(f"PUT blob: {status} {body[:200]!r}")
    return dgst


def raw_put_manifest(registry: DistributionRegistry, repo: str, ref: str, media_type: str, data: bytes) -> tuple[int, bytes]:
    status, _, body = _request(registry, "PUT", f"/v2/{repo}/manifests/{ref}", data, {"Content-Type": media_type})
    return status, body


def raw_push_image(registry: DistributionRegistry, repo: str, image: BuiltImage, tag: str | None = None) -> None:
    for b in (image.config, *image.layers):
        raw_push_blob(registry, repo, b.data)
    status, body = raw_put_manifest(registry, repo, tag or image.manifest.digest, image.manifest.media_type, image.manifest.data)
    if status != 201:
        raise RawError(f"PUT manifest: {status} {body[:200]!r}")


def raw_delete_manifest(registry: DistributionRegistry, repo: str, digest: str) -> None:
    status, _, body = _request(registry, "DELETE", f"/v2/{repo}/manifests/{digest}")
    if status != 202:
        raise RawError(f"DELETE manifest: {status} {body[:200]!r}")


def push_index_with_missing_child(registry: DistributionRegistry, repo: str, tag: str, index: IndexBlob) -> BuiltImage:
    """Push ``index`` (children first), then DELETE its first child manifest: distribution
    refuses to store an index naming a missing manifest, so this is how one is made."""
    for img in index.images:
        raw_push_image(registry, repo, img)
    status, body = raw_put_manifest(registry, repo, tag, index.media_type, index.data)
    if status != 201:
        raise RawError(f"PUT index: {status} {body[:200]!r}")
    gone = index.images[0]
    raw_delete_manifest(registry, repo, gone.manifest.digest)
    return gone


def manifest_json(data: bytes) -> Any:
    return json.loads(data)


def upload_sessions(registry: DistributionRegistry, repo: str) -> list[str]:
    """The upload sessions distribution still keeps for ``repo`` (``_uploads/<id>/data``).

    A cancelled session leaves an empty ``hashstates`` directory behind in distribution
    2.8 (it writes one while closing the cancelled writer); that is not a session."""
    d = registry.data_dir / "docker" / "registry" / "v2" / "repositories" / repo / "_uploads"
    if not d.is_dir():
        return []
    return sorted(p.name for p in d.iterdir() if (p / "data").exists() or (p / "startedat").exists())
