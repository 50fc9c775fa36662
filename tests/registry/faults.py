"""A fault-injecting reverse proxy in front of a real registry (loopback only, threaded).

``FaultProxy(upstream="127.0.0.1:PORT")`` listens on its own 127.0.0.1 port and forwards
every request to the registry (the ``Host`` header is kept, so the registry's upload
``Location`` URLs point back at the proxy).  Rules, tried in the order they were added,
change what matches: ``Rule(method, path regex, nth)`` (``nth``: the 1-based number of the
request among those the rule matches, or a set of them; None: every one; the first rule
whose turn it is acts) with one or more actions:

- ``status`` (+ ``headers``, ``body``): answer this instead of asking the registry (500,
  429 with ``Retry-After``, 404 for a mirror, a 200 with a made-up body); a
  ``Content-Length`` in ``headers`` is sent as given (a HEAD that announces a size);
  ``no_length`` sends the body without a length, closing the connection after it;
- ``corrupt``: flip one byte of the body (its middle); ``cut_after``: send the headers with
  the full length, then only that many bytes, then drop the connection; ``extra_bytes``:
  append bytes (the length grows accordingly); ``ignore_range``: forward without the
  ``Range`` header (the registry then answers 200 with everything);
- ``set_headers`` / ``drop_headers``: change the registry's answer (a wrong
  ``Docker-Content-Digest``, no ``Content-Type``); ``relative_location``: make its
  ``Location`` a path without scheme and host;
- ``redirect``: answer ``redirect_status`` (307) pointing at the side server on 127.0.0.2,
  which serves the same path from the registry and records whether an ``Authorization``
  header reached it (``side_requests``);
- ``delay`` seconds before forwarding; ``barrier=N``: hold each matching request until N
  of them are in flight at once (at most ``barrier_timeout`` seconds) - a deterministic way
  to see that a client really runs requests in parallel.

Every request is recorded (``requests``: method, path, query, headers); ``count()`` counts
them, ``max_in_flight`` is the most requests seen at once.  ``path_prefix`` makes the proxy
serve the registry under another path: a request path must start with it, and it is
replaced by ``upstream_prefix`` (``"/custom/api"`` -> ``"/v2"`` for hosts.toml
``override_path``; ``"/mirror-root"`` -> ``""`` for a mirror URL with a path).
``side_upstream_headers`` are what the side server sends to the registry (its own
credentials when the registry wants some: the client's never reach it).
"""

from __future__ import annotations

import http.client
import re
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

from tests.registry.serving import QuietHandler, Serving

HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers", "transfer-encoding", "upgrade"}
)
MAX_REQUEST_BODY = 256 << 20
CHUNK = 64 << 10
SIDE_HOST = "127.0.0.2"


@dataclass
class Rule:
    method: str | None = None
    path: str = ".*"
    nth: int | Iterable[int] | None = None
    # answer instead of the registry
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    no_length: bool = False
    # change the registry's answer
    set_headers: dict[str, str] = field(default_factory=dict)
    drop_headers: tuple[str, ...] = ()
    corrupt: bool = False
    cut_after: int | None = None
    extra_bytes: bytes = b""
    ignore_range: bool = False
    relative_location: bool = False
    redirect: bool = False
    redirect_status: int = 307
    delay: float = 0.0
    barrier: int | None = None
    barrier_timeout: float = 10.0
    name: str = ""
    # counters
    matched: int = 0
    fired: int = 0

    def __post_init__(self) -> None:
        self._re = re.compile(self.path)
        self._nths: frozenset[int] | None
        if self.nth is None:
            self._nths = None
        elif isinstance(self.nth, int):
            self._nths = frozenset({self.nth})
        else:
            self._nths = frozenset(self.nth)

    def applies(self, method: str, path: str) -> bool:
        """Count a matching request (every rule counts every request it matches, whichever
        rule acts on it); True when this one is the rule's ``nth``."""
        if self.method is not None and self.method.upper() != method.upper():
            return False
        if not self._re.search(path):
            return False
        self.matched += 1
        return self._nths is None or self.matched in self._nths


@dataclass(frozen=True)
class Record:
    method: str
    path: str
    query: str
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "
    rule: str = ""

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())




