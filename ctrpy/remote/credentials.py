"""Registry credentials: ``-u``, then Docker's config.json, then containers' auth.json.

Docker's ``$DOCKER_CONFIG/config.json`` (else ``~/.docker/config.json``):

- ``credHelpers: {host: name}`` and ``credsStore: name`` run ``docker-credential-<name> get``
  with the server URL on stdin; it prints ``{"Username": ..., "Secret": ...}`` (a
  ``<token>`` user name means the secret is an identity token);
- ``auths: {key: {auth: base64(user:pass)} | {username, password} | {identitytoken}}``.

Keys match the way docker matches them: ``https://index.docker.io/v1/`` (and
``index.docker.io``, ``registry-1.docker.io``) stand for docker.io; otherwise the key's host,
with or without a scheme or a path.

Then containers' ``auth.json`` (``$REGISTRY_AUTH_FILE`` alone when set, else
``$XDG_RUNTIME_DIR/containers/auth.json`` then ``$XDG_CONFIG_HOME/containers/auth.json``),
whose keys may name a repository (``host/ns/repo``): the longest match wins.

Secrets are never logged nor put into a message.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ctrpy.remote.errors import CredentialsError, one_line
from ctrpy.remote.options import RemoteOptions

DOCKER_INDEX_SERVER = "https://index.docker.io/v1/"
_DOCKER_HUB_NAMES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
_TOKEN_USER = "<token>"
HELPER_TIMEOUT = 30.0


@dataclass(frozen=True)
class Credentials:
    """A user name with a password, or an identity (refresh) token, or both."""

    username: str = ""
    password: str = field(default="", repr=False)
    identity_token: str = field(default="", repr=False)
    source: str = ""  # where they came from ("the command line", a file, a helper), for messages

    @property
    def has_password(self) -> bool:
        return bool(self.username and self.password)

    @property
    def usable(self) -> bool:
        return self.has_password or bool(self.identity_token)


def canonical_host(key: str) -> str:
    """A config key or registry host as a bare ``host[:port]``; docker.io's names are one."""
    k = key.strip()
    if "://" in k:
        k = k.split("://", 1)[1]
    k = k.split("/", 1)[0].lower()
    return "docker.io" if k in _DOCKER_HUB_NAMES else k


def _key_parts(key: str) -> tuple[str, str]:
    """A containers auth.json key as (canonical host, repository path or "")."""
    k = key.strip()
    if "://" in k:
        k = k.split("://", 1)[1]
    host, _, path = k.partition("/")
    return canonical_host(host), path.strip("/")


def server_url(host: str) -> str:
    """What a credential helper is asked about: docker's index URL for docker.io, else the host."""
    return DOCKER_INDEX_SERVER if canonical_host(host) == "docker.io" else host


HelperRunner = Callable[[str, str, Mapping[str, str]], "tuple[int, str, str]"]


def run_helper(name: str, server: str, env: Mapping[str, str]) -> tuple[int, str, str]:
    """Run ``docker-credential-<name> get``; returns (exit status, stdout, stderr)."""
    import subprocess  # only where a credential helper is configured

    try:
        proc = subprocess.run(
            [f"docker-credential-{name}", "get"],
            input=server,
            capture_output=True,
            text=True,
            env=dict(env),
            timeout=HELPER_TIMEOUT,
            check=False,
        )
    except FileNotFoundError:
        raise CredentialsError(
            f"credential helper docker-credential-{name} is not installed (named for {server})"
        ) from None
    except subprocess.TimeoutExpired:
        raise CredentialsError(f"credential helper docker-credential-{name} did not answer within {HELPER_TIMEOUT:g}s") from None
    except OSError as e:
        raise CredentialsError(f"cannot run credential helper docker-credential-{name}: {e.strerror}") from None
    return proc.returncode, proc.stdout, proc.stderr


def _decode_auth(value: str, where: str) -> tuple[str, str]:
    try:
        raw = base64.b64decode(value.strip(), validate=False).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise CredentialsError(f"{where}: the auth value is not base64 of user:password") from None
    user, sep, password = raw.partition(":")
    if not sep:
        raise CredentialsError(f"{where}: the auth value is not base64 of user:password")
    return user, password


def _entry_credentials(entry: Any, where: str) -> Credentials | None:
    if not isinstance(entry, dict):
        return None
    user = entry.get("username") or ""
    password = entry.get("password") or ""
    token = entry.get("identitytoken") or ""
    auth = entry.get("auth") or ""
    if not all(isinstance(v, str) for v in (user, password, token, auth)):
        raise CredentialsError(f"{where}: credentials must be strings")
    if auth:
        user, password = _decode_auth(auth, where)
    creds = Credentials(user, password, token, where)
    return creds if creds.usable else None


