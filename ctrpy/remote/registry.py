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

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlencode, urlsplit

from ctrpy.errors import InvalidArgument, SizeMismatch
from ctrpy.oci import digest as _digest
from ctrpy.oci.descriptor import Descriptor
from ctrpy.oci.reference import Reference
from ctrpy.oci.reference import parse as parse_reference
from ctrpy.remote.auth import HostAuth, parse_challenges, repository_scope
from ctrpy.remote.clock import Clock, SystemClock
from ctrpy.remote.credentials import CredentialStore
from ctrpy.remote.errors import (
    ConnectionFailed,
    InvalidResponse,
    ManifestTooLarge,
    RemoteDigestMismatch,
    RemoteError,
    RemoteNotFound,
    RemoteSizeMismatch,
    UnsupportedManifest,
    error_from_response,
    first_answer,
)
from ctrpy.remote.hosts import Capability, RegistryHost, TLSConfig, load_hosts
from ctrpy.remote.manifests import (
    GENERIC_TYPES,
    SCHEMA1_MESSAGE,
    SCHEMA1_TYPES,
    accept_header,
    base_type,
    is_manifest_type,
    same_kind,
    sniff_media_type,
)
from ctrpy.remote.options import RemoteOptions
from ctrpy.remote.sink import BlobSink, ProgressCallback
from ctrpy.remote.transport import CHUNK, BodyCut, Response, Transport, origin_of, strip_query
from ctrpy.remote.upload import Uploads, _as_upload_error

MAX_MANIFEST = 4 << 20  # containerd's MaxManifestSize is 4 * 1048 * 1048; we round to 4 MiB
_CACHE_ENTRIES = 16


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


class Registry(Uploads):
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
        if self.transport.plain_to_https(resp, body):
            return ConnectionFailed(
                f"{what}: {resp.host} speaks HTTPS, not plain HTTP", host=resp.host, status=400, topic="https"
            )
        return error_from_response(what, resp.status, body, host=resp.host, not_found=not_found)

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

        def at(host: RegistryHost, kind: str) -> Callable[[], Descriptor]:
            return lambda: self._resolve_at(host, kind, dgst or tag, dgst, name)

        return first_answer(
            [at(host, kind) for kind in kinds for host in hosts],
            final=(UnsupportedManifest, RemoteDigestMismatch),
            rank={ConnectionFailed: 1, RemoteNotFound: 2, RemoteError: 3, ManifestTooLarge: 4},
        )

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
        headers = [("Accept", accept_header())]
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
                ctype = base_type(resp.header("Content-Type"))
                if ctype == "text/plain":  # registry.access.redhat.com served schema 1 so
                    ctype = "application/vnd.docker.distribution.manifest.v1+json"
                if ctype in SCHEMA1_TYPES:
                    raise UnsupportedManifest(f"{name}: {SCHEMA1_MESSAGE}", host=host.host)
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
                if ctype and ctype not in GENERIC_TYPES and size and found:
                    return Descriptor(ctype, found, size)
                if kind == "blobs" and size and found:
                    return Descriptor(ctype or "application/octet-stream", found, size)
        return self._resolve_get(host, kind, obj, dgst, name)

    def _resolve_get(self, host: RegistryHost, kind: str, obj: str, dgst: str, name: str) -> Descriptor:
        url = self._url(host, kind, obj)
        resp = self._call(host, "GET", url, scopes=self._pull_scopes(), what=name, headers=[("Accept", accept_header())])
        with resp:
            if resp.status >= 300:
                raise self._error(resp, name)
            data = self._read_manifest(resp, name, host)
            announced = (resp.header("Docker-Content-Digest") or "").strip()
            ctype = base_type(resp.header("Content-Type"))
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
            raise UnsupportedManifest(f"{name}: {SCHEMA1_MESSAGE}", host=host.host)
        media = ctype if ctype not in GENERIC_TYPES else ""
        if media and body_type and is_manifest_type(media) and body_type != media:
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
        if is_manifest_type(desc.media_type):
            kinds = ["manifests"]
        elif desc.media_type in GENERIC_TYPES:
            kinds = ["manifests", "blobs"]
        else:
            kinds = ["blobs"]
        hosts = self._hosts(Capability.PULL, name)
        first: RemoteError | None = None
        for kind, host in [(k, h) for k in kinds for h in hosts]:
            url = self._url(host, kind, dgst)
            resp = self._call(host, "GET", url, scopes=self._pull_scopes(), what=name, headers=[("Accept", accept_header(desc.media_type))])
            with resp:
                if resp.status >= 300:
                    err = self._error(resp, name)
                    if first is None or (isinstance(first, RemoteNotFound) and not isinstance(err, RemoteNotFound)):
                        first = err
                    continue
                data = self._read_manifest(resp, name, host)
                ctype = base_type(resp.header("Content-Type"))
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
            raise UnsupportedManifest(f"{name}: {SCHEMA1_MESSAGE}", host=host)
        if is_manifest_type(desc.media_type):
            if ctype and ctype not in GENERIC_TYPES and ctype != desc.media_type:
                raise InvalidResponse(
                    f"{name}: the registry sent Content-Type {ctype} for a {desc.media_type}", host=host
                )
            # an OCI manifest or index may leave mediaType out: then only its kind must agree
            if body_type and body_type != desc.media_type and (explicit or not same_kind(body_type, desc.media_type)):
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
                          headers=[("Accept", accept_header(desc.media_type))])
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

        def source(src_host: RegistryHost | None, url: str) -> Callable[[], None]:
            return lambda: self._download(src_host, url, desc, sink, on_progress, what)

        try:
            first_answer([source(h, u) for h, u in sources], final=(SizeMismatch, RemoteDigestMismatch),
                          rank={RemoteNotFound: 1, RemoteError: 2})
        except RemoteNotFound as e:
            raise RemoteNotFound(f"{what}: not found", host=e.host, status=e.status, code=e.code) from None

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
