"""HTTP for the registry client: urllib3 2.x used directly, retries and redirects are ours.

- One thread-safe ``PoolManager`` (or ``ProxyManager``) per TLS configuration and proxy.
- Bodies stream (``preload_content=False``): memory stays constant whatever the size.
- Retries: 408, 429, 500, 502, 503, 504 and connection errors/timeouts are retried with
  exponential backoff and jitter, bounded in count (``max_retries``) and in time
  (``max_retry_time``); a 500 is retried once only (twice in a row is a server bug, as
  containerd reasons).  ``Retry-After`` (seconds or an HTTP date) is honoured up to
  ``max_retry_after``; beyond that we fail at once and say so.
- Redirects (301, 302, 303, 307, 308) are followed by us, at most ``max_redirects``;
  ``origin_headers`` (``Authorization``, configured headers) go to the first origin only,
  never to the host a redirect points at.
- The clock and the jitter are injectable, so tests run without waiting.
"""

from __future__ import annotations

import base64
import email.utils
import os
import random
import re
import ssl
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import BinaryIO, Protocol
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    LocationParseError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ProxyError,
    ReadTimeoutError,
    SSLError,
)

from ctrpy.remote.clock import Clock, SystemClock
from ctrpy.remote.errors import (
    ConfigError,
    ConnectionFailed,
    InvalidResponse,
    RateLimited,
    RemoteError,
    TLSVerifyError,
    one_line,
)
from ctrpy.remote.hosts import TLSConfig
from ctrpy.remote.options import RemoteOptions
from ctrpy.remote.proxies import proxy_for

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
CHUNK = 1 << 20
_DRAIN_LIMIT = 64 << 10


class Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


BodySource = Callable[[], "Iterable[bytes] | BinaryIO | Readable"]
Body = bytes | BodySource | None
HeaderInput = Mapping[str, str] | Sequence[tuple[str, str]]


REFUSED_RETRIES = 2  # a refused connection: retried twice (about 1.5 s), not max_retries times


class BodyCut(ConnectionFailed):
    """The connection broke while a response body was being read."""


def strip_query(url: str) -> str:
    """``url`` without its query and fragment (for messages: upload URLs carry state)."""
    p = urlsplit(url)
    return urlunsplit((p.scheme, p.netloc, p.path, "", ""))


def origin_of(url: str) -> str:
    p = urlsplit(url)
    scheme = p.scheme.lower()
    host = (p.hostname or "").lower()
    port = p.port or (443 if scheme == "https" else 80)
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


def backoff_delay(attempt: int, base: float, cap: float, jitter: float) -> float:
    """The wait before retry ``attempt`` (1, 2, ...): ``base * 2**(attempt-1)`` capped at
    ``cap``, scaled into [50%, 100%] by ``jitter`` in [0, 1)."""
    full = min(cap, base * float(2 ** max(0, attempt - 1)))
    return full * (0.5 + 0.5 * min(max(jitter, 0.0), 1.0))


def parse_retry_after(value: str | None, now: float) -> float | None:
    """``Retry-After`` in seconds from ``now`` (wall clock); None when absent or unreadable."""
    if not value:
        return None
    v = value.strip()
    if v.isdigit():
        return float(int(v))
    try:
        when = email.utils.parsedate_to_datetime(v)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, float(when.timestamp()) - now)


def _headers(h: HeaderInput | None) -> list[tuple[str, str]]:
    if h is None:
        return []
    if isinstance(h, Mapping):
        return list(h.items())
    return list(h)


