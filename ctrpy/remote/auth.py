"""Registry authentication: ``WWW-Authenticate`` challenges, Basic, Bearer tokens.

A host starts unknown: the first request goes without credentials; its 401 says how to
authenticate (``Basic realm=...`` or ``Bearer realm=...,service=...,scope=...``), and from
then on every request to that host carries an ``Authorization`` header.

Bearer tokens are fetched the way containerd does: with credentials, the OAuth2 ``POST``
form (``grant_type=password`` with the user name and password, or
``grant_type=refresh_token`` with an identity token; ``service``, ``scope``, ``client_id``),
falling back to ``GET ?service=&scope=`` (with Basic credentials when we have them) when the
POST is not supported (400, 401, 404, or 405 with a user name); without credentials, an
anonymous ``GET``.  Tokens are cached per (host, scope set) until they expire
(``expires_in``, default 60 s, counted from ``issued_at`` when given); one fetch per key
at a time however many threads ask.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

from ctrpy.remote.clock import Clock
from ctrpy.remote.credentials import Credentials
from ctrpy.remote.errors import (
    AuthError,
    InvalidResponse,
    error_from_response,
    one_line,
    parse_registry_errors,
)
from ctrpy.remote.hosts import TLSConfig
from ctrpy.remote.options import RemoteOptions
from ctrpy.remote.transport import Transport, origin_of

CLIENT_ID = "ctrpy"
DEFAULT_EXPIRES_IN = 60.0
_MAX_TOKEN_RESPONSE = 1 << 20
_POST_FALLBACK = frozenset({400, 401, 404})


# ---------------------------------------------------------------------------------------------
# challenges


@dataclass(frozen=True)
class Challenge:
    scheme: str  # lower case: "basic", "bearer", ...
    params: dict[str, str] = field(default_factory=dict)  # names in lower case

    def get(self, name: str) -> str:
        return self.params.get(name, "")


_SEPARATORS = frozenset(' \t,="')


def _skip(s: str, i: int, chars: str) -> int:
    while i < len(s) and s[i] in chars:
        i += 1
    return i


def _token(s: str, i: int) -> tuple[str, int]:
    j = i
    while j < len(s) and s[j] not in _SEPARATORS:
        j += 1
    return s[i:j], j


def _quoted(s: str, i: int) -> tuple[str, int]:
    """A quoted-string starting at ``s[i] == '"'``; backslash escapes one character."""
    out: list[str] = []
    i += 1
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            out.append(s[i + 1])
            i += 2
            continue
        if c == '"':
            return "".join(out), i + 1
        out.append(c)
        i += 1
    return "".join(out), i  # unterminated: take what there is


def parse_challenges(values: Iterable[str]) -> list[Challenge]:
    """Every challenge of one or more ``WWW-Authenticate`` values, in order.

    Handles several challenges in one value (``Basic realm="a", Bearer realm="b"``), quoted
    values with commas and escapes, and token68 forms (kept under ``"token68"``)."""
    out: list[Challenge] = []
    for s in values:
        cur: Challenge | None = None
        i = 0
        n = len(s)
        while i < n:
            i = _skip(s, i, " \t,")
            if i >= n:
                break
            word, j = _token(s, i)
            if not word:
                i = j + 1  # a stray '=' or '"'
                continue
            k = _skip(s, j, " \t")
            if cur is not None and k < n and s[k] == "=":
                m = k
                while m < n and s[m] == "=":
                    m += 1
                after = _skip(s, m, " \t")
                if m - k > 1 or after >= n or s[after] == ",":
                    # token68 (``abc==``) or a name with an empty value
                    if m - k > 1 or after >= n:
                        cur.params.setdefault("token68", word + "=" * (m - k))
                    else:
                        cur.params[word.lower()] = ""
                    i = after
                    continue
                if s[after] == '"':
                    value, i = _quoted(s, after)
                else:
                    value, i = _token(s, after)
                cur.params[word.lower()] = value
                continue
            cur = Challenge(word.lower(), {})
            out.append(cur)
            i = j
    return out


# ---------------------------------------------------------------------------------------------
# scopes


def repository_scope(path: str, *actions: str) -> str:
    return f"repository:{path}:{','.join(actions)}"


def merge_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """Merge the actions of scopes naming the same resource; sorted, duplicates gone.

    ``["repository:a:pull", "repository:a:push", "repository:b:pull"]`` gives
    ``("repository:a:pull,push", "repository:b:pull")``."""
    merged: dict[str, set[str]] = {}
    for scope in scopes:
        for part in scope.split():
            resource, sep, actions = part.rpartition(":")
            if not sep or ":" not in resource:
                merged.setdefault(part, set())
                continue
            merged.setdefault(resource, set()).update(a for a in actions.split(",") if a)
    out = []
    for resource in sorted(merged):
        acts = merged[resource]
        out.append(f"{resource}:{','.join(sorted(acts))}" if acts else resource)
    return tuple(out)


# ---------------------------------------------------------------------------------------------
# tokens


@dataclass
class Token:
    value: str = field(repr=False)
    expires_at: float  # on the monotonic clock
    refresh_token: str = field(default="", repr=False)


def _parse_issued_at(value: Any) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    v = value.strip()
    if v.endswith("Z"):
        v = v[:-1] + "+00:00"
    if "." in v:  # Go writes nanoseconds; Python takes at most microseconds
        head, _, rest = v.partition(".")
        digits = ""
        while rest and rest[0].isdigit():
            digits += rest[0]
            rest = rest[1:]
        v = f"{head}.{digits[:6].ljust(6, '0')}{rest}"
    try:
        dt = datetime.fromisoformat(v)
    except ValueError:
        return None
    if dt.tzinfo is None:
        return None
    return dt.timestamp()


def parse_token_response(body: bytes, now_mono: float, now_wall: float, where: str) -> Token:
    """A token server's JSON answer (``token`` or ``access_token``, ``expires_in``,
    ``issued_at``, ``refresh_token``) as a :class:`Token` expiring on the monotonic clock."""
    try:
        obj = json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise InvalidResponse(f"{where}: the token server did not answer JSON") from None
    if not isinstance(obj, dict):
        raise InvalidResponse(f"{where}: the token server's answer is not a JSON object")
    value = obj.get("access_token") or obj.get("token")
    if not isinstance(value, str) or not value:
        raise InvalidResponse(f"{where}: the token server's answer has no token")
    lifetime = obj.get("expires_in")
    if isinstance(lifetime, bool) or not isinstance(lifetime, int | float) or lifetime <= 0:
        lifetime = DEFAULT_EXPIRES_IN
    age = 0.0
    issued = _parse_issued_at(obj.get("issued_at"))
    if issued is not None:
        age = min(max(0.0, now_wall - issued), float(lifetime))
    remaining = float(lifetime) - age
    early = min(10.0, float(lifetime) * 0.1)  # refresh a little before the server would refuse
    refresh = obj.get("refresh_token")
    return Token(value, now_mono + remaining - early, refresh if isinstance(refresh, str) else "")


# ---------------------------------------------------------------------------------------------
# per-host authorization


CredentialsLookup = Callable[[], "Credentials | None"]


@dataclass
class Authorization:
    """What to send, and whether it was obtained for this very attempt."""

    header: str | None = field(default=None, repr=False)
    fresh: bool = False
    key: tuple[str, ...] = ()


class HostAuth:
    """Authorization for one registry endpoint.  Thread-safe."""

    def __init__(
        self,
        host: str,
        transport: Transport,
        tls: TLSConfig,
        credentials: CredentialsLookup,
        clock: Clock,
        options: RemoteOptions,
        *,
        headers: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.host = host
        self.transport = transport
        self.tls = tls
        self._credentials_lookup = credentials
        self.clock = clock
        self.options = options
        self.headers = tuple(headers)
        self._lock = threading.Lock()
        self._scheme: str | None = None
        self._realm = ""
        self._service = ""
        self._extra: dict[tuple[str, ...], tuple[str, ...]] = {}
        self._tokens: dict[tuple[str, ...], Token] = {}
        self._key_locks: dict[tuple[str, ...], threading.Lock] = {}
        self._creds_loaded = False
        self._creds: Credentials | None = None
        self.token_requests = 0  # how many token fetches this host needed (for callers' stats)

    # -- credentials ----------------------------------------------------------------------------

    def credentials(self) -> Credentials | None:
        with self._lock:
            if not self._creds_loaded:
                self._creds = self._credentials_lookup()
                self._creds_loaded = True
            return self._creds

    # -- what to send ----------------------------------------------------------------------------

    def authorize(self, scopes: Sequence[str]) -> Authorization:
        """The ``Authorization`` value for a request needing ``scopes`` (fetches a token if
        the host wants Bearer and none is cached)."""
        with self._lock:
            scheme = self._scheme
        if scheme == "basic":
            creds = self.credentials()
            if creds is None or not creds.has_password:
                return Authorization()
            raw = f"{creds.username}:{creds.password}".encode()
            return Authorization("Basic " + base64.b64encode(raw).decode())
        if scheme != "bearer":
            return Authorization()
        key = merge_scopes(scopes)
        with self._lock:
            lock = self._key_locks.setdefault(key, threading.Lock())
        with lock:  # one fetch per scope set at a time
            now = self.clock.monotonic()
            with self._lock:
                tok = self._tokens.get(key)
            if tok is not None and now < tok.expires_at:
                return Authorization("Bearer " + tok.value, False, key)
            with self._lock:
                extra = self._extra.get(key, ())
                realm, service = self._realm, self._service
            tok = self._fetch_token(realm, service, merge_scopes([*key, *extra]))
            with self._lock:
                self._tokens[key] = tok
            return Authorization("Bearer " + tok.value, True, key)

    # -- what a 401 says ------------------------------------------------------------------------

    def unauthorized(
        self,
        what: str,
        challenges: Sequence[Challenge],
        scopes: Sequence[str],
        sent: Authorization,
        body: bytes,
    ) -> None:
        """Learn from a 401 so that the next attempt can succeed; raise :class:`AuthError`
        when no further attempt can."""
        bearer = next((c for c in challenges if c.scheme == "bearer"), None)
        basic = next((c for c in challenges if c.scheme == "basic"), None)
        said = _registry_said(body)
        if bearer is not None:
            realm = bearer.get("realm")
            if not realm or urlsplit(realm).scheme not in ("http", "https"):
                raise AuthError(f"{what}: {self.host} asks for a token without a usable realm", host=self.host, status=401)
            error = bearer.get("error")
            if sent.header and sent.header.startswith("Bearer ") and sent.fresh:
                # a token fetched for this very request was refused: another one will be too
                raise self._denied(what, error, said)
            key = merge_scopes(scopes)
            challenge_scopes = tuple(bearer.get("scope").split()) if bearer.get("scope") else ()
            with self._lock:
                self._scheme = "bearer"
                self._realm = realm
                self._service = bearer.get("service")
                if challenge_scopes:
                    self._extra[key] = merge_scopes([*self._extra.get(key, ()), *challenge_scopes])
                self._tokens.pop(sent.key or key, None)  # expired or revoked: fetch a new one
            return
        if basic is not None:
            creds = self.credentials()
            if creds is None or not creds.has_password:
                needs = (f"a password for user {creds.username!r} (none was given)" if creds is not None and creds.username
                         else "a user name and password")
                raise AuthError(
                    f"{what}: {self.host} requires {needs}" + (f" ({said})" if said else ""),
                    host=self.host,
                    status=401,
                    topic="password" if creds is not None and creds.username else "",
                )
            if sent.header and sent.header.startswith("Basic "):
                raise AuthError(
                    f"{what}: {self.host} rejected the credentials of user {creds.username!r} "
                    f"(from {creds.source})" + (f" ({said})" if said else ""),
                    host=self.host,
                    status=401,
                )
            with self._lock:
                self._scheme = "basic"
            return
        schemes = ", ".join(sorted({c.scheme for c in challenges})) or "none given"
        raise AuthError(
            f"{what}: {self.host} answered 401 with no authentication scheme ctrpy supports ({schemes})"
            + (f" ({said})" if said else ""),
            host=self.host,
            status=401,
        )

    def _denied(self, what: str, error: str, said: str) -> AuthError:
        creds = self.credentials()
        reason = error or "token refused"
        hint = ""
        if creds is None or not creds.usable:
            hint = "; the repository may not exist, or may need credentials (-u USER[:PASSWORD])"
        return AuthError(
            f"{what}: access denied by {self.host}: {reason}" + (f" ({said})" if said else "") + hint,
            host=self.host,
            status=401,
            code=error or None,
        )

    def give_up(self, what: str, challenges: Sequence[Challenge], body: bytes, attempts: int) -> AuthError:
        """The error once ``attempts`` 401s in a row were spent on one request."""
        error = next((c.get("error") for c in challenges if c.get("error")), "")
        said = _registry_said(body)
        return AuthError(
            f"{what}: access denied by {self.host} after {attempts} attempts"
            + (f": {error}" if error else "")
            + (f" ({said})" if said else ""),
            host=self.host,
            status=401,
            code=error or None,
        )

    # -- fetching tokens ------------------------------------------------------------------------

    def _token_tls(self, realm: str) -> TLSConfig:
        if origin_of(realm) == origin_of(f"{urlsplit(realm).scheme}://{self.host}"):
            return self.tls
        return TLSConfig(self.tls.ca_certs, (), self.tls.skip_verify)

    def _fetch_token(self, realm: str, service: str, scopes: Sequence[str]) -> Token:
        creds = self.credentials()
        with self._lock:
            self.token_requests += 1
        if creds is not None and creds.usable:
            form: list[tuple[str, str]] = []
            if scopes:
                form.append(("scope", " ".join(scopes)))
            form.append(("service", service))
            form.append(("client_id", CLIENT_ID))
            if creds.identity_token:
                form += [("grant_type", "refresh_token"), ("refresh_token", creds.identity_token)]
            else:
                form += [("grant_type", "password"), ("username", creds.username), ("password", creds.password)]
            data = urlencode(form).encode()
            resp = self.transport.request(
                "POST",
                realm,
                tls=self._token_tls(realm),
                headers=[("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"), *self.headers],
                body=data,
                what=f"token request to {urlsplit(realm).netloc}",
            )
            if 200 <= resp.status < 300:
                with resp:
                    body = resp.read_capped(_MAX_TOKEN_RESPONSE)
                return self._token_from(body, realm)
            status = resp.status
            err_body = resp.error_body()
            if not (status in _POST_FALLBACK or (status == 405 and creds.username)):
                raise self._token_error(realm, status, err_body, creds)
        return self._get_token(realm, service, scopes, creds)

    def _get_token(self, realm: str, service: str, scopes: Sequence[str], creds: Credentials | None) -> Token:
        query: list[tuple[str, str]] = []
        if service:
            query.append(("service", service))
        query += [("scope", s) for s in scopes]
        url = realm + ("&" if urlsplit(realm).query else "?") + urlencode(query) if query else realm
        origin: list[tuple[str, str]] = []
        if creds is not None and creds.has_password:
            raw = f"{creds.username}:{creds.password}".encode()
            origin.append(("Authorization", "Basic " + base64.b64encode(raw).decode()))
        resp = self.transport.request(
            "GET",
            url,
            tls=self._token_tls(realm),
            headers=self.headers,
            origin_headers=origin,
            what=f"token request to {urlsplit(realm).netloc}",
        )
        if not 200 <= resp.status < 300:
            raise self._token_error(realm, resp.status, resp.error_body(), creds)
        with resp:
            body = resp.read_capped(_MAX_TOKEN_RESPONSE)
        return self._token_from(body, realm)

    def _token_from(self, body: bytes, realm: str) -> Token:
        if len(body) > _MAX_TOKEN_RESPONSE:
            raise InvalidResponse(f"token server {urlsplit(realm).netloc}: answer larger than 1 MiB")
        return parse_token_response(body, self.clock.monotonic(), self.clock.time(), f"token server {urlsplit(realm).netloc}")

    def _token_error(self, realm: str, status: int, body: bytes, creds: Credentials | None) -> Exception:
        where = f"token server {urlsplit(realm).netloc}"
        if status in (401, 403):
            said = _registry_said(body)
            if creds is not None and creds.usable:
                who = f"user {creds.username!r}" if creds.username else "the identity token"
                return AuthError(
                    f"{where} rejected the credentials of {who} (from {creds.source}) for {self.host}"
                    + (f" ({said})" if said else ""),
                    host=self.host,
                    status=status,
                )
            return AuthError(
                f"{where} refused an anonymous token for {self.host}"
                + (f" ({said})" if said else ""),
                host=self.host,
                status=status,
            )
        return error_from_response(where, status, body, host=urlsplit(realm).netloc)


def _registry_said(body: bytes) -> str:
    """The registry's error text from a 401 body (``UNAUTHORIZED: authentication required``)."""
    entries = parse_registry_errors(body)
    if entries:
        return "; ".join(e.text() for e in entries if e.text())
    try:
        obj = json.loads(body.decode("utf-8", errors="replace"))
    except ValueError:
        return ""
    if isinstance(obj, dict):  # token servers: {"details": ...} or {"error": ...}
        for k in ("details", "error_description", "error", "message"):
            v = obj.get(k)
            if isinstance(v, str) and v:
                return one_line(v)
    return ""
