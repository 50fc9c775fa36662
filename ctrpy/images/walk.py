"""Walking images: index -> manifest -> config + layers, with platform filtering.

Everything read here comes from the content store (verified, size-capped JSON) and is
schema-checked before use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ctrpy.errors import InvalidArchive, NotFound
from ctrpy.oci import Descriptor, Matcher, Platform, digest, mediatypes

JsonReader = Callable[[str], Any]


@dataclass
class Manifest:
    descriptor: Descriptor
    config: Descriptor
    layers: list[Descriptor]


@dataclass
class Config:
    platform: Platform
    diff_ids: list[str]
    raw: dict[str, Any] = field(default_factory=dict)


def parse_index(obj: Any, where: str) -> list[Descriptor]:
    if not isinstance(obj, dict):
        raise InvalidArchive(f"{where}: index is not a JSON object")
    if obj.get("schemaVersion") != 2:
        raise InvalidArchive(f"{where}: index schemaVersion must be 2")
    items = obj.get("manifests")
    if not isinstance(items, list):
        raise InvalidArchive(f"{where}: index has no manifests list")
    return [Descriptor.from_json(m, where=f"{where} manifests[{i}]") for i, m in enumerate(items)]


def parse_manifest(obj: Any, desc: Descriptor) -> Manifest:
    where = f"manifest {desc.digest}"
    if not isinstance(obj, dict):
        raise InvalidArchive(f"{where}: not a JSON object")
    if obj.get("schemaVersion") != 2:
        raise InvalidArchive(f"{where}: schemaVersion must be 2")
    config = Descriptor.from_json(obj.get("config"), where=f"{where} config")
    layers = obj.get("layers")
    if not isinstance(layers, list):
        raise InvalidArchive(f"{where}: layers must be a list")
    return Manifest(
        desc,
        config,
        [Descriptor.from_json(layer, where=f"{where} layers[{i}]") for i, layer in enumerate(layers)],
    )


def parse_config(obj: Any, dgst: str) -> Config:
    where = f"config {dgst}"
    if not isinstance(obj, dict):
        raise InvalidArchive(f"{where}: not a JSON object")
    os_, arch = obj.get("os"), obj.get("architecture")
    if not isinstance(os_, str) or not isinstance(arch, str) or not os_ or not arch:
        raise InvalidArchive(f"{where}: needs os and architecture")
    variant = obj.get("variant") or ""
    if not isinstance(variant, str):
        raise InvalidArchive(f"{where}: variant must be a string")
    rootfs = obj.get("rootfs")
    if not isinstance(rootfs, dict) or not isinstance(rootfs.get("diff_ids"), list):
        raise InvalidArchive(f"{where}: rootfs.diff_ids missing")
    diff_ids = rootfs["diff_ids"]
    for d in diff_ids:
        if not isinstance(d, str) or not digest.is_valid(d):
            raise InvalidArchive(f"{where}: invalid diff_id {d!r}")
    return Config(Platform(os_, arch, variant), list(diff_ids), obj)


class Walker:
    """Resolves images through a JSON reader (``content.read_json``)."""

    def __init__(self, read_json: JsonReader):
        self.read_json = read_json

    def children(self, desc: Descriptor) -> list[Descriptor]:
        if mediatypes.is_index(desc.media_type):
            return parse_index(self.read_json(desc.digest), f"index {desc.digest}")
        if mediatypes.is_manifest(desc.media_type):
            m = self.manifest(desc)
            return [m.config, *m.layers]
        return []

    def manifest(self, desc: Descriptor) -> Manifest:
        return parse_manifest(self.read_json(desc.digest), desc)

    def config(self, desc: Descriptor) -> Config:
        return parse_config(self.read_json(desc.digest), desc.digest)

    def manifests(self, target: Descriptor, matcher: Matcher, *, strict_present: bool = False) -> list[Descriptor]:
        """Every manifest under ``target`` whose platform matches (index order, depth first).

        A child of an index that is absent from the store is skipped unless
        ``strict_present``; then it raises NotFound.
        """
        out: list[Descriptor] = []

        def visit(desc: Descriptor, depth: int) -> None:
            if depth > 8:
                raise InvalidArchive(f"index {desc.digest}: nested too deeply")
            if mediatypes.is_manifest(desc.media_type):
                if desc.platform is None or matcher.match(desc.platform):
                    out.append(desc)
                return
            if mediatypes.is_index(desc.media_type):
                for child in self.children(desc):
                    if child.platform is not None and not matcher.match(child.platform):
                        continue
                    try:
                        visit(child, depth + 1)
                    except NotFound:
                        if strict_present:
                            raise
                return
            raise InvalidArchive(f"{desc.digest}: unsupported media type {desc.media_type}")

        visit(target, 0)
        return out

    def resolve_manifest(self, target: Descriptor, matcher: Matcher) -> tuple[Manifest, Config]:
        """The one manifest (and its config) of ``target`` for the matcher's platform."""
        found = self.manifests(target, matcher)
        for desc in found:
            m = self.manifest(desc)
            cfg = self.config(m.config)
            if desc.platform is None and not matcher.match(cfg.platform):
                continue
            return m, cfg
        raise NotFound(f"no manifest for platform {matcher.describe()} in {target.digest}")

    def walk(self, target: Descriptor, matcher: Matcher) -> Iterator[Descriptor]:
        """Every descriptor reachable from ``target`` for the platform, each once, parents first."""
        seen: set[str] = set()
        stack = [target]
        while stack:
            desc = stack.pop()
            if desc.digest in seen:
                continue
            seen.add(desc.digest)
            yield desc
            if mediatypes.is_index(desc.media_type):
                kids = [c for c in self.children(desc) if c.platform is None or matcher.match(c.platform)]
            elif mediatypes.is_manifest(desc.media_type):
                kids = self.children(desc)
            else:
                kids = []
            stack.extend(reversed(kids))

    def size(self, target: Descriptor, matcher: Matcher) -> int:
        """The SIZE ``ctr images ls`` shows: the target, and below an index only the first
        child for the platform (containerd's LimitManifests 1), config and layers counted
        as often as they are listed."""
        total = target.size
        if mediatypes.is_index(target.media_type):
            for child in self.children(target):
                if child.platform is None or matcher.match(child.platform):
                    return total + self.size(child, matcher)
            return total
        if mediatypes.is_manifest(target.media_type):
            m = self.manifest(target)
            total += m.config.size + sum(layer.size for layer in m.layers)
        return total

    def platforms(self, target: Descriptor) -> list[Platform]:
        """Platforms an image offers (from index entries, or the config of a lone manifest)."""
        if mediatypes.is_index(target.media_type):
            out: list[Platform] = []
            for c in self.children(target):
                if c.platform is not None:
                    out.append(c.platform)
                elif mediatypes.is_index(c.media_type):
                    out.extend(self.platforms(c))
            return out
        if mediatypes.is_manifest(target.media_type):
            m = self.manifest(target)
            return [self.config(m.config).platform]
        return []
