"""A scripted HTTP server for transport tests that need no registry (loopback only).

``StubServer(host="127.0.0.1")``: ``script(method, path, *answers)`` queues answers for
``METHOD path`` (``Answer(status, headers, body)``); once a queue is down to its last answer
that one repeats.  Unscripted requests get 404.  ``requests`` records everything.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlsplit

from tests.registry.faults import Record, _header_dict
from tests.registry.serving import QuietHandler, Serving


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""




class StubServer(Serving):
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.bind = host
        self.requests: list[Record] = []
        self.bodies: list[bytes] = []
        self._answers: dict[tuple[str, str], list[Answer]] = defaultdict(list)
        self._lock = threading.Lock()

    def script(self, method: str, path: str, *answers: Answer) -> None:
        with self._lock:
            self._answers[(method, path)].extend(answers)

    def _next(self, method: str, path: str) -> Answer:
        with self._lock:
            q = self._answers.get((method, path))
            if not q:
                return Answer(404, {"Content-Type": "application/json"}, b'{"errors":[{"code":"NOT_FOUND","message":"unscripted"}]}')
            return q.pop(0) if len(q) > 1 else q[0]

    def count(self, method: str | None = None, path: str | None = None) -> int:
        with self._lock:
            return sum(1 for r in self.requests if (method is None or r.method == method) and (path is None or r.path == path))

    def _listeners(self) -> list[tuple[str, type[BaseHTTPRequestHandler]]]:
        return [(self.bind, _handler(self))]


def _handler(stub: StubServer) -> type[BaseHTTPRequestHandler]:
    class Handler(QuietHandler):

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n) if n else b""
            with stub._lock:
                stub.requests.append(Record(self.command, parts.path, parts.query, _header_dict(self.headers)))
                stub.bodies.append(body)
            a = stub._next(self.command, parts.path)
            self.send_response(a.status)
            for k, v in a.headers.items():
                if k.lower() != "content-length":
                    self.send_header(k, v)
            self.send_header("Content-Length", a.headers.get("Content-Length", str(len(a.body))))
            self.end_headers()
            if self.command != "HEAD" and a.body:
                self.wfile.write(a.body)

        do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    return Handler