class FaultProxy(Serving):
    def __init__(
        self,
        upstream: str,
        *,
        path_prefix: str = "",
        upstream_prefix: str = "",
        side_host: str = SIDE_HOST,
        side_upstream_headers: dict[str, str] | None = None,
    ) -> None:
        self.upstream = upstream
        self.path_prefix = path_prefix.rstrip("/")
        self.upstream_prefix = upstream_prefix.rstrip("/")
        self.side_upstream_headers = dict(side_upstream_headers or {})
        self.side_host = side_host
        self.rules: list[Rule] = []
        self.requests: list[Record] = []
        self.side_requests: list[Record] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._barrier_counts: dict[int, int] = {}

    # -- set-up ----------------------------------------------------------------------------------

    def add(self, rule: Rule | None = None, **kw: Any) -> Rule:
        r = rule if rule is not None else Rule(**kw)
        with self._lock:
            self.rules.append(r)
        return r

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()
            self.requests.clear()
            self.side_requests.clear()
            self.max_in_flight = self.in_flight

    @property
    def url(self) -> str:
        return f"http://{self.host}{self.path_prefix}"

    @property
    def side_url(self) -> str:
        return f"http://{self.side_host}:{self._port(1)}"

    def count(self, method: str | None = None, path: str | None = None) -> int:
        rx = re.compile(path) if path else None
        with self._lock:
            return sum(
                1
                for r in self.requests
                if (method is None or r.method == method) and (rx is None or rx.search(r.path))
            )

    def matching(self, method: str | None = None, path: str | None = None) -> list[Record]:
        rx = re.compile(path) if path else None
        with self._lock:
            return [
                r for r in self.requests if (method is None or r.method == method) and (rx is None or rx.search(r.path))
            ]

    def _listeners(self) -> list[tuple[str, type[BaseHTTPRequestHandler]]]:
        return [("127.0.0.1", _proxy_handler(self)), (self.side_host, _side_handler(self))]

    def _stopped(self) -> None:
        with self._cond:
            self._cond.notify_all()

    # -- internals -------------------------------------------------------------------------------

    def _pick(self, method: str, path: str) -> Rule | None:
        """The first rule whose turn it is; every matching rule counts the request."""
        chosen: Rule | None = None
        with self._lock:
            for r in self.rules:
                if r.applies(method, path) and chosen is None:
                    chosen = r
            if chosen is not None:
                chosen.fired += 1
        return chosen

    def _enter(self, rule: Rule | None) -> None:
        with self._cond:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            if rule is not None and rule.barrier:
                key = id(rule)
                self._barrier_counts[key] = self._barrier_counts.get(key, 0) + 1
                self._cond.notify_all()
                deadline = time.monotonic() + rule.barrier_timeout
                while self._barrier_counts[key] < rule.barrier and self._server is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)

    def _leave(self, rule: Rule | None) -> None:
        with self._cond:
            self.in_flight -= 1
            if rule is not None and rule.barrier:
                pass  # the count only grows: once N were in together, later ones pass at once

    def _record(self, to: list[Record], rec: Record) -> None:
        with self._lock:
            to.append(rec)