class Response:
    """A streamed response.  Use as a context manager or call :meth:`close`."""

    def __init__(self, raw: urllib3.BaseHTTPResponse, url: str, method: str, what: str) -> None:
        self.raw = raw
        self.url = url
        self.method = method
        self.what = what
        self.status = raw.status
        self.headers = raw.headers
        self._closed = False

    def header(self, name: str) -> str | None:
        v = self.headers.get(name)
        return v if v is None else str(v)

    @property
    def content_length(self) -> int | None:
        v = self.header("Content-Length")
        if v is None:
            return None
        try:
            n = int(v.strip())
        except ValueError:
            return None
        return n if n >= 0 else None

    @property
    def host(self) -> str:
        return urlsplit(self.url).netloc

    def read(self, amt: int = CHUNK) -> bytes:
        """Up to ``amt`` bytes, whatever has arrived (one read from the socket, so the bytes
        before a cut are never lost); ``b""`` at the end.  A broken connection raises
        :class:`BodyCut`."""
        if self._closed:
            return b""
        try:
            return self.raw.read1(amt, decode_content=True)
        except (ProtocolError, ReadTimeoutError, SSLError, OSError) as e:
            raise BodyCut(f"{self.what}: connection broken while reading the body ({_reason(e)})", host=self.host) from None
        except HTTPError as e:
            raise BodyCut(f"{self.what}: reading the body failed ({_reason(e)})", host=self.host) from None

    def iter_chunks(self, size: int = CHUNK) -> Iterator[bytes]:
        while True:
            chunk = self.read(size)
            if not chunk:
                return
            yield chunk

    def read_capped(self, limit: int) -> bytes:
        """The whole body, or its first ``limit + 1`` bytes when it is longer than ``limit``."""
        out = bytearray()
        while len(out) <= limit:
            chunk = self.read(min(CHUNK, limit + 1 - len(out)))
            if not chunk:
                break
            out += chunk
        return bytes(out)

    def error_body(self) -> bytes:
        """The start of an error body (for the registry's error JSON), then close."""
        try:
            return self.read_capped(_DRAIN_LIMIT)
        except BodyCut:
            return b""
        finally:
            self.close()

    def close(self) -> None:
        """Give the connection back when the rest is small, else drop it."""
        if self._closed:
            return
        self._closed = True
        try:
            left = self.content_length
            if self.method != "HEAD" and (left is None or left > _DRAIN_LIMIT):
                self.raw.close()
            else:
                self.raw.drain_conn()
        except Exception:
            self.raw.close()
        finally:
            self.raw.release_conn()

    def __enter__(self) -> Response:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _reason(e: BaseException) -> str:
    """A short reason for a low-level error, without the URL repeated."""
    inner: BaseException = e
    for _ in range(4):
        nxt = getattr(inner, "reason", None) or inner.__context__
        if not isinstance(nxt, BaseException):
            break
        inner = nxt
    text = str(inner) or type(inner).__name__
    if isinstance(inner, ConnectionRefusedError) or "Connection refused" in text:
        return "connection refused"
    if "timed out" in text.lower():
        return "timed out"
    text = text.split(": ", 1)[-1] if text.startswith("<") else text
    return one_line(text, 160)


_SSL_NOISE = re.compile(r"\s*\(_ssl\.c:\d+\)?|\[SSL: [A-Z0-9_]+\]\s*")


def _tls_reason(e: BaseException) -> str:
    """What went wrong in a TLS handshake, in a few words."""
    inner: BaseException | None = e
    for _ in range(6):
        if inner is None:
            break
        if isinstance(inner, ssl.SSLCertVerificationError):
            msg = inner.verify_message or "unknown reason"
            return f"certificate verify failed: {msg}"
        nxt = getattr(inner, "reason", None)
        inner = nxt if isinstance(nxt, BaseException) else inner.__context__
    text = str(e)
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        return "certificate verify failed"
    if "Hostname mismatch" in text or "doesn't match" in text:
        return "the certificate does not name this host"
    last = text.rsplit(": ", 1)[-1] if ": [SSL" in text else text
    return one_line(_SSL_NOISE.sub("", last).strip(" ()"), 160)


