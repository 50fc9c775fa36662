"""Which endpoints serve a registry, and how to talk to each: containerd's ``hosts.toml``.

``--hosts-dir DIR`` is looked up as ``DIR/<host[:port]>/hosts.toml``, then
``DIR/_default/hosts.toml``.  A directory without ``hosts.toml`` is read the Docker way
(``*.crt`` are CA certificates, ``*.cert`` with ``*.key`` client pairs).  The file::

    server = "https://registry.example.com"      # default: the reference's own host
    ca = "ca.pem"                                # or a list; relative to the file's dir
    client = [["client.pem", "client.key"]]      # or "both.pem", or a list of those
    skip_verify = false
    capabilities = ["pull", "resolve", "push"]   # the default
    [header]
      x-custom = "v"                             # or a list of values
    [host."https://mirror.example.com"]          # mirrors, tried in order before `server`
      capabilities = ["pull", "resolve"]
      override_path = true                       # the URL's path is the API root

Defaults: ``docker.io`` is served by ``https://registry-1.docker.io``; a loopback host
(127.0.0.0/8, ::1, localhost) is spoken to in plain HTTP as ctr 1.6 does, EXCEPT when TLS
is configured for it (a CA, a client certificate or skip_verify, from the flags or from
hosts.toml): ctr 1.6 sends plain HTTP to a TLS registry on loopback and fails; we do not.
``--plain-http`` makes every endpoint whose scheme was not written out use HTTP (an explicit
``https://`` in hosts.toml is kept).
"""

from __future__ import annotations

import enum
import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from ctrpy.remote.errors import ConfigError
from ctrpy.remote.options import RemoteOptions

DOCKER_HUB = "docker.io"
DOCKER_HUB_SERVER = "registry-1.docker.io"


class Capability(enum.Flag):
    PULL = 1
    RESOLVE = 2
    PUSH = 4
    ALL = PULL | RESOLVE | PUSH


_CAPABILITY_NAMES = {"pull": Capability.PULL, "resolve": Capability.RESOLVE, "push": Capability.PUSH}


@dataclass(frozen=True)
class TLSConfig:
    """How to verify a server and who we are to it.  Hashable: one connection pool each."""

    ca_certs: tuple[str, ...] = ()
    client_pairs: tuple[tuple[str, str], ...] = ()  # (cert, key); key "" = in the cert file
    skip_verify: bool = False

    @property
    def configured(self) -> bool:
        return bool(self.ca_certs or self.client_pairs or self.skip_verify)

    def for_other_host(self) -> TLSConfig:
        """What a redirect to another host (object storage) gets: the CAs only."""
        return TLSConfig(self.ca_certs)


@dataclass(frozen=True)
class RegistryHost:
    """One endpoint serving a registry: the server itself or a mirror."""

    scheme: str
    host: str  # host[:port], as in a URL
    path: str = "/v2"  # the API root
    capabilities: Capability = Capability.ALL
    tls: TLSConfig = field(default_factory=TLSConfig)
    headers: tuple[tuple[str, str], ...] = ()
    mirror: bool = False  # another host than the reference's: requests carry ?ns=<domain>

    @property
    def origin(self) -> str:
        return f"{self.scheme}://{self.host}"

    def has(self, capability: Capability) -> bool:
        return capability in self.capabilities

    def url(self, *parts: str) -> str:
        """``scheme://host/<path>/<parts...>`` (parts are quoted as path segments)."""
        tail = "/".join(quote(p, safe="/:@") for p in parts if p)
        if parts and not parts[-1]:
            tail += "/"  # a trailing "" keeps the slash: .../blobs/uploads/
        base = self.path.rstrip("/")
        return f"{self.origin}{base}/{tail}" if tail else f"{self.origin}{base}/"

    def __str__(self) -> str:
        return f"{self.origin}{self.path}"


def split_host_port(host: str) -> tuple[str, str]:
    """``"h:5000"`` -> ``("h", "5000")``; ``"[::1]:5000"`` -> ``("::1", "5000")``; no port -> ``""``."""
    if host.startswith("["):
        end = host.find("]")
        if end < 0:
            return host, ""
        name, rest = host[1:end], host[end + 1 :]
        return name, rest[1:] if rest.startswith(":") else ""
    if host.count(":") == 1:
        name, _, port = host.partition(":")
        return name, port
    return host, ""


