"""The registry API (OCI distribution spec / Docker registry v2) for one repository.

``Registry.for_reference("127.0.0.1:5000/app:1", RemoteOptions())`` gives a client for
``app`` on that host; it is thread-safe (blobs may be downloaded in parallel through one
object).  ``Remote`` is the part shared by every repository of one registry host: hosts,
transport, credentials, per-host authorization (tokens).

Pull: :meth:`Registry.resolve` (name -> descriptor), :meth:`Registry.fetch_manifest`
(verified bytes, 4 MiB cap), :meth:`Registry.fetch_blob` (streamed into a
:class:`~ctrpy.remote.sink.BlobSink`, resumed with ``Range`` after a cut).
Push: :meth:`Registry.blob_exists`, :meth:`Registry.mount_blob`,
:meth:`Registry.upload_blob` (one streamed PUT, or chunked PATCHes),
:meth:`Registry.put_manifest`.
"""

from __future__ import annotations

import io
import json
import os
import stat
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

from ctrpy.errors import InvalidArgument, SizeMismatch
from ctrpy.oci import digest as _digest
from ctrpy.oci import mediatypes as mt
from ctrpy.oci.descriptor import Descriptor
from ctrpy.oci.reference import Reference
from ctrpy.oci.reference import parse as parse_reference
from ctrpy.remote.auth import HostAuth, parse_challenges, repository_scope
from ctrpy.remote.clock import Clock, SystemClock
from ctrpy.remote.credentials import CredentialStore
from ctrpy.remote.errors import (
    AuthError,
    ConnectionFailed,
    InvalidResponse,
    ManifestTooLarge,
    RemoteDigestMismatch,
    RemoteError,
    RemoteNotFound,
    RemoteSizeMismatch,
    UnsupportedManifest,
    UploadError,
    error_from_response,
)
from ctrpy.remote.hosts import Capability, RegistryHost, TLSConfig, load_hosts
from ctrpy.remote.options import RemoteOptions
from ctrpy.remote.sink import BlobSink, ProgressCallback, SourceOpener
from ctrpy.remote.transport import CHUNK, BodyCut, Response, Transport, origin_of, strip_query

MAX_MANIFEST = 4 << 20  # containerd's MaxManifestSize is 4 * 1048 * 1048; we round to 4 MiB
DEFAULT_CHUNK = 8 << 20
SCHEMA1_TYPES = frozenset(
    {
        "application/vnd.docker.distribution.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
    }
)
MANIFEST_ACCEPT = (mt.DOCKER_MANIFEST, mt.DOCKER_MANIFEST_LIST, mt.OCI_MANIFEST, mt.OCI_INDEX)
_GENERIC_TYPES = frozenset({"", "application/json", "application/octet-stream", "text/plain", "binary/octet-stream"})
_CACHE_ENTRIES = 16
_SCHEMA1_MESSAGE = (
    "schema 1 manifests are no longer supported; rebuild or push the image again as a Docker "
    "schema 2 or OCI image"
)


def _base_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _accept(first: str | None = None) -> str:
    types = [first] if first and first not in MANIFEST_ACCEPT and first not in _GENERIC_TYPES else []
    return ", ".join([*types, *MANIFEST_ACCEPT, "*/*"])


def sniff_media_type(data: bytes) -> tuple[str, int | None, bool]:
    """(the ``mediaType`` a manifest JSON says or implies, its ``schemaVersion``, whether
    the ``mediaType`` was written out rather than implied by the keys)."""
    try:
        obj: Any = json.loads(data)
    except ValueError:
        return "", None, False
    if not isinstance(obj, dict):
        return "", None, False
    version = obj.get("schemaVersion")
    version = version if isinstance(version, int) and not isinstance(version, bool) else None
    media = obj.get("mediaType")
    if isinstance(media, str) and media:
        return media, version, True
    if isinstance(obj.get("manifests"), list):
        return mt.OCI_INDEX, version, False
    if isinstance(obj.get("config"), dict) and isinstance(obj.get("layers"), list):
        return mt.OCI_MANIFEST, version, False
    return "", version, False


def _is_manifest_type(media_type: str) -> bool:
    return mt.is_manifest(media_type) or mt.is_index(media_type)


@dataclass(frozen=True)
class UploadSession:
    """An upload the registry opened (``POST .../blobs/uploads/`` answered 202)."""

    location: str  # absolute URL
    host: RegistryHost
    min_chunk: int | None = None  # OCI-Chunk-Min-Length


@dataclass(frozen=True)
class MountResult:
    """``mounted``: the blob is now in the repository (201).  Otherwise ``session`` is the
    upload the registry opened instead (202), to pass to :meth:`Registry.upload_blob`."""

    mounted: bool
    session: UploadSession | None = None


