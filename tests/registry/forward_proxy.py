"""A tiny forward HTTP proxy (absolute-URI requests and CONNECT tunnels), loopback only.

Clients never proxy loopback addresses (Go's rule, which ctrpy follows), so tests name the
registry ``registry.test:PORT``: only this proxy knows that name, and maps it to 127.0.0.1
(``names``).  Any other target is refused with 403, so nothing leaves the machine.
``requests`` records (method, target, whether a ``Proxy-Authorization`` came).
"""

from __future__ import annotations

import http.client
import select
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlsplit

from tests.registry.serving import QuietHandler, Serving

MAX_BODY = 64 << 20
TUNNEL_IDLE = 30.0


@dataclass(frozen=True)
class ProxyRecord:
    method: str
    target: str
    proxy_auth: str | None




class ForwardProxy(Serving):
    def __init__(self, names: Mapping[str, str] | None = None) -> None:
        self.names = dict(names or {"registry.test": "127.0.0.1"})
        self.requests: list[ProxyRecord] = []
        self._lock = threading.Lock()

    def _map(self, host: str) -> str | None:
        if host in self.names:
            return self.names[host]
        return host if host in ("127.0.0.1", "localhost") else None

    def _record(self, rec: ProxyRecord) -> None:
        with self._lock:
            self.requests.append(rec)

    def _listeners(self) -> list[tuple[str, type[BaseHTTPRequestHandler]]]:
        return [("127.0.0.1", _handler(self))]


def _handler(proxy: ForwardProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(QuietHandler):

        def _refuse(self, status: int, text: str) -> None:
            body = text.encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_CONNECT(self) -> None:
            proxy._record(ProxyRecord("CONNECT", self.path, self.headers.get("Proxy-Authorization")))
            host, _, port = self.path.rpartition(":")
            ip = proxy._map(host)
            if ip is None or not port.isdigit():
                self._refuse(403, "only loopback targets")
                return
            try:
                upstream = socket.create_connection((ip, int(port)), timeout=10)
            except OSError as e:
                self._refuse(502, str(e))
                return
            self.send_response(200, "Connection established")
            self.end_headers()
            self.wfile.flush()
            client = self.connection
            try:
                socks = [client, upstream]
                while True:
                    ready, _, _ = select.select(socks, [], [], TUNNEL_IDLE)
                    if not ready:
                        break
                    done = False
                    for s in ready:
                        data = s.recv(65536)
                        if not data:
                            done = True
                            break
                        (upstream if s is client else client).sendall(data)
                    if done:
                        break
            except OSError:
                pass
            finally:
                upstream.close()
                self.close_connection = True

        def do_GET(self) -> None:
            proxy._record(ProxyRecord(self.command, self.path, self.headers.get("Proxy-Authorization")))
            parts = urlsplit(self.path)
            if parts.scheme != "http" or not parts.hostname:
                self._refuse(400, "absolute http URLs only")
                return
            ip = proxy._map(parts.hostname)
            if ip is None:
                self._refuse(403, "only loopback targets")
                return
            n = int(self.headers.get("Content-Length") or 0)
            if n > MAX_BODY:
                self._refuse(413, "too large")
                return
            body = self.rfile.read(n) if n else b""
            conn = http.client.HTTPConnection(ip, parts.port or 80, timeout=60)
            target = parts.path + (f"?{parts.query}" if parts.query else "")
            conn.putrequest(self.command, target, skip_host=True, skip_accept_encoding=True)
            for k, v in self.headers.items():
                if k.lower() not in ("proxy-authorization", "proxy-connection", "connection", "content-length"):
                    conn.putheader(k, v)
            if body or self.command in ("POST", "PUT", "PATCH"):
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body or None)
            up = conn.getresponse()
            try:
                self.send_response(up.status)
                length = None
                for k, v in up.getheaders():
                    if k.lower() in ("connection", "keep-alive", "transfer-encoding"):
                        continue
                    if k.lower() == "content-length":
                        length = v
                    self.send_header(k, v)
                data = b"" if self.command == "HEAD" else up.read()
                if length is None and self.command != "HEAD":
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if data:
                    self.wfile.write(data)
            finally:
                up.close()
                conn.close()

        do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    return Handler
