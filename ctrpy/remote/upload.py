"""Blob uploads: sessions, cross-repository mounts, streamed and chunked PUTs.

:class:`Uploads` is the upload half of :class:`ctrpy.remote.registry.Registry` (which
inherits it): it speaks the distribution API's upload endpoints through the registry's own
authorized calls.
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urljoin, urlsplit

from ctrpy.errors import InvalidArgument
from ctrpy.oci import digest as _digest
from ctrpy.oci.descriptor import Descriptor
from ctrpy.remote.auth import repository_scope
from ctrpy.remote.errors import (
    AuthError,
    InvalidResponse,
    RemoteDigestMismatch,
    RemoteError,
    RemoteSizeMismatch,
    UploadError,
)
from ctrpy.remote.hosts import RegistryHost
from ctrpy.remote.sink import SourceOpener
from ctrpy.remote.transport import CHUNK, Response

DEFAULT_CHUNK = 8 << 20


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


class Uploads:
    """The upload endpoints of one repository (mixed into ``Registry``)."""

    if TYPE_CHECKING:  # what Registry provides
        name: str

        def _push_host(self, what: str) -> RegistryHost: ...
        def _push_scopes(self) -> list[str]: ...
        def _url(self, host: RegistryHost, *parts: str, query: Sequence[tuple[str, str]] = ()) -> str: ...
        def _error(self, resp: Response, what: str, not_found: str | None = None) -> RemoteError: ...
        def _call(
            self, host: RegistryHost, method: str, url: str, *, scopes: Sequence[str], what: str,
            headers: Sequence[tuple[str, str]] = (), body: bytes | Callable[[], Any] | None = None,
            retry: bool = True,
        ) -> Response: ...

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
                resp = self._send_bytes(host, "PATCH", location, what, data, len(data),
                                        [("Content-Range", f"{offset}-{end}")], retry=False)
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
            _close(src)
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
        resp = self._send_bytes(host, "PUT", url, what, body, size)
        with resp:
            if resp.status >= 300 or resp.status == 202:
                raise _as_upload_error(self._error(resp, what))
            announced = (resp.header("Docker-Content-Digest") or "").strip()
        if announced and announced != dgst:
            raise RemoteDigestMismatch(f"{what}: the registry stored the blob as {announced}", host=host.host)

    def _send_bytes(self, host: RegistryHost, method: str, url: str, what: str, body: bytes | Callable[[], Any],
                    size: int, headers: Sequence[tuple[str, str]] = (), *, retry: bool = True) -> Response:
        """A request carrying ``size`` bytes of a blob into an upload session."""
        return self._call(host, method, url, scopes=self._push_scopes(), what=what, retry=retry, body=body,
                          headers=[("Content-Type", "application/octet-stream"), *headers, ("Content-Length", str(size))])

    def _cancel(self, session: UploadSession) -> None:
        """Best effort: ``DELETE`` the upload session."""
        try:
            resp = self._call(session.host, "DELETE", session.location, scopes=self._push_scopes(),
                              what=f"cancel upload to {self.name}", retry=False)
            resp.close()
        except Exception:
            pass


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
        _close(src)


def _read_exactly(src: Any, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        b = src.read(n - len(out))
        if not b:
            break
        out += b
    return bytes(out)


def _close(src: object) -> None:
    """Close what a source opener gave, if it can be closed."""
    close = getattr(src, "close", None)
    if callable(close):
        close()


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
            _close(src)

    return body