class CredentialStore:
    """Looks credentials up for a registry host (thread-safe; each source read once)."""

    def __init__(
        self,
        options: RemoteOptions | None = None,
        env: Mapping[str, str] | None = None,
        *,
        helper: HelperRunner = run_helper,
    ) -> None:
        self.options = options or RemoteOptions()
        self.env: Mapping[str, str] = os.environ if env is None else env
        self.helper = helper
        self._lock = threading.Lock()
        self._files: dict[Path, Any] = {}
        self._cache: dict[tuple[str, str], Credentials | None] = {}

    # -- where the files are ------------------------------------------------------------------

    def docker_config_path(self) -> Path:
        d = self.env.get("DOCKER_CONFIG")
        if d:
            return Path(d) / "config.json"
        home = self.env.get("HOME") or str(Path.home())
        return Path(home) / ".docker" / "config.json"

    def auth_json_paths(self) -> list[Path]:
        f = self.env.get("REGISTRY_AUTH_FILE")
        if f:
            return [Path(f)]
        out = []
        runtime = self.env.get("XDG_RUNTIME_DIR")
        if runtime:
            out.append(Path(runtime) / "containers" / "auth.json")
        else:
            out.append(Path(f"/run/containers/{os.getuid()}/auth.json"))
        cfg = self.env.get("XDG_CONFIG_HOME") or os.path.join(self.env.get("HOME") or str(Path.home()), ".config")
        out.append(Path(cfg) / "containers" / "auth.json")
        return out

    def _read_json(self, path: Path) -> Any:
        if path in self._files:
            return self._files[path]
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            obj: Any = None
        except OSError as e:
            raise CredentialsError(f"cannot read {path}: {e.strerror}") from None
        else:
            try:
                obj = json.loads(text) if text.strip() else {}
            except ValueError:
                raise CredentialsError(f"{path} is not valid JSON") from None
            if not isinstance(obj, dict):
                raise CredentialsError(f"{path} is not a JSON object")
        self._files[path] = obj
        return obj

    # -- lookup ---------------------------------------------------------------------------------

    def lookup(self, host: str, repository: str = "") -> Credentials | None:
        """Credentials for ``host`` (``host[:port]``; docker.io's names are one), or None.

        ``repository`` (the path, ``library/busybox``) lets a containers auth.json entry for
        one repository win over its host's."""
        key = (canonical_host(host), repository)
        with self._lock:
            if key in self._cache:
                return self._cache[key]
            creds = self._lookup(host, repository)
            self._cache[key] = creds
            return creds

    def _lookup(self, host: str, repository: str) -> Credentials | None:
        o = self.options
        if o.user:
            return Credentials(o.user, o.password or "", o.refresh_token or "", "the command line")
        if o.refresh_token:
            return Credentials("", "", o.refresh_token, "the command line")
        want = canonical_host(host)
        files = [(self.docker_config_path(), True)] + [(path, False) for path in self.auth_json_paths()]
        for path, docker in files:
            creds = self._from_file(path, want, repository, docker=docker)
            if creds is not None:
                return creds
        return None

    def _from_file(self, path: Path, want: str, repository: str, *, docker: bool) -> Credentials | None:
        """One credentials file: its ``credHelpers`` entry for the host wins; docker's
        ``config.json`` then asks its ``credsStore``; then the file's own ``auths`` (keyed
        by host in docker's file, by host or host/repository in containers' auth.json)."""
        cfg = self._read_json(path)
        if not cfg:
            return None
        helper = _helper_for(cfg, want)
        if helper:
            return self._from_helper(helper, want)
        store = cfg.get("credsStore") if docker else None
        if isinstance(store, str) and store:
            creds = self._from_helper(store, want)
            if creds is not None:
                return creds
        return self._from_auths(cfg, want, "" if docker else repository, str(path), repository_keys=not docker)

    def _from_auths(
        self, cfg: dict[str, Any], want: str, repository: str, where: str, *, repository_keys: bool
    ) -> Credentials | None:
        """The best ``auths`` entry for ``want``.  Docker ignores a key's path (``/v1/``);
        containers' auth.json keys may name a repository namespace (the longest wins)."""
        auths = cfg.get("auths") or {}
        if not isinstance(auths, dict):
            raise CredentialsError(f"{where}: auths must be an object")
        best: tuple[int, Credentials] | None = None
        for k, entry in auths.items():
            khost, kpath = _key_parts(k)
            if not repository_keys:
                kpath = ""
            if khost != want:
                continue
            if kpath and not (repository == kpath or repository.startswith(kpath + "/")):
                continue
            creds = _entry_credentials(entry, where)
            if creds is None:
                continue
            rank = len(kpath) + (1 if "://" not in k else 0)  # a bare key beats a URL key
            if best is None or rank > best[0]:
                best = (rank, creds)
        return best[1] if best else None

    def _from_helper(self, name: str, want: str) -> Credentials | None:
        server = server_url(want)
        status, out, err = self.helper(name, server, self.env)
        what = f"docker-credential-{name}"
        if status != 0:
            text = (err.strip() or out.strip())
            if "credentials not found" in text.lower():
                return None
            raise CredentialsError(f"{what} get failed for {server}: {one_line(text) or f'exit status {status}'}")
        try:
            obj = json.loads(out)
        except ValueError:
            raise CredentialsError(f"{what} get printed something that is not JSON for {server}") from None
        if not isinstance(obj, dict):
            raise CredentialsError(f"{what} get printed something that is not a JSON object for {server}")
        user = obj.get("Username") or ""
        secret = obj.get("Secret") or ""
        if not isinstance(user, str) or not isinstance(secret, str):
            raise CredentialsError(f"{what} get: Username and Secret must be strings")
        if not secret:
            return None
        if user == _TOKEN_USER:
            return Credentials("", "", secret, what)
        return Credentials(user, secret, "", what)


def _helper_for(cfg: dict[str, Any], host: str) -> str | None:
    """The ``credHelpers`` entry for ``host`` (keys compared as canonical hosts)."""
    helpers = cfg.get("credHelpers") or {}
    if isinstance(helpers, dict):
        for key, name in helpers.items():
            if canonical_host(key) == host and isinstance(name, str) and name:
                return name
    return None