def is_loopback(host: str) -> bool:
    """localhost, 127.0.0.0/8 or ::1 (with or without a port)."""
    name, _ = split_host_port(host)
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


# ---------------------------------------------------------------------------------------------
# hosts.toml


@dataclass
class _Entry:
    """One endpoint as written in hosts.toml (or a default one)."""

    scheme: str | None = None  # None: not written out
    host: str = ""
    path: str = "/v2"
    capabilities: Capability = Capability.ALL
    ca_certs: list[str] | None = None
    client_pairs: list[tuple[str, str]] | None = None
    skip_verify: bool | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)

    @property
    def tls_from_file(self) -> bool:
        return self.ca_certs is not None or self.client_pairs is not None or self.skip_verify is not None


def host_dirs(hosts_dir: str | os.PathLike[str], host: str) -> list[Path]:
    """The directories looked at for ``host``, in order."""
    root = Path(hosts_dir)
    out = [root / host]
    name, port = split_host_port(host)
    if port:  # containerd on Windows, and some set-ups, write host_port_
        out.append(root / f"{name}_{port}_")
    out.append(root / "_default")
    return out


def _abs(p: str, base: Path) -> str:
    return p if os.path.isabs(p) else str(base / p)


def _strings(value: Any, where: str, what: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ConfigError(f"{where}: {what} must be a string or a list of strings")


def _parse_entry(url: str | None, cfg: dict[str, Any], base: Path, where: str) -> _Entry:
    entry = _Entry()
    override = cfg.get("override_path", False)
    if not isinstance(override, bool):
        raise ConfigError(f"{where}: override_path must be true or false")
    if url:
        explicit = "://" in url
        if explicit and not url.startswith(("http://", "https://")):
            raise ConfigError(f"{where}: {url!r}: only http:// and https:// endpoints are supported")
        parts = urlsplit(url if explicit else "https://" + url)
        if not parts.netloc:
            raise ConfigError(f"{where}: {url!r} has no host")
        entry.scheme = parts.scheme if explicit else None
        entry.host = parts.netloc
        path = os.path.normpath(parts.path) if parts.path not in ("", "/") else ""
        if path and not path.startswith("/"):
            path = "/" + path
        if override:
            entry.path = path or "/"
        else:
            entry.path = path if path.endswith("/v2") else path + "/v2"
    caps = cfg.get("capabilities")
    if caps is not None:
        names = _strings(caps, where, "capabilities")
        entry.capabilities = Capability(0)
        for n in names:
            cap = _CAPABILITY_NAMES.get(n.lower())
            if cap is None:
                raise ConfigError(f"{where}: unknown capability {n!r} (want pull, resolve or push)")
            entry.capabilities |= cap
    if "ca" in cfg:
        entry.ca_certs = [_abs(p, base) for p in _strings(cfg["ca"], where, "ca")]
    if "client" in cfg:
        entry.client_pairs = _client_pairs(cfg["client"], base, where)
    if "skip_verify" in cfg:
        sv = cfg["skip_verify"]
        if not isinstance(sv, bool):
            raise ConfigError(f"{where}: skip_verify must be true or false")
        entry.skip_verify = sv
    hdr = cfg.get("header")
    if hdr is not None:
        if not isinstance(hdr, dict):
            raise ConfigError(f"{where}: header must be a table")
        for k, v in hdr.items():
            for value in _strings(v, where, f"header {k!r}"):
                entry.headers.append((k, value))
    return entry


def _client_pairs(value: Any, base: Path, where: str) -> list[tuple[str, str]]:
    if isinstance(value, str):
        return [(_abs(value, base), "")]
    if not isinstance(value, list):
        raise ConfigError(f"{where}: client must be a file, a list of files or of [cert, key] pairs")
    out: list[tuple[str, str]] = []
    for item in value:
        if isinstance(item, str):
            out.append((_abs(item, base), ""))
        elif isinstance(item, list) and len(item) == 2 and all(isinstance(x, str) for x in item):
            out.append((_abs(item[0], base), _abs(item[1], base)))
        else:
            raise ConfigError(f"{where}: invalid client entry {item!r} (want a file or a [cert, key] pair)")
    return out


def parse_hosts_toml(text: str, base_dir: str | os.PathLike[str], where: str = "hosts.toml") -> list[_Entry]:
    """The endpoints of one hosts.toml: the ``[host."..."]`` mirrors in file order, then the
    server (``host`` empty when the file names none)."""
    import tomllib  # only where a hosts.toml is read (see DESIGN.md, "Start-up")

    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{where}: {e}") from None
    base = Path(base_dir)
    mirrors: list[_Entry] = []
    table = doc.get("host", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: host must be a table of [host.\"URL\"] entries")
    for url, cfg in table.items():  # tomllib keeps the file's order
        if not isinstance(cfg, dict):
            raise ConfigError(f"{where}: [host.{url!r}] must be a table")
        mirrors.append(_parse_entry(url, cfg, base, f"{where} [host.{url!r}]"))
    server = doc.get("server")
    if server is not None and not isinstance(server, str):
        raise ConfigError(f"{where}: server must be a string")
    top = {k: v for k, v in doc.items() if k not in ("host", "server")}
    return [*mirrors, _parse_entry(server or None, top, base, where)]


def _cert_dir_entry(d: Path) -> _Entry:
    """A Docker-style certs.d directory: *.crt CAs, *.cert (+ *.key) client pairs."""
    entry = _Entry()
    cas: list[str] = []
    pairs: list[tuple[str, str]] = []
    for f in sorted(d.iterdir()):
        if not f.is_file():
            continue
        if f.name.endswith(".crt"):
            cas.append(str(f))
        elif f.name.endswith(".cert"):
            key = f.with_name(f.name[: -len(".cert")] + ".key")
            pairs.append((str(f), str(key) if key.is_file() else ""))
    if cas:
        entry.ca_certs = cas
    if pairs:
        entry.client_pairs = pairs
    return entry


def _load_dir(hosts_dir: str, host: str) -> list[_Entry] | None:
    for d in host_dirs(hosts_dir, host):
        f = d / "hosts.toml"
        try:
            if f.is_file():
                return parse_hosts_toml(f.read_text(encoding="utf-8"), d, str(f))
            if d.is_dir():
                return [_cert_dir_entry(d)]
        except OSError as e:
            raise ConfigError(f"cannot read {f}: {e.strerror}") from None
    return None


def load_hosts(domain: str, options: RemoteOptions) -> list[RegistryHost]:
    """The endpoints for registry ``domain``, mirrors first, each with its TLS settings."""
    entries = _load_dir(options.hosts_dir, domain) if options.hosts_dir else None
    if not entries:
        entries = [_Entry()]
    server = entries[-1]
    if not server.host:
        server.host = DOCKER_HUB_SERVER if domain == DOCKER_HUB else domain
        if domain == DOCKER_HUB:
            server.scheme = "https"
    flag_pairs = [(options.tls_cert, options.tls_key or "")] if options.tls_cert else []
    out: list[RegistryHost] = []
    for e in entries:
        ca = list(options.tls_ca_cert) + (e.ca_certs or [])
        pairs = e.client_pairs if e.client_pairs is not None else flag_pairs
        skip = e.skip_verify if e.skip_verify is not None else options.skip_verify
        tls = TLSConfig(tuple(ca), tuple(pairs), skip)
        scheme = e.scheme
        if scheme is None:
            if options.plain_http or (is_loopback(e.host) and not (options.tls_configured or e.tls_from_file)):
                scheme = "http"
            else:
                scheme = "https"
        headers = tuple(options.headers) + tuple(e.headers)
        out.append(
            RegistryHost(
                scheme=scheme,
                host=e.host,
                path=e.path,
                capabilities=e.capabilities,
                tls=tls,
                headers=headers,
                mirror=not _same_host(e.host, domain),
            )
        )
    return out


def _same_host(endpoint: str, domain: str) -> bool:
    if domain == DOCKER_HUB:
        return endpoint in (DOCKER_HUB_SERVER, DOCKER_HUB, "index.docker.io")
    return endpoint.lower() == domain.lower()