# ---------------------------------------------------------------------------------------------


class Remote:
    """Everything shared by the repositories of one registry host.  Thread-safe."""

    def __init__(
        self,
        domain: str,
        options: RemoteOptions | None = None,
        *,
        transport: Transport | None = None,
        credentials: CredentialStore | None = None,
        clock: Clock | None = None,
        env: Mapping[str, str] | None = None,
        jitter: Callable[[], float] | None = None,
        hosts: Sequence[RegistryHost] | None = None,
    ) -> None:
        self.domain = domain
        self.options = options or RemoteOptions()
        self.clock: Clock = clock or (transport.clock if transport is not None else SystemClock())
        self.transport = transport or Transport(self.options, clock=self.clock, env=env, jitter=jitter)
        self.credentials = credentials or CredentialStore(self.options, env)
        self.hosts: list[RegistryHost] = list(hosts) if hosts is not None else load_hosts(domain, self.options)
        self._lock = threading.Lock()
        self._auth: dict[tuple[str, str], HostAuth] = {}

    def auth(self, host: RegistryHost, repository: str) -> HostAuth:
        """The authorization state of ``host`` (one per endpoint; tokens are per scope set)."""
        key = (host.origin, host.path)
        with self._lock:
            a = self._auth.get(key)
            if a is None:
                creds_host = self.domain if not host.mirror else host.host
                a = HostAuth(
                    host.host,
                    self.transport,
                    host.tls,
                    lambda: self.credentials.lookup(creds_host, repository),
                    self.clock,
                    self.options,
                )
                self._auth[key] = a
            return a

    def repository(self, path: str, reference: Reference | None = None) -> Registry:
        """A client for repository ``path`` of this host, sharing connections and tokens."""
        ref = reference or Reference(self.domain, path)
        return Registry(self, ref)

    def close(self) -> None:
        self.transport.close()