class Transport:
    """Sends requests; shared by every thread of a pull or push."""

    def __init__(
        self,
        options: RemoteOptions | None = None,
        *,
        clock: Clock | None = None,
        env: Mapping[str, str] | None = None,
        jitter: Callable[[], float] | None = None,
    ) -> None:
        self.options = options or RemoteOptions()
        self.clock: Clock = clock or SystemClock()
        self.env: Mapping[str, str] = os.environ if env is None else env
        self.jitter = jitter or random.random
        self._lock = threading.Lock()
        self._managers: dict[tuple[str | None, TLSConfig | None], urllib3.PoolManager] = {}
        self._contexts: dict[TLSConfig, ssl.SSLContext] = {}
        self.timeout = urllib3.Timeout(connect=self.options.connect_timeout, read=self.options.read_timeout)

    # -- pools ----------------------------------------------------------------------------------

    def ssl_context(self, tls: TLSConfig) -> ssl.SSLContext:
        with self._lock:
            ctx = self._contexts.get(tls)
            if ctx is None:
                ctx = self._contexts[tls] = make_ssl_context(tls)
            return ctx

    def _manager(self, url: str, tls: TLSConfig) -> urllib3.PoolManager:
        scheme = urlsplit(url).scheme.lower()
        proxy = proxy_for(url, self.env)
        tkey = tls if scheme == "https" else None
        key = (proxy, tkey)
        with self._lock:
            mgr = self._managers.get(key)
            if mgr is not None:
                return mgr
        ctx = self.ssl_context(tls) if tkey is not None else None
        kw: dict[str, object] = {
            "num_pools": 32,
            "maxsize": self.options.max_connections,
            "block": False,
            "retries": False,
            "timeout": self.timeout,
        }
        if ctx is not None:
            kw["ssl_context"] = ctx
            if tls.skip_verify:
                kw["cert_reqs"] = "CERT_NONE"
                kw["assert_hostname"] = False
                # asked for (-k / skip_verify): urllib3's warning on every request is noise
                urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        mgr = _proxy_manager(proxy, kw) if proxy is not None else urllib3.PoolManager(**kw)  # type: ignore[arg-type]
        with self._lock:
            return self._managers.setdefault(key, mgr)

    def close(self) -> None:
        with self._lock:
            managers = list(self._managers.values())
            self._managers.clear()
        for m in managers:
            m.clear()

    def plain_to_https(self, resp: Response, body: bytes) -> bool:
        """Was ``resp`` (its error ``body`` read) a plain-HTTP request answered by an HTTPS
        server (Go's 400 "HTTP request to an HTTPS server")?  A HEAD's answer has no body to
        tell: then a bare ``GET /v2/`` at the same origin asks."""
        if resp.status != 400 or not resp.url.startswith("http://"):
            return False
        if resp.method == "HEAD":
            try:
                probe = self.request("GET", origin_of(resp.url) + "/v2/", tls=TLSConfig(), retry=False)
            except RemoteError:
                return False
            with probe:
                body = probe.error_body() if probe.status == 400 else b""
        return b"HTTP request to an HTTPS server" in body

    # -- requests -------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        url: str,
        *,
        tls: TLSConfig | None = None,
        headers: HeaderInput | None = None,
        origin_headers: HeaderInput | None = None,
        body: Body = None,
        retry: bool = True,
        follow_redirects: bool = True,
        what: str | None = None,
    ) -> Response:
        """Send ``method url`` with retries and redirects; the response streams.

        ``headers`` go everywhere; ``origin_headers`` only to the origin of ``url``.  ``body``
        is bytes or a callable giving a fresh reader or iterable for every attempt.  Gives
        the final response whatever its status (the caller maps errors), or raises
        :class:`ConnectionFailed` / :class:`TLSVerifyError` / :class:`RateLimited`.
        """
        what = what or f"{method} {strip_query(url)}"
        tls = tls or TLSConfig()
        o = self.options
        start = self.clock.monotonic()
        attempt = 0
        last_status: int | None = None
        while True:
            failure: ConnectionFailed | None = None
            resp: Response | None = None
            limit = o.max_retries
            try:
                resp = self._follow(method, url, tls, headers, origin_headers, body, follow_redirects, what)
            except _Transient as e:
                failure = ConnectionFailed(f"{what}: {e.reason}", host=urlsplit(url).netloc)
                if e.max_retries is not None:
                    limit = min(limit, e.max_retries)
            if resp is not None and (not retry or resp.status not in RETRY_STATUSES):
                return resp
            if resp is not None and resp.status == 500 and last_status == 500:
                return resp  # a 500 twice in a row is a bug on the server, not a hiccup
            last_status = resp.status if resp is not None else None
            attempt += 1
            wait: float | None = None
            if resp is not None:
                ra = parse_retry_after(resp.header("Retry-After"), self.clock.time())
                if ra is not None and ra > o.max_retry_after:
                    resp.close()
                    raise RateLimited(
                        f"{what}: {urlsplit(url).netloc} answered {resp.status} and asks to retry after "
                        f"{ra:.0f}s, longer than the {o.max_retry_after:.0f}s ctrpy waits; try again later",
                        host=urlsplit(url).netloc,
                        status=resp.status,
                    )
                wait = ra
            if wait is None:
                wait = backoff_delay(attempt, o.backoff_base, o.backoff_max, self.jitter())
            spent = self.clock.monotonic() - start
            if not retry or attempt > limit or spent + wait > o.max_retry_time:
                if resp is not None:
                    return resp  # the caller turns the status into an error
                assert failure is not None
                tries = attempt
                raise type(failure)(
                    f"{failure} (gave up after {tries} attempt{'s' if tries != 1 else ''})",
                    host=failure.host,
                ) from None
            if resp is not None:
                resp.close()
            self.clock.sleep(wait)

    def _follow(
        self,
        method: str,
        url: str,
        tls: TLSConfig,
        headers: HeaderInput | None,
        origin_headers: HeaderInput | None,
        body: Body,
        follow: bool,
        what: str,
    ) -> Response:
        first = origin_of(url)
        for _hop in range(self.options.max_redirects + 1):
            same = origin_of(url) == first
            hdrs = urllib3.HTTPHeaderDict()
            for k, v in _headers(headers):
                hdrs.add(k, v)
            if same:
                for k, v in _headers(origin_headers):
                    hdrs.add(k, v)
            if "User-Agent" not in hdrs:
                hdrs["User-Agent"] = self.options.user_agent
            resp = self._send(method, url, tls if same else tls.for_other_host(), hdrs, body, what)
            if not follow or resp.status not in REDIRECT_STATUSES:
                return resp
            location = resp.header("Location")
            if not location:
                return resp
            resp.close()
            url = urljoin(url, location)
            if urlsplit(url).scheme not in ("http", "https"):
                raise InvalidResponse(f"{what}: redirected to a non-HTTP location", host=urlsplit(url).netloc)
            if resp.status == 303 or (resp.status in (301, 302) and method == "POST"):
                method = "GET" if method != "HEAD" else "HEAD"
                body = None
                headers = [(k, v) for k, v in _headers(headers) if k.lower() not in ("content-length", "content-type")]
        raise InvalidResponse(f"{what}: more than {self.options.max_redirects} redirects", host=urlsplit(url).netloc)

    def _send(
        self,
        method: str,
        url: str,
        tls: TLSConfig,
        headers: urllib3.HTTPHeaderDict,
        body: Body,
        what: str,
    ) -> Response:
        mgr = self._manager(url, tls)
        payload: object = None
        if isinstance(body, bytes):
            payload = body
        elif body is not None:
            payload = body()
        try:
            raw = mgr.urlopen(
                method,
                url,
                body=payload,  # type: ignore[arg-type]
                headers=headers,
                redirect=False,
                retries=False,
                preload_content=False,
                decode_content=True,
                assert_same_host=False,
                timeout=self.timeout,
            )
        except SSLError as e:
            host = urlsplit(url).netloc
            reason = _tls_reason(e)
            if "verify failed" in reason or "does not name" in reason:
                raise TLSVerifyError(f"{what}: TLS: {reason} for {host}", host=host, topic="tls-verify") from None
            if "WRONG_VERSION_NUMBER" in str(e) or "wrong version number" in str(e):
                raise ConnectionFailed(
                    f"{what}: TLS handshake with {host} failed (wrong version number): it may speak plain HTTP",
                    host=host, topic="plain-http",
                ) from None
            topic = "client-cert" if "BAD_CERTIFICATE" in str(e) or "CERTIFICATE_REQUIRED" in str(e) else ""
            raise ConnectionFailed(f"{what}: TLS handshake with {host} failed: {reason}", host=host, topic=topic) from None
        except NameResolutionError:
            # a name that does not resolve now will not in a second either: no retries
            host = urlsplit(url).hostname or urlsplit(url).netloc
            raise ConnectionFailed(f"{what}: cannot resolve the host name {host}", host=urlsplit(url).netloc,
                                   topic="dns") from None
        except (NewConnectionError, ConnectTimeoutError, ReadTimeoutError, ProtocolError, ProxyError) as e:
            reason = _reason(e)
            # nothing listens there: worth one quick retry (a registry restarting), not a minute
            raise _Transient(reason, max_retries=REFUSED_RETRIES if reason == "connection refused" else None) from None
        except LocationParseError:
            raise ConfigError(f"{what}: invalid URL") from None
        except HTTPError as e:
            raise _Transient(_reason(e)) from None
        except OSError as e:
            raise _Transient(_reason(e)) from None
        finally:
            close = getattr(payload, "close", None)
            if callable(close):
                try:
                    close()
                except Exception:
                    pass
        return Response(raw, url, method, what)


