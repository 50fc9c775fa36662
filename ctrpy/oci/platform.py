"""Platforms: parsing `os/arch[/variant]`, normalising, matching, and the host's own."""

from __future__ import annotations

import platform as _stdplatform
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ctrpy.errors import InvalidArchive, InvalidArgument

_COMPONENT = re.compile(r"[A-Za-z0-9_-]+")

_ARCH_ALIASES = {
    "x86_64": "amd64",
    "x86-64": "amd64",
    "aarch64": "arm64",
    "armhf": "arm",
    "i386": "386",
    "i686": "386",
}
_KNOWN_OS = frozenset(
    {"linux", "windows", "darwin", "freebsd", "netbsd", "openbsd", "solaris", "illumos",
     "android", "aix", "dragonfly", "plan9", "js", "wasip1", "ios", "zos"}
)
_KNOWN_ARCH = frozenset(
    {"amd64", "arm64", "arm", "386", "ppc64le", "ppc64", "s390x", "riscv64", "mips64le",
     "mips64", "mipsle", "mips", "loong64", "wasm", "sparc64"}
)


def _norm_arch(arch: str, variant: str) -> tuple[str, str]:
    arch, variant = arch.lower(), variant.lower()
    if arch == "armel":  # containerd: armel is arm/v6
        arch, variant = "arm", variant or "v6"
    arch = _ARCH_ALIASES.get(arch, arch)
    if arch == "arm64" and variant in ("8", "v8"):
        variant = ""
    elif arch == "arm" and variant in ("", "7"):
        variant = "v7"
    elif arch == "arm" and variant in ("5", "6", "8"):
        variant = "v" + variant
    elif arch == "amd64" and variant == "v1":
        variant = ""
    return arch, variant


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""
    os_version: str = ""

    @classmethod
    def parse(cls, spec: str) -> Platform:
        """Parse `os[/arch[/variant]]` or `arch` as ctr does (`linux/arm64`, `linux/arm/v7`)."""
        parts = spec.strip().split("/")
        if not spec or len(parts) > 3 or not all(_COMPONENT.fullmatch(p) for p in parts):
            raise InvalidArgument(f"invalid platform {spec!r}: want os/arch[/variant]")
        if len(parts) == 1:
            word = parts[0].lower()
            if word in _KNOWN_OS:
                host = cls.host()
                return cls(word, host.architecture, host.variant).normalized()
            arch, variant = _norm_arch(word, "")
            if arch not in _KNOWN_ARCH:
                raise InvalidArgument(f"invalid platform {spec!r}: unknown os or architecture")
            return cls("linux", arch, variant)
        os_ = parts[0].lower()
        arch, variant = _norm_arch(parts[1], parts[2] if len(parts) == 3 else "")
        return cls(os_, arch, variant)

    @classmethod
    def host(cls) -> Platform:
        arch, variant = _norm_arch(_stdplatform.machine() or "amd64", "")
        return cls("linux", arch, variant)

    def normalized(self) -> Platform:
        arch, variant = _norm_arch(self.architecture, self.variant)
        return Platform(self.os.lower(), arch, variant, self.os_version)

    def __str__(self) -> str:
        base = f"{self.os}/{self.architecture}"
        return f"{base}/{self.variant}" if self.variant else base

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"architecture": self.architecture, "os": self.os}
        if self.os_version:
            out["os.version"] = self.os_version
        if self.variant:
            out["variant"] = self.variant
        return out

    @classmethod
    def from_json(cls, obj: Any, *, where: str = "platform") -> Platform:
        if not isinstance(obj, dict):
            raise InvalidArchive(f"{where}: platform is not a JSON object")
        os_, arch = obj.get("os"), obj.get("architecture")
        variant = obj.get("variant") or ""
        osv = obj.get("os.version") or ""
        if not isinstance(os_, str) or not isinstance(arch, str) or not os_ or not arch:
            raise InvalidArchive(f"{where}: platform needs os and architecture")
        if not isinstance(variant, str) or not isinstance(osv, str):
            raise InvalidArchive(f"{where}: platform variant/os.version must be strings")
        return cls(os_, arch, variant, osv)

    def is_known(self) -> bool:
        p = self.normalized()
        return p.os in _KNOWN_OS and p.architecture in _KNOWN_ARCH


class Matcher:
    """Strict matching of normalised platforms (ctr's `--platform` semantics).

    ``Matcher([])`` with ``all_platforms=True`` matches everything.
    """

    def __init__(self, platforms: Iterable[Platform] = (), *, all_platforms: bool = False):
        self.platforms = [p.normalized() for p in platforms]
        self.all = all_platforms

    @classmethod
    def default(cls) -> Matcher:
        return cls([Platform.host()])

    @classmethod
    def from_options(cls, specs: Iterable[str], all_platforms: bool) -> Matcher:
        parsed = [Platform.parse(s) for s in specs]
        if all_platforms:
            return cls(all_platforms=True)
        return cls(parsed) if parsed else cls.default()

    def match(self, p: Platform | None) -> bool:
        if self.all or p is None:
            return True
        n = p.normalized()
        for want in self.platforms:
            if (want.os, want.architecture, want.variant) == (n.os, n.architecture, n.variant):
                return True
        return False

    def describe(self) -> str:
        return "all platforms" if self.all else ", ".join(str(p) for p in self.platforms)