class Registry:
    """The registry API for one repository.  Thread-safe."""

    def __init__(self, remote: Remote, reference: Reference) -> None:
        self.remote = remote
        self.reference = reference
        self.path = reference.path
        self.name = f"{reference.domain}/{reference.path}"
        self._cache_lock = threading.Lock()
        self._manifests: OrderedDict[str, bytes] = OrderedDict()

    @classmethod
    def for_reference(
        cls,
        reference: str | Reference,
        options: RemoteOptions | None = None,
        **kw: Any,
    ) -> Registry:
        """A client for the repository of ``reference`` (``host/repo[:tag][@digest]``).

        Keyword arguments go to :class:`Remote` (``clock``, ``env``, ``transport``,
        ``credentials``, ``jitter``)."""
        ref = parse_reference(reference) if isinstance(reference, str) else reference
        return Remote(ref.domain, options, **kw).repository(ref.path, ref)

    def for_repository(self, path: str) -> Registry:
        """Another repository of the same host (a mount source), sharing everything."""
        return self.remote.repository(path)

    @property
    def options(self) -> RemoteOptions:
        return self.remote.options

    @property
    def transport(self) -> Transport:
        return self.remote.transport

    def close(self) -> None:
        self.remote.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing -------------------------------------------------------------------------------

    def _hosts(self, capability: Capability, what: str) -> list[RegistryHost]:
        hosts = [h for h in self.remote.hosts if h.has(capability)]
        if not hosts:
            cap = capability.name.lower() if capability.name else str(capability)
            raise RemoteNotFound(f"{what}: no host of {self.reference.domain} may {cap} (see hosts.toml capabilities)")
        return hosts

    def _push_host(self, what: str) -> RegistryHost:
        return self._hosts(Capability.PUSH, what)[0]

    def _url(self, host: RegistryHost, *parts: str, query: Sequence[tuple[str, str]] = ()) -> str:
        url = host.url(self.path, *parts)
        q = list(query)
        if host.mirror:
            q.append(("ns", self.reference.domain))
        if q:
            url += ("&" if "?" in url else "?") + urlencode(q)
        return url

    def _pull_scopes(self) -> list[str]:
        return [repository_scope(self.path, "pull")]

    def _push_scopes(self) -> list[str]:
        return [repository_scope(self.path, "pull", "push")]

    def _call(
        self,
        host: RegistryHost,
        method: str,
        url: str,
        *,
        scopes: Sequence[str],
        what: str,
        headers: Sequence[tuple[str, str]] = (),
        body: bytes | Callable[[], Any] | None = None,
        retry: bool = True,
    ) -> Response:
        """One API call with authorization: a 401 is answered (token, Basic) and the call
        tried again, at most ``max_auth_attempts`` times."""
        trusted = origin_of(url) == origin_of(host.origin + "/")
        auth = self.remote.auth(host, self.path) if trusted else None
        attempts = 0
        while True:
            origin: list[tuple[str, str]] = list(host.headers) if trusted else []
            authz = auth.authorize(scopes) if auth is not None else None
            if authz is not None and authz.header:
                origin.append(("Authorization", authz.header))
            resp = self.transport.request(
                method,
                url,
                tls=host.tls if trusted else host.tls.for_other_host(),
                headers=headers,
                origin_headers=origin,
                body=body,
                retry=retry,
                what=what,
            )
            if resp.status != 401 or auth is None or authz is None or origin_of(resp.url) != origin_of(url):
                return resp
            challenges = parse_challenges(str(v) for v in resp.headers.getlist("WWW-Authenticate"))
            err = resp.error_body()
            attempts += 1
            if attempts >= max(1, self.options.max_auth_attempts):
                raise auth.give_up(what, challenges, err, attempts)
            auth.unauthorized(what, challenges, scopes, authz, err)

    def _error(self, resp: Response, what: str, not_found: str | None = None) -> RemoteError:
        body = b"" if resp.method == "HEAD" else resp.error_body()
        resp.close()
        if resp.method == "HEAD" and resp.status == 400 and resp.url.startswith("http://"):
            body = self._plain_probe(resp.url)  # a HEAD's answer has no body to tell why
        if resp.status == 400 and resp.url.startswith("http://") and b"HTTP request to an HTTPS server" in body:
            return ConnectionFailed(
                f"{what}: {resp.host} speaks HTTPS, not plain HTTP", host=resp.host, status=400, topic="https"
            )
        return error_from_response(what, resp.status, body, host=resp.host, not_found=not_found)

    def _plain_probe(self, url: str) -> bytes:
        """The body of a bare ``GET /v2/`` at ``url``'s origin when it answers 400 (an HTTPS
        server answering plain HTTP says so there), else nothing."""
        try:
            probe = self.transport.request("GET", origin_of(url) + "/v2/", tls=TLSConfig(), retry=False)
        except RemoteError:
            return b""
        with probe:
            return probe.error_body() if probe.status == 400 else b""

    def _ref_name(self, obj: str) -> str:
        return f"{self.name}@{obj}" if obj.startswith("sha256:") or ":" in obj else f"{self.name}:{obj}"

    def _remember(self, dgst: str, data: bytes) -> None:
        with self._cache_lock:
            self._manifests[dgst] = data
            self._manifests.move_to_end(dgst)
            while len(self._manifests) > _CACHE_ENTRIES:
                self._manifests.popitem(last=False)

    def _recall(self, dgst: str) -> bytes | None:
        with self._cache_lock:
            return self._manifests.get(dgst)

    # -- resolve --------------------------------------------------------------------------------

    def resolve(self, ref: str | None = None) -> Descriptor:
        """The descriptor a tag or digest names (``ref``; default: the reference's own).

        HEAD ``/v2/<repo>/manifests/<ref>`` first; a GET when the HEAD gives no usable
        answer (no Content-Type, length or digest; 405).  By digest: the manifests endpoint,
        then the blobs endpoint.  A digest the registry announces for a tag is only
        trusted until :meth:`fetch_manifest` checks the bytes against it."""
        tag, dgst = self._split(ref)
        name = self._ref_name(dgst or tag)
        caps = Capability.PULL if dgst else Capability.PULL | Capability.RESOLVE
        hosts = [h for h in self.remote.hosts if caps in h.capabilities]
        if not hosts:
            raise RemoteNotFound(f"{name}: no host of {self.reference.domain} may resolve it (see hosts.toml capabilities)")
        kinds = ["manifests", "blobs"] if dgst else ["manifests"]
        best: tuple[int, RemoteError] | None = None
        err: RemoteError
        for kind in kinds:
            for host in hosts:
                try:
                    return self._resolve_at(host, kind, dgst or tag, dgst, name)
                except (UnsupportedManifest, RemoteDigestMismatch):
                    raise
                except RemoteNotFound as e:
                    prio, err = 2, e
                except ManifestTooLarge as e:
                    prio, err = 4, e
                except ConnectionFailed as e:
                    prio, err = 1, e
                except RemoteError as e:
                    prio, err = 3, e
                if best is None or prio > best[0]:
                    best = (prio, err)
        assert best is not None
        raise best[1]

    def _split(self, ref: str | None) -> tuple[str, str]:
        if ref is None:
            if self.reference.digest:
                return "", self.reference.digest
            return self.reference.tag or "latest", ""
        if ref.startswith("sha256:") or "@" in ref:
            d = ref.rsplit("@", 1)[-1]
            return "", _digest.validate(d)
        return ref, ""

    def _resolve_at(self, host: RegistryHost, kind: str, obj: str, dgst: str, name: str) -> Descriptor:
        url = self._url(host, kind, obj)
        headers = [("Accept", _accept())]
        resp = self._call(host, "HEAD", url, scopes=self._pull_scopes(), what=name, headers=headers)
        with resp:
            if resp.status == 405 and kind == "manifests":
                pass  # HEAD not implemented: GET below
            elif resp.status in (401, 403, 404) or (resp.status >= 300 and (kind == "blobs" or dgst)):
                # by digest, distribution 2.8 answers 500 on the manifests endpoint for a blob
                # that is not a manifest: go on to the blobs endpoint rather than GET it again
                raise self._error(resp, name)
            elif resp.status >= 300:
                pass  # a HEAD error has no body: the GET below gets the registry's reason
            else:
                ctype = _base_type(resp.header("Content-Type"))
                if ctype == "text/plain":  # registry.access.redhat.com served schema 1 so
                    ctype = "application/vnd.docker.distribution.manifest.v1+json"
                if ctype in SCHEMA1_TYPES:
                    raise UnsupportedManifest(f"{name}: {_SCHEMA1_MESSAGE}", host=host.host)
                size = resp.content_length
                announced = (resp.header("Docker-Content-Digest") or "").strip()
                if dgst and announced and announced != dgst:
                    raise RemoteDigestMismatch(
                        f"{name}: the registry answers for digest {announced} instead", host=host.host
                    )
                if size is not None and size > MAX_MANIFEST:
                    raise ManifestTooLarge(
                        f"{name}: manifest of {size} bytes refused (larger than {MAX_MANIFEST} bytes)", host=host.host
                    )
                found = dgst or (announced if _digest.is_valid(announced) else "")
                if ctype and ctype not in _GENERIC_TYPES and size and found:
                    return Descriptor(ctype, found, size)
                if kind == "blobs" and size and found:
                    return Descriptor(ctype or "application/octet-stream", found, size)
        return self._resolve_get(host, kind, obj, dgst, name)

    def _resolve_get(self, host: RegistryHost, kind: str, obj: str, dgst: str, name: str) -> Descriptor:
        url = self._url(host, kind, obj)
        resp = self._call(host, "GET", url, scopes=self._pull_scopes(), what=name, headers=[("Accept", _accept())])
        with resp:
            if resp.status >= 300:
                raise self._error(resp, name)
            data = self._read_manifest(resp, name, host)
            announced = (resp.header("Docker-Content-Digest") or "").strip()
            ctype = _base_type(resp.header("Content-Type"))
        computed = _digest.of_bytes(data)
        if dgst and computed != dgst:
            raise RemoteDigestMismatch(f"{name}: the registry sent content with digest {computed}", host=host.host)
        if announced and announced != computed:
            raise RemoteDigestMismatch(
                f"{name}: the registry announces digest {announced} but the manifest it sent has digest {computed}",
                host=host.host,
            )
        body_type, version, _ = sniff_media_type(data)
        if ctype in SCHEMA1_TYPES or body_type in SCHEMA1_TYPES or version == 1 or (ctype == "text/plain" and version != 2):
            raise UnsupportedManifest(f"{name}: {_SCHEMA1_MESSAGE}", host=host.host)
        media = ctype if ctype not in _GENERIC_TYPES else ""
        if media and body_type and _is_manifest_type(media) and body_type != media:
            raise InvalidResponse(
                f"{name}: the registry sent Content-Type {media} for a manifest whose mediaType is {body_type}",
                host=host.host,
            )
        media = media or body_type
        if not media:
            if kind == "blobs":
                media = "application/octet-stream"
            else:
                raise InvalidResponse(f"{name}: cannot tell the manifest's media type", host=host.host)
        self._remember(computed, data)
        return Descriptor(media, computed, len(data))

    def _read_manifest(self, resp: Response, name: str, host: RegistryHost) -> bytes:
        n = resp.content_length
        if n is not None and n > MAX_MANIFEST:
            raise ManifestTooLarge(f"{name}: manifest of {n} bytes refused (larger than {MAX_MANIFEST} bytes)", host=host.host)
        data = resp.read_capped(MAX_MANIFEST)
        if len(data) > MAX_MANIFEST:
            raise ManifestTooLarge(f"{name}: manifest refused: larger than {MAX_MANIFEST} bytes", host=host.host)
        return data

    # -- manifests ------------------------------------------------------------------------------

    def fetch_manifest(self, desc: Descriptor) -> bytes:
        """The bytes of a manifest or index (or any small JSON object ``desc`` names),
        checked: at most 4 MiB, exactly ``desc.size`` bytes hashing to ``desc.digest``, a
        Content-Type and ``mediaType`` that agree with ``desc.media_type``, not schema 1."""
        dgst = _digest.validate(desc.digest)
        name = f"{self.name}@{dgst}"
        if desc.size > MAX_MANIFEST:
            raise ManifestTooLarge(f"{name}: manifest of {desc.size} bytes refused (larger than {MAX_MANIFEST} bytes)")
        cached = self._recall(dgst)
        if cached is not None and len(cached) == desc.size:
            self._check_manifest(desc, cached, "", name, self.reference.domain)
            return cached
        if _is_manifest_type(desc.media_type):
            kinds = ["manifests"]
        elif desc.media_type in _GENERIC_TYPES:
            kinds = ["manifests", "blobs"]
        else:
            kinds = ["blobs"]
        hosts = self._hosts(Capability.PULL, name)
        first: RemoteError | None = None
        for kind, host in [(k, h) for k in kinds for h in hosts]:
            url = self._url(host, kind, dgst)
            resp = self._call(host, "GET", url, scopes=self._pull_scopes(), what=name, headers=[("Accept", _accept(desc.media_type))])
            with resp:
                if resp.status >= 300:
                    err = self._error(resp, name)
                    if first is None or (isinstance(first, RemoteNotFound) and not isinstance(err, RemoteNotFound)):
                        first = err
                    continue
                data = self._read_manifest(resp, name, host)
                ctype = _base_type(resp.header("Content-Type"))
            self._check_manifest(desc, data, ctype, name, host.host)
            return data
        assert first is not None
        raise first

    def _check_manifest(self, desc: Descriptor, data: bytes, ctype: str, name: str, host: str) -> None:
        if len(data) != desc.size:
            raise RemoteSizeMismatch(f"{name}: the registry sent {len(data)} bytes, expected {desc.size}", host=host)
        computed = _digest.of_bytes(data)
        if computed != desc.digest:
            raise RemoteDigestMismatch(f"{name}: the registry sent content with digest {computed}", host=host)
        body_type, version, explicit = sniff_media_type(data)
        if ctype in SCHEMA1_TYPES or desc.media_type in SCHEMA1_TYPES or body_type in SCHEMA1_TYPES or version == 1:
            raise UnsupportedManifest(f"{name}: {_SCHEMA1_MESSAGE}", host=host)
        if _is_manifest_type(desc.media_type):
            if ctype and ctype not in _GENERIC_TYPES and ctype != desc.media_type:
                raise InvalidResponse(
                    f"{name}: the registry sent Content-Type {ctype} for a {desc.media_type}", host=host
                )
            # an OCI manifest or index may leave mediaType out: then only its kind must agree
            if body_type and body_type != desc.media_type and (explicit or not _same_kind(body_type, desc.media_type)):
                raise InvalidResponse(
                    f"{name}: the manifest's mediaType {body_type} disagrees with its descriptor's {desc.media_type}",
                    host=host,
                )

    def manifest_exists(self, desc: Descriptor, tag: str | None = None) -> bool:
        """Does the repository have ``desc`` (under ``tag`` when given)?  HEAD, push host."""
        obj = tag or desc.digest
        what = self._ref_name(obj)
        host = self._push_host(what)
        resp = self._call(host, "HEAD", self._url(host, "manifests", obj), scopes=self._push_scopes(), what=what,
                          headers=[("Accept", _accept(desc.media_type))])
        with resp:
            if resp.status == 404:
                return False
            if resp.status >= 300:
                raise self._error(resp, what)
            if tag:
                return (resp.header("Docker-Content-Digest") or "").strip() == desc.digest
            return True

    def put_manifest(self, tag_or_digest: str, media_type: str, data: bytes) -> str:
        """PUT a manifest under a tag or its digest; returns its digest, checked against the
        registry's ``Docker-Content-Digest``."""
        computed = _digest.of_bytes(data)
        if tag_or_digest.startswith("sha256:") and tag_or_digest != computed:
            raise InvalidArgument(f"manifest has digest {computed}, not {tag_or_digest}")
        what = self._ref_name(tag_or_digest)
        host = self._push_host(what)
        resp = self._call(
            host,
            "PUT",
            self._url(host, "manifests", tag_or_digest),
            scopes=self._push_scopes(),
            what=what,
            headers=[("Content-Type", media_type), ("Content-Length", str(len(data)))],
            body=data,
        )
        with resp:
            if resp.status >= 300 or resp.status == 202:
                raise _as_upload_error(self._error(resp, what))
            announced = (resp.header("Docker-Content-Digest") or "").strip()
        if announced and announced != computed:
            raise RemoteDigestMismatch(
                f"{what}: the registry stored the manifest as {announced}, expected {computed}", host=host.host
            )
        return computed

    # -- blobs: download ------------------------------------------------------------------------

    def fetch_blob(
        self,
        desc: Descriptor,
        sink: BlobSink,
        on_progress: ProgressCallback | None = None,
        *,
        use_urls: bool = False,
    ) -> None:
        """Stream the blob into ``sink``, from ``sink.offset`` on.

        Redirects (to object storage) are followed without ``Authorization``; a cut body is
        resumed with ``Range: bytes=N-`` (a 200 answer restarts the sink); more bytes than
        ``desc.size`` abort.  With ``use_urls``, the descriptor's ``urls`` (foreign layers)
        are tried first.  The sink's owner checks the digest afterwards."""
        dgst = _digest.validate(desc.digest)
        what = f"blob {dgst} of {self.name}"
        if sink.offset > desc.size:
            sink.restart()
        if sink.offset == desc.size:
            return  # already all there; the owner verifies it
        sources: list[tuple[RegistryHost | None, str]] = []
        if use_urls:
            for u in desc.urls:
                if urlsplit(u).scheme in ("http", "https"):
                    sources.append((None, u))
        for host in self._hosts(Capability.PULL, what):
            sources.append((host, self._url(host, "blobs", dgst)))
        best: tuple[int, RemoteError] | None = None
        err: RemoteError
        for src_host, url in sources:
            try:
                self._download(src_host, url, desc, sink, on_progress, what)
                return
            except (SizeMismatch, RemoteDigestMismatch):
                raise
            except RemoteNotFound as e:
                prio, err = 1, e
            except RemoteError as e:
                prio, err = 2, e
            if best is None or prio > best[0]:
                best = (prio, err)
        assert best is not None
        if isinstance(best[1], RemoteNotFound):
            raise RemoteNotFound(f"{what}: not found", host=best[1].host, status=best[1].status, code=best[1].code)
        raise best[1]

    def _download(
        self,
        host: RegistryHost | None,
        url: str,
        desc: Descriptor,
        sink: BlobSink,
        on_progress: ProgressCallback | None,
        what: str,
    ) -> None:
        size = desc.size
        breaks = 0
        while True:
            offset = sink.offset
            headers = [("Accept", f"{desc.media_type}, */*" if desc.media_type else "*/*"), ("Accept-Encoding", "identity")]
            if offset > 0:
                headers.append(("Range", f"bytes={offset}-"))
            if host is not None:
                resp = self._call(host, "GET", url, scopes=self._pull_scopes(), what=what, headers=headers)
            else:
                resp = self.transport.request(
                    "GET", url, tls=TLSConfig(tuple(self.options.tls_ca_cert)), headers=headers, what=f"{what} from {strip_query(url)}"
                )
            with resp:
                if resp.status == 416 and offset > 0:
                    sink.restart()
                    breaks += 1
                    self._check_breaks(breaks, what, sink, size)
                    continue
                if resp.status >= 300:
                    raise self._error(resp, what, not_found="not found")
                encoded = (resp.header("Content-Encoding") or "identity").strip().lower() not in ("", "identity")
                if offset > 0:
                    cr = resp.header("Content-Range") or ""
                    if resp.status == 206 and not cr.startswith(f"bytes {offset}-"):
                        sink.restart()  # not the range we asked for: start over without one
                        breaks += 1
                        self._check_breaks(breaks, what, sink, size)
                        continue
                    if resp.status != 206:
                        sink.restart()  # the whole blob again
                n = resp.content_length
                if n is not None and not encoded and sink.offset + n > size:
                    raise RemoteSizeMismatch(
                        f"{what}: the registry announces {sink.offset + n} bytes, the descriptor {size}", host=resp.host
                    )
                try:
                    for chunk in resp.iter_chunks(CHUNK):
                        if sink.offset + len(chunk) > size:
                            raise RemoteSizeMismatch(f"{what}: the registry sent more than the {size} bytes announced", host=resp.host)
                        sink.write(chunk)
                        if on_progress is not None:
                            on_progress(sink.offset)
                except BodyCut:
                    pass
                else:
                    if sink.offset == size:
                        return
            breaks += 1
            self._check_breaks(breaks, what, sink, size)
            if encoded:
                sink.restart()  # offsets in an encoded body mean nothing: start over

    def _check_breaks(self, breaks: int, what: str, sink: BlobSink, size: int) -> None:
        if breaks > self.options.max_resumes:
            raise ConnectionFailed(
                f"{what}: the download broke off {breaks} times; gave up at {sink.offset} of {size} bytes"
            )

    # -- blobs: push ----------------------------------------------------------------------------

    def blob_exists(self, desc: Descriptor) -> bool:
        """Does the repository have the blob?  ``HEAD /v2/<repo>/blobs/<digest>``."""
        dgst = _digest.validate(desc.digest)
        what = f"blob {dgst} of {self.name}"
        host = self._push_host(what)
        resp = self._call(host, "HEAD", self._url(host, "blobs", dgst), scopes=self._push_scopes(), what=what)
        with resp:
            if resp.status == 404:
                return False
            if resp.status >= 300:
                raise self._error(resp, what)
            return True

    def start_upload(self, *, scopes: Sequence[str] | None = None, query: Sequence[tuple[str, str]] = ()) -> UploadSession:
        """``POST /v2/<repo>/blobs/uploads/``: a new upload session."""
        what = f"upload to {self.name}"
        host = self._push_host(what)
        resp = self._post_upload(host, list(scopes or self._push_scopes()), query, what)
        with resp:
            if resp.status != 202:
                raise _as_upload_error(self._error(resp, what))
            return self._session(resp, host, what)

    def _post_upload(self, host: RegistryHost, scopes: list[str], query: Sequence[tuple[str, str]], what: str) -> Response:
        url = self._url(host, "blobs", "uploads", "", query=query)
        return self._call(host, "POST", url, scopes=scopes, what=what, headers=[("Content-Length", "0")], body=b"")

    def _session(self, resp: Response, host: RegistryHost, what: str) -> UploadSession:
        location = resp.header("Location")
        if not location:
            raise InvalidResponse(f"{what}: the registry opened an upload without a Location", host=host.host)
        absolute = urljoin(resp.url, location.strip())
        if urlsplit(absolute).scheme not in ("http", "https"):
            raise InvalidResponse(f"{what}: the upload Location is not an HTTP URL", host=host.host)
        min_chunk: int | None = None
        raw = resp.header("OCI-Chunk-Min-Length")
        if raw and raw.strip().isdigit() and int(raw) > 0:
            min_chunk = int(raw)
        return UploadSession(absolute, host, min_chunk)

    def mount_blob(self, desc: Descriptor, from_repo: str) -> MountResult:
        """Mount a blob from another repository of the same registry
        (``POST ?mount=<digest>&from=<repo>``): 201 mounted; 202 gives an upload session.
        When the source repository cannot be read, an ordinary upload session is opened."""
        dgst = _digest.validate(desc.digest)
        what = f"mount of blob {dgst} from {from_repo} into {self.name}"
        host = self._push_host(what)
        scopes = [*self._push_scopes(), repository_scope(from_repo, "pull")]
        try:
            resp = self._post_upload(host, scopes, [("mount", dgst), ("from", from_repo)], what)
        except AuthError:
            return MountResult(False, self.start_upload())
        with resp:
            if resp.status == 201:
                announced = (resp.header("Docker-Content-Digest") or "").strip()
                if announced and announced != dgst:
                    raise RemoteDigestMismatch(f"{what}: the registry mounted {announced}", host=host.host)
                return MountResult(True)
            if resp.status == 202:
                return MountResult(False, self._session(resp, host, what))
            if resp.status in (401, 403):
                resp.close()
                return MountResult(False, self.start_upload())
            raise _as_upload_error(self._error(resp, what))

    def upload_blob(
        self,
        desc: Descriptor,
        open_source: SourceOpener,
        chunk_size: int | None = None,
        *,
        session: UploadSession | None = None,
    ) -> None:
        """Upload a blob: one streamed ``PUT ?digest=`` of what ``open_source()`` reads
        (called again for a retry), or ``PATCH`` chunks of ``chunk_size`` bytes (also when the
        registry asks for chunks with ``OCI-Chunk-Min-Length``), then the closing ``PUT``.
        The registry's 201 and ``Docker-Content-Digest`` are checked; on failure the upload
        session is deleted."""
        dgst = _digest.validate(desc.digest)
        what = f"upload of blob {dgst} to {self.name}"
        if chunk_size is not None and chunk_size <= 0:
            raise InvalidArgument("chunk_size must be positive")
        known = _source_size(open_source)
        if known is not None and known != desc.size:
            if session is not None:
                self._cancel(session)
            raise RemoteSizeMismatch(f"{what}: the source has {known} bytes, the descriptor says {desc.size}")
        session = session or self.start_upload()
        try:
            chunk = chunk_size
            if session.min_chunk:
                chunk = max(chunk or DEFAULT_CHUNK, session.min_chunk)
            if chunk:
                location = self._patch_chunks(desc, open_source, session, chunk, what)
                self._finish(session.host, location, dgst, b"", what)
            else:
                self._finish(session.host, session.location, dgst, _counted(open_source, desc.size, what), what,
                             size=desc.size)
        except BaseException:
            self._cancel(session)
            raise

    def _patch_chunks(self, desc: Descriptor, open_source: SourceOpener, session: UploadSession, chunk: int, what: str) -> str:
        location = session.location
        host = session.host
        offset = 0
        src = open_source()
        try:
            while offset < desc.size:
                data = _read_exactly(src, min(chunk, desc.size - offset))
                if not data:
                    raise RemoteSizeMismatch(f"{what}: the source ended after {offset} of {desc.size} bytes")
                end = offset + len(data) - 1
                resp = self._call(
                    host,
                    "PATCH",
                    location,
                    scopes=self._push_scopes(),
                    what=what,
                    headers=[
                        ("Content-Type", "application/octet-stream"),
                        ("Content-Range", f"{offset}-{end}"),
                        ("Content-Length", str(len(data))),
                    ],
                    body=data,
                    retry=False,
                )
                with resp:
                    if resp.status != 202:
                        raise _as_upload_error(self._error(resp, what))
                    got = _range_end(resp.header("Range"))
                    if got is not None and got != end:
                        raise UploadError(f"{what}: the registry holds bytes 0-{got}, expected 0-{end}", host=host.host)
                    nxt = resp.header("Location")
                    if nxt:
                        location = urljoin(resp.url, nxt.strip())
                offset = end + 1
            if src.read(1):
                raise RemoteSizeMismatch(f"{what}: the source has more than the {desc.size} bytes announced")
        finally:
            close = getattr(src, "close", None)
            if callable(close):
                close()
        return location

    def _finish(
        self,
        host: RegistryHost,
        location: str,
        dgst: str,
        body: bytes | Callable[[], Any],
        what: str,
        *,
        size: int = 0,
    ) -> None:
        url = location + ("&" if urlsplit(location).query else "?") + urlencode([("digest", dgst)])
        resp = self._call(
            host,
            "PUT",
            url,
            scopes=self._push_scopes(),
            what=what,
            headers=[("Content-Type", "application/octet-stream"), ("Content-Length", str(size))],
            body=body,
        )
        with resp:
            if resp.status >= 300 or resp.status == 202:
                raise _as_upload_error(self._error(resp, what))
            announced = (resp.header("Docker-Content-Digest") or "").strip()
        if announced and announced != dgst:
            raise RemoteDigestMismatch(f"{what}: the registry stored the blob as {announced}", host=host.host)

    def _cancel(self, session: UploadSession) -> None:
        """Best effort: ``DELETE`` the upload session."""
        try:
            resp = self._call(session.host, "DELETE", session.location, scopes=self._push_scopes(),
                              what=f"cancel upload to {self.name}", retry=False)
            resp.close()
        except Exception:
            pass


