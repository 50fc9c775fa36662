"""Proxies from the environment, with Go's rules (``golang.org/x/net/http/httpproxy``).

``HTTPS_PROXY`` for https URLs, ``HTTP_PROXY`` for http URLs (upper case first, then lower
case), ``NO_PROXY`` (or ``no_proxy``): a comma-separated list of

- ``*``: no proxy at all;
- an IP address or a CIDR (``10.0.0.0/8``, ``::1``), optionally ``IP:port``: matches only URLs
  whose host is an IP literal;
- a domain: ``example.com`` matches it and its subdomains, ``.example.com`` and
  ``*.example.com`` only the subdomains; ``example.com:8080`` only that port.

As in Go, localhost and loopback addresses never go through a proxy.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from ctrpy.remote.hosts import split_host_port

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _env(env: Mapping[str, str], *names: str) -> str:
    for n in names:
        v = env.get(n)
        if v:
            return v
    return ""


@dataclass(frozen=True)
class _DomainRule:
    suffix: str  # starts with "."
    port: str
    match_host: bool  # also the domain itself (no leading dot was written)

    def match(self, host: str, port: str) -> bool:
        if host.endswith(self.suffix) or (self.match_host and host == self.suffix[1:]):
            return not self.port or self.port == port
        return False


@dataclass(frozen=True)
class _IPRule:
    ip: IPAddress
    port: str

    def match(self, ip: IPAddress, port: str) -> bool:
        return ip == self.ip and (not self.port or self.port == port)


class NoProxy:
    """A parsed ``NO_PROXY`` value."""

    def __init__(self, value: str) -> None:
        self.all = False
        self.networks: list[IPNetwork] = []
        self.ips: list[_IPRule] = []
        self.domains: list[_DomainRule] = []
        for raw in value.split(","):
            p = raw.strip().lower()
            if not p:
                continue
            if p == "*":
                self.all = True
                return
            if "/" in p:
                try:
                    self.networks.append(ipaddress.ip_network(p, strict=False))
                except ValueError:
                    pass  # not a CIDR: Go ignores it as well (a domain has no "/")
                continue
            phost, pport = p, ""
            if p.startswith("[") and "]" in p:
                phost, pport = split_host_port(p)
            elif p.count(":") == 1:
                phost, pport = p.split(":", 1)
            if not phost:
                continue
            try:
                self.ips.append(_IPRule(ipaddress.ip_address(phost), pport))
                continue
            except ValueError:
                pass
            if phost.startswith("*."):
                phost = phost[1:]
            match_host = not phost.startswith(".")
            if match_host:
                phost = "." + phost
            self.domains.append(_DomainRule(phost, pport, match_host))

    def bypass(self, host: str, port: str) -> bool:
        """Should a request to ``host:port`` go direct?"""
        host = host.lower().strip("[]")
        if host == "localhost":
            return True
        ip: IPAddress | None
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            ip = None
        if ip is not None and ip.is_loopback:
            return True
        if self.all:
            return True
        if ip is not None:
            if any(ip in net for net in self.networks):
                return True
            return any(r.match(ip, port) for r in self.ips)
        return any(r.match(host, port) for r in self.domains)


def proxy_for(url: str, env: Mapping[str, str]) -> str | None:
    """The proxy URL a request to ``url`` goes through, or None for a direct connection."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "https":
        proxy = _env(env, "HTTPS_PROXY", "https_proxy")
    elif scheme == "http":
        proxy = _env(env, "HTTP_PROXY", "http_proxy")
    else:
        return None
    if not proxy:
        return None
    host = parts.hostname or ""
    port = str(parts.port) if parts.port else ("443" if scheme == "https" else "80")
    if NoProxy(_env(env, "NO_PROXY", "no_proxy")).bypass(host, port):
        return None
    if "://" not in proxy:
        proxy = "http://" + proxy
    return proxy
