"""Image references, docker-style.

``normalize("busybox")`` gives ``docker.io/library/busybox:latest``; ``familiar`` goes back
(``docker.io/library/busybox:latest`` -> ``busybox:latest``).  Image records keep the
name they were given; lookups fall back to the normalised form (see ``candidates``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ctrpy.errors import InvalidArgument
from ctrpy.oci import digest as _digest

DEFAULT_DOMAIN = "docker.io"
LEGACY_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"

_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_DOMAIN = re.compile(
    r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?))*"
    r"(?::[0-9]+)?|\[[0-9a-fA-F:]+\](?::[0-9]+)?"
)
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_MAX_NAME = 255


@dataclass(frozen=True)
class Reference:
    domain: str
    path: str
    tag: str = ""
    digest: str = ""

    @property
    def repository(self) -> str:
        return f"{self.domain}/{self.path}"

    def __str__(self) -> str:
        out = self.repository
        if self.tag:
            out += ":" + self.tag
        if self.digest:
            out += "@" + self.digest
        return out


def _split_domain(name: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        domain, path = first, rest
    else:
        domain, path = DEFAULT_DOMAIN, name
    if domain == LEGACY_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = OFFICIAL_REPO_PREFIX + path
    return domain, path


def parse(ref: str) -> Reference:
    """Parse a docker reference (short or full), filling in docker.io and library/."""
    if not ref or ref != ref.strip():
        raise InvalidArgument(f"invalid reference {ref!r}")
    name, at, dgst = ref.partition("@")
    if at:
        _digest.validate(dgst)
    tag = ""
    last_slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > last_slash:
        name, tag = name[:colon], name[colon + 1 :]
        if not _TAG.fullmatch(tag):
            raise InvalidArgument(f"invalid reference {ref!r}: bad tag {tag!r}")
    domain, path = _split_domain(name)
    if not _DOMAIN.fullmatch(domain):
        raise InvalidArgument(f"invalid reference {ref!r}: bad domain {domain!r}")
    if not path or not all(_PATH_COMPONENT.fullmatch(c) for c in path.split("/")):
        raise InvalidArgument(
            f"invalid reference {ref!r}: repository names must be lowercase "
            "[a-z0-9] separated by '.', '_', '__' or '-'"
        )
    if len(domain) + 1 + len(path) > _MAX_NAME:
        raise InvalidArgument(f"invalid reference {ref!r}: name longer than {_MAX_NAME}")
    return Reference(domain, path, tag, dgst)


def normalize(ref: str) -> str:
    """``busybox`` -> ``docker.io/library/busybox:latest``; full names keep their parts."""
    r = parse(ref)
    if not r.tag and not r.digest:
        r = Reference(r.domain, r.path, "latest", "")
    return str(r)


def familiar(ref: str) -> str:
    """The short form docker prints: ``docker.io/library/busybox:latest`` -> ``busybox:latest``."""
    try:
        r = parse(ref)
    except InvalidArgument:
        return ref
    path = r.path
    if r.domain == DEFAULT_DOMAIN:
        if path.startswith(OFFICIAL_REPO_PREFIX) and path.count("/") == 1:
            path = path[len(OFFICIAL_REPO_PREFIX) :]
        out = path
    else:
        out = f"{r.domain}/{path}"
    if r.tag:
        out += ":" + r.tag
    if r.digest:
        out += "@" + r.digest
    return out


def try_normalize(ref: str) -> str | None:
    try:
        return normalize(ref)
    except InvalidArgument:
        return None


def candidates(name: str) -> list[str]:
    """Names to try, in order, when a user names an image: as given, then normalised."""
    out = [name]
    n = try_normalize(name)
    if n is not None and n not in out:
        out.append(n)
    return out


def is_full_ref_name(ref_name: str) -> bool:
    """An OCI ref.name with '/', ':' or '@' is a whole reference, not a bare tag."""
    return any(c in ref_name for c in "/:@")


def split_tag(name: str) -> tuple[str, str]:
    """Split ``repo:tag@digest`` loosely into (repo-with-digest-stripped, tag or "")."""
    base = name.split("@", 1)[0]
    slash = base.rfind("/")
    colon = base.rfind(":")
    if colon > slash:
        return base[:colon], base[colon + 1 :]
    return base, ""


def with_digest(base: str, dgst: str) -> str:
    """``NAME@digest``; a tag on ``base`` is dropped, as ctr's digest refs do."""
    repo, _tag = split_tag(base)
    return f"{repo}@{dgst}"