def _same_kind(a: str, b: str) -> bool:
    return (mt.is_index(a) and mt.is_index(b)) or (mt.is_manifest(a) and mt.is_manifest(b))


def _as_upload_error(err: RemoteError) -> RemoteError:
    if type(err) is RemoteError:
        return UploadError(str(err), host=err.host, status=err.status, code=err.code)
    return err


def _range_end(value: str | None) -> int | None:
    """The last byte of a ``Range: 0-N`` answer (distribution's upload status)."""
    if not value:
        return None
    v = value.strip()
    if v.startswith("bytes="):
        v = v[len("bytes="):]
    _, sep, end = v.partition("-")
    return int(end) if sep and end.isdigit() else None


def _source_size(open_source: SourceOpener) -> int | None:
    """The size of a seekable source (a file, BytesIO), or None when it cannot be told."""
    src = open_source()
    try:
        fileno = getattr(src, "fileno", None)
        if callable(fileno):
            try:
                st = os.fstat(fileno())
                if stat.S_ISREG(st.st_mode):
                    return st.st_size
            except (OSError, ValueError, io.UnsupportedOperation):
                pass
        seekable = getattr(src, "seekable", None)
        if callable(seekable) and seekable():
            return int(src.seek(0, io.SEEK_END))  # type: ignore[union-attr,attr-defined]
        return None
    finally:
        close = getattr(src, "close", None)
        if callable(close):
            close()


def _read_exactly(src: Any, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        b = src.read(n - len(out))
        if not b:
            break
        out += b
    return bytes(out)


def _counted(open_source: SourceOpener, size: int, what: str) -> Callable[[], Iterator[bytes]]:
    """A re-openable body that yields exactly ``size`` bytes of the source, or fails."""

    def body() -> Iterator[bytes]:
        src = open_source()
        sent = 0
        try:
            while True:
                b = src.read(CHUNK)
                if not b:
                    break
                sent += len(b)
                if sent > size:
                    raise RemoteSizeMismatch(f"{what}: the source has more than the {size} bytes announced")
                yield b
            if sent != size:
                raise RemoteSizeMismatch(f"{what}: the source ended after {sent} of {size} bytes")
        finally:
            close = getattr(src, "close", None)
            if callable(close):
                close()

    return body
