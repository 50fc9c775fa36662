"""A token server for distribution's ``auth: token`` (the Docker registry token spec).

Signs RS256 JWTs with a key made by ``openssl`` (pure-Python RSA, no crypto package): header
``{"typ": "JWT", "alg": "RS256", "x5c": [cert DER base64]}``, claims ``iss``, ``sub``, ``aud``
(a string, as distribution 2.8 wants), ``exp``, ``nbf``, ``iat``, ``jti``,
``access: [{type, name, actions}]``.

Answers ``GET /token?service=&scope=`` (Basic credentials optional) and the OAuth2 ``POST``
form (``grant_type=password`` or ``refresh_token``).  Knobs (change them any
time, on ``server.settings``; :meth:`reset` puts them back):

- ``users``: name -> password; ``refresh_tokens``: token -> user name;
- ``anonymous_actions``: what a caller without credentials gets (default: nothing);
  ``user_actions``: what a known user gets (default pull, push, delete);
- ``lifetime``: the JWT's real ``exp`` (seconds); ``expires_in``: what the answer says
  (default: ``lifetime``); ``expired_tokens``: how many of the next tokens are issued
  already expired (the registry refuses them with ``invalid_token``);
- ``post_status``: answer every POST with this status (404, 405...) instead of a token;
- ``issued_at``: put ``issued_at`` into answers.

Every request is recorded in ``requests`` (method, grant type, scopes, user, whether Basic
credentials came); ``count(method)`` counts them.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.registry.certs import CertPair, RSAKey, self_signed
from tests.registry.distribution import TokenAuth
from tests.registry.serving import QuietHandler, Serving

SERVICE = "ctrpy-test-registry"
ISSUER = "ctrpy-test-token-issuer"
DEFAULT_ACTIONS = ("pull", "push", "delete")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


@dataclass(frozen=True)
class TokenRequest:
    method: str
    grant_type: str  # "" for GET
    scopes: tuple[str, ...]
    user: str  # "" when anonymous
    basic: bool  # Basic credentials were sent
    service: str
    client_id: str = ""
    status: int = 200


def parse_scope(scope: str) -> tuple[str, str, list[str]] | None:
    """``repository:name:pull,push`` -> (type, name, actions)."""
    typ, sep, rest = scope.partition(":")
    name, sep2, actions = rest.rpartition(":")
    if not sep or not sep2 or not name:
        return None
    return typ, name, [a for a in actions.split(",") if a]


@dataclass
class Settings:
    users: dict[str, str] = field(default_factory=dict)
    refresh_tokens: dict[str, str] = field(default_factory=dict)
    anonymous_actions: tuple[str, ...] = ()
    user_actions: tuple[str, ...] = DEFAULT_ACTIONS
    lifetime: int = 300
    expires_in: int | None = None
    expired_tokens: int = 0
    post_status: int | None = None
    issued_at: bool = True


class TokenServer(Serving):
    def __init__(
        self,
        workdir: Path,
        *,
        users: Mapping[str, str] | None = None,
        service: str = SERVICE,
        issuer: str = ISSUER,
    ) -> None:
        self.dir = Path(workdir)
        self.service = service
        self.issuer = issuer
        self._initial_users = dict(users or {"alice": "wonderland"})
        self._lock = threading.Lock()
        self.requests: list[TokenRequest] = []
        self.settings = Settings(users=dict(self._initial_users))
        self.pair: CertPair = self_signed(self.dir, "token-signer", cn="ctrpy token signer", sans=())
        self.key = RSAKey.from_pem(self.pair.key)
        self._x5c = base64.b64encode(self.pair.der()).decode()
        self._jti = 0

    # -- knobs -----------------------------------------------------------------------------------

    def reset(self) -> None:
        """Settings back to their defaults; the request log emptied."""
        with self._lock:
            self.settings = Settings(users=dict(self._initial_users))
            self.requests.clear()

    def count(self, method: str | None = None, *, grant_type: str | None = None) -> int:
        with self._lock:
            return sum(
                1
                for r in self.requests
                if (method is None or r.method == method) and (grant_type is None or r.grant_type == grant_type)
            )

    # -- where -----------------------------------------------------------------------------------

    @property
    def realm(self) -> str:
        return f"{self.url}/token"

    def registry_auth(self) -> TokenAuth:
        return TokenAuth(self.realm, self.service, self.issuer, self.pair.cert)

    # -- tokens ----------------------------------------------------------------------------------

    def make_token(self, user: str, access: list[dict[str, Any]], *, expired: bool = False, lifetime: int | None = None) -> str:
        now = int(time.time())
        life = self.settings.lifetime if lifetime is None else lifetime
        with self._lock:
            self._jti += 1
            jti = f"{os.getpid()}-{self._jti}-{os.urandom(4).hex()}"
        exp = now - 3600 if expired else now + life
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self._x5c]}
        claims = {
            "iss": self.issuer,
            "sub": user,
            "aud": self.service,
            "exp": exp,
            "nbf": now - 10 if not expired else now - 7200,
            "iat": now if not expired else now - 7200,
            "jti": jti,
            "access": access,
        }
        signing_input = (
            b64url(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + b64url(json.dumps(claims, separators=(",", ":")).encode())
        )
        sig = self.key.sign_sha256(signing_input.encode())
        return signing_input + "." + b64url(sig)

    def _grant(self, user: str, scopes: list[str]) -> list[dict[str, Any]]:
        allowed = set(self.settings.user_actions if user else self.settings.anonymous_actions)
        access = []
        for s in scopes:
            parsed = parse_scope(s)
            if parsed is None:
                continue
            typ, name, actions = parsed
            granted = [a for a in actions if a in allowed or ("*" in allowed)]
            if granted:
                access.append({"type": typ, "name": name, "actions": granted})
        return access

    def _answer(self, user: str, scopes: list[str], *, oauth: bool, want_refresh: bool) -> dict[str, Any]:
        with self._lock:
            expired = self.settings.expired_tokens > 0
            if expired:
                self.settings.expired_tokens -= 1
        token = self.make_token(user, self._grant(user, scopes), expired=expired)
        s = self.settings
        out: dict[str, Any] = {"expires_in": s.expires_in if s.expires_in is not None else s.lifetime}
        if s.issued_at:
            out["issued_at"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        if oauth:
            out["access_token"] = token
            out["scope"] = " ".join(scopes)
        else:
            out["token"] = token
            out["access_token"] = token
        if want_refresh and user:
            rt = "refresh-" + os.urandom(8).hex()
            with self._lock:
                self.settings.refresh_tokens[rt] = user
            out["refresh_token"] = rt
        return out

    # -- the HTTP side ---------------------------------------------------------------------------

    def _listeners(self) -> list[tuple[str, type[BaseHTTPRequestHandler]]]:
        return [("127.0.0.1", _handler(self))]

    def _record(self, req: TokenRequest) -> None:
        with self._lock:
            self.requests.append(req)


def _handler(ts: TokenServer) -> type[BaseHTTPRequestHandler]:
    class Handler(QuietHandler):

        def _send_json(self, status: int, obj: Any) -> None:
            body = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _basic(self) -> tuple[str, str] | None:
            h = self.headers.get("Authorization") or ""
            if not h.lower().startswith("basic "):
                return None
            try:
                user, _, password = base64.b64decode(h[6:].strip()).decode().partition(":")
            except Exception:
                return None
            return user, password

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            if parts.path != "/token":
                self._send_json(404, {"error": "not found"})
                return
            q = parse_qs(parts.query)
            scopes = [s for v in q.get("scope", []) for s in v.split()]
            service = (q.get("service") or [""])[0]
            basic = self._basic()
            user = ""
            if basic is not None:
                name, password = basic
                if ts.settings.users.get(name) != password:
                    ts._record(TokenRequest("GET", "", tuple(scopes), name, True, service, status=401))
                    self._send_json(401, {"details": "invalid username or password"})
                    return
                user = name
            ts._record(TokenRequest("GET", "", tuple(scopes), user, basic is not None, service))
            want_refresh = (q.get("offline_token") or [""])[0] == "true"
            self._send_json(200, ts._answer(user, scopes, oauth=False, want_refresh=want_refresh))

        def do_POST(self) -> None:
            n = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(n).decode() if n else ""
            parts = urlsplit(self.path)
            form = {k: v[0] for k, v in parse_qs(raw).items()}
            grant = form.get("grant_type", "")
            scopes = form.get("scope", "").split()
            service = form.get("service", "")
            client_id = form.get("client_id", "")
            status = ts.settings.post_status
            if parts.path != "/token" or status is not None:
                code = status or 404
                ts._record(TokenRequest("POST", grant, tuple(scopes), "", False, service, client_id, code))
                self._send_json(code, {"error": "unsupported"})
                return
            user = ""
            if grant == "password":
                name = form.get("username", "")
                if ts.settings.users.get(name) != form.get("password"):
                    ts._record(TokenRequest("POST", grant, tuple(scopes), name, False, service, client_id, 401))
                    self._send_json(401, {"error": "invalid_grant", "error_description": "invalid username or password"})
                    return
                user = name
            elif grant == "refresh_token":
                user = ts.settings.refresh_tokens.get(form.get("refresh_token", ""), "")
                if not user:
                    ts._record(TokenRequest("POST", grant, tuple(scopes), "", False, service, client_id, 401))
                    self._send_json(401, {"error": "invalid_grant", "error_description": "unknown refresh token"})
                    return
            else:
                ts._record(TokenRequest("POST", grant, tuple(scopes), "", False, service, client_id, 400))
                self._send_json(400, {"error": "unsupported_grant_type"})
                return
            ts._record(TokenRequest("POST", grant, tuple(scopes), user, False, service, client_id))
            want_refresh = form.get("access_type") == "offline"
            self._send_json(200, ts._answer(user, scopes, oauth=True, want_refresh=want_refresh))

    return Handler
