"""Loopback HTTP servers in background threads, for the test helpers (fault proxy, stub,
token server, forward proxy): one way to start, stop and quiet them.

A helper subclasses :class:`Serving` and says what to serve in ``_listeners()`` (address
and handler class per server); handlers subclass :class:`QuietHandler`. ``port``, ``host``
and ``url`` are the first server's.
"""

from __future__ import annotations

import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


class QuietServer(ThreadingHTTPServer):
    """A threaded server that keeps handler errors (a client gone mid-request) in
    ``errors`` instead of printing tracebacks."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.errors: list[str] = []

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        self.errors.append(f"{type(exc).__name__}: {exc}")


class QuietHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive, a 30 s idle limit, and no access log on stderr."""

    protocol_version = "HTTP/1.1"
    timeout = 30

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Serving:
    """Start and stop the servers ``_listeners()`` names; usable as a context manager."""

    servers: list[QuietServer]

    def _listeners(self) -> list[tuple[str, type[BaseHTTPRequestHandler]]]:
        raise NotImplementedError

    @property
    def _server(self) -> QuietServer | None:
        """The first server while running (its port is the helper's address)."""
        running = getattr(self, "servers", [])
        return running[0] if running else None

    def _port(self, index: int = 0) -> int:
        running = getattr(self, "servers", [])
        assert len(running) > index, f"{type(self).__name__} not started"
        return int(running[index].server_address[1])

    @property
    def port(self) -> int:
        """The first server's port."""
        return self._port()

    @property
    def host(self) -> str:
        """``ADDRESS:PORT`` of the first server."""
        port = self.port
        return f"{self.servers[0].server_address[0]}:{port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def start(self) -> Self:
        self.servers = [QuietServer((bind, 0), handler) for bind, handler in self._listeners()]
        self._threads = [
            threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
            for srv in self.servers
        ]
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        for srv in getattr(self, "servers", []):
            srv.shutdown()
            srv.server_close()
        for t in getattr(self, "_threads", []):
            t.join(timeout=10)
        self.servers, self._threads = [], []
        self._stopped()

    def _stopped(self) -> None:
        """Called after the servers are down (wake whoever waits on them)."""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