class _Transient(Exception):
    """A connection-level failure worth a retry (at most ``max_retries`` times, when set)."""

    def __init__(self, reason: str, max_retries: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.max_retries = max_retries


def make_ssl_context(tls: TLSConfig) -> ssl.SSLContext:
    """The system CAs plus ``tls.ca_certs``; the first client pair; or no verification."""
    ctx = ssl.create_default_context()
    for ca in tls.ca_certs:
        try:
            ctx.load_verify_locations(cafile=ca)
        except FileNotFoundError:
            raise ConfigError(f"CA certificate {ca} does not exist") from None
        except (ssl.SSLError, OSError) as e:
            raise ConfigError(f"cannot load CA certificate {ca}: {one_line(str(e), 120)}") from None
    if tls.client_pairs:
        cert, key = tls.client_pairs[0]
        try:
            ctx.load_cert_chain(cert, key or None)
        except FileNotFoundError:
            raise ConfigError(f"client certificate {cert} or its key does not exist") from None
        except (ssl.SSLError, OSError) as e:
            raise ConfigError(f"cannot load client certificate {cert}: {one_line(str(e), 120)}") from None
    if tls.skip_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _proxy_manager(proxy: str, kw: dict[str, object]) -> urllib3.PoolManager:
    p = urlsplit(proxy)
    proxy_headers: dict[str, str] = {}
    if p.username is not None:
        user = unquote(p.username)
        password = unquote(p.password or "")
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        proxy_headers["Proxy-Authorization"] = f"Basic {token}"
        netloc = p.hostname or ""
        if ":" in netloc:
            netloc = f"[{netloc}]"
        if p.port:
            netloc += f":{p.port}"
        proxy = urlunsplit((p.scheme, netloc, p.path, "", ""))
    try:
        return urllib3.ProxyManager(proxy, proxy_headers=proxy_headers or None, **kw)  # type: ignore[arg-type]
    except (ValueError, LocationParseError, urllib3.exceptions.ProxySchemeUnknown):
        raise ConfigError(f"invalid proxy URL in the environment ({p.scheme}://{p.hostname}...)") from None