def _header_dict(h: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in h.items():
        k = k.lower()
        out[k] = f"{out[k]}, {v}" if k in out else v
    return out


def _path_only(url: str) -> str:
    p = urlsplit(url)
    return p.path + (f"?{p.query}" if p.query else "")


def _read_request_body(handler: BaseHTTPRequestHandler) -> bytes:
    if (handler.headers.get("Transfer-Encoding") or "").lower() == "chunked":
        out = bytearray()
        while True:
            line = handler.rfile.readline(1024)
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while handler.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                return bytes(out)
            out += handler.rfile.read(size)
            handler.rfile.readline(16)
            if len(out) > MAX_REQUEST_BODY:
                raise ValueError("request body too large")
    n = int(handler.headers.get("Content-Length") or 0)
    if n > MAX_REQUEST_BODY:
        raise ValueError("request body too large")
    return handler.rfile.read(n) if n else b""


def _forward(
    upstream: str,
    method: str,
    path_and_query: str,
    headers: dict[str, str],
    body: bytes,
) -> http.client.HTTPResponse:
    host, _, port = upstream.partition(":")
    conn = http.client.HTTPConnection(host, int(port or 80), timeout=60)
    conn.putrequest(method, path_and_query, skip_host=True, skip_accept_encoding=True)
    for k, v in headers.items():
        conn.putheader(k, v)
    if body or method in ("POST", "PUT", "PATCH"):
        conn.putheader("Content-Length", str(len(body)))
    conn.endheaders(body if body else None)
    resp = conn.getresponse()
    resp._ctrpy_conn = conn  # type: ignore[attr-defined]  # closed with the response
    return resp


def _proxy_handler(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(QuietHandler):

        def do_GET(self) -> None:
            self._handle()

        do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

        def _handle(self) -> None:
            parts = urlsplit(self.path)
            path, query = parts.path, parts.query
            if proxy.path_prefix or proxy.upstream_prefix:
                if not path.startswith(proxy.path_prefix + "/"):
                    proxy._record(proxy.requests, Record(self.command, path, query, _header_dict(self.headers), "no-prefix"))
                    self._answer(404, {"Content-Type": "application/json"}, b'{"errors":[{"code":"NOT_FOUND","message":"outside the prefix"}]}')
                    return
                path = proxy.upstream_prefix + path[len(proxy.path_prefix) :]
            try:
                body = _read_request_body(self)
            except ValueError:
                self._answer(413, {}, b"")
                return
            rule = proxy._pick(self.command, path)
            proxy._record(proxy.requests, Record(self.command, path, query, _header_dict(self.headers), rule.name if rule else ""))
            proxy._enter(rule)
            try:
                self._serve(rule, path, query, body)
            finally:
                proxy._leave(rule)

        def _answer(self, status: int, headers: dict[str, str], body: bytes, *, no_length: bool = False) -> None:
            self.send_response(status)
            length = str(len(body))
            for k, v in headers.items():
                if k.lower() == "content-length":
                    length = v
                else:
                    self.send_header(k, v)
            if no_length:
                self.send_header("Connection", "close")
                self.close_connection = True
            else:
                self.send_header("Content-Length", length)
            self.end_headers()
            if self.command != "HEAD" and body:
                self.wfile.write(body)

        def _serve(self, rule: Rule | None, path: str, query: str, body: bytes) -> None:
            if rule is not None and rule.delay:
                time.sleep(rule.delay)
            if rule is not None and rule.status is not None:
                self._answer(rule.status, dict(rule.headers), rule.body, no_length=rule.no_length)
                return
            if rule is not None and rule.redirect:
                loc = f"{proxy.side_url}{path}" + (f"?{query}" if query else "")
                self._answer(rule.redirect_status, {"Location": loc}, b"")
                return
            fwd = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP and k.lower() != "content-length"}
            if rule is not None and rule.ignore_range:
                fwd = {k: v for k, v in fwd.items() if k.lower() != "range"}
            target = path + (f"?{query}" if query else "")
            try:
                up = _forward(proxy.upstream, self.command, target, fwd, body)
            except OSError as e:
                self._answer(502, {"Content-Type": "text/plain"}, f"upstream: {e}".encode())
                return
            try:
                self._relay(rule, up)
            finally:
                up.close()
                up._ctrpy_conn.close()  # type: ignore[attr-defined]

        def _relay(self, rule: Rule | None, up: http.client.HTTPResponse) -> None:
            headers = [(k, v) for k, v in up.getheaders() if k.lower() not in HOP_BY_HOP]
            if rule is not None:
                drop = {h.lower() for h in rule.drop_headers} | {h.lower() for h in rule.set_headers}
                headers = [(k, v) for k, v in headers if k.lower() not in drop]
                headers += list(rule.set_headers.items())
                if rule.relative_location:
                    headers = [
                        (k, _path_only(v) if k.lower() == "location" else v) for k, v in headers
                    ]
            length_hdr = next((v for k, v in headers if k.lower() == "content-length"), None)
            headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
            is_head = self.command == "HEAD" or up.status in (204, 304)
            if is_head:
                self.send_response(up.status)
                for k, v in headers:
                    self.send_header(k, v)
                if length_hdr is not None:
                    self.send_header("Content-Length", length_hdr)
                self.end_headers()
                return
            if length_hdr is None:  # no length from the registry: buffer (small bodies only)
                data = up.read()
                length = len(data)
                chunks: Iterable[bytes] = [data]
            else:
                length = int(length_hdr)
                chunks = iter(lambda: up.read(CHUNK), b"")
            extra = rule.extra_bytes if rule is not None else b""
            self.send_response(up.status)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(length + len(extra)))
            self.end_headers()
            middle = length // 2
            pos = 0
            limit = rule.cut_after if rule is not None else None
            for chunk in chunks:
                if rule is not None and rule.corrupt and pos <= middle < pos + len(chunk):
                    i = middle - pos
                    chunk = chunk[:i] + bytes([chunk[i] ^ 0xFF]) + chunk[i + 1 :]
                if limit is not None and pos + len(chunk) >= limit:
                    self.wfile.write(chunk[: limit - pos])
                    self._drop()
                    return
                self.wfile.write(chunk)
                pos += len(chunk)
            if extra:
                self.wfile.write(extra)

        def _drop(self) -> None:
            try:
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.close_connection = True

    return Handler


def _side_handler(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Side(QuietHandler):

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            proxy._record(proxy.side_requests, Record(self.command, parts.path, parts.query, _header_dict(self.headers)))
            fwd = {"Host": proxy.upstream, **proxy.side_upstream_headers}
            rng = self.headers.get("Range")
            if rng:
                fwd["Range"] = rng
            try:
                up = _forward(proxy.upstream, self.command, parts.path, fwd, b"")
            except OSError as e:
                body = f"upstream: {e}".encode()
                self.send_response(502)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            try:
                self.send_response(up.status)
                for k, v in up.getheaders():
                    if k.lower() not in HOP_BY_HOP:
                        self.send_header(k, v)
                self.end_headers()
                if self.command != "HEAD":
                    while chunk := up.read(CHUNK):
                        self.wfile.write(chunk)
            finally:
                up.close()
                up._ctrpy_conn.close()  # type: ignore[attr-defined]

        do_HEAD = do_GET

    return Side
