"""The one walk over image graphs: index -> manifests -> config + layers.

In the style of containerd's ``images.Walk(ctx, Handlers(...), desc)``: :func:`walk` calls a
*handler* with each descriptor and visits the children it returns, depth first, parents
before children, children in their order.  It is iterative (an index nested thousands deep
gives the right answer, never a RecursionError) and, by default, visits each digest once
(content addressing makes cycles impossible; the visited set also keeps a diamond-shaped
graph from exploding).  The few handlers every consumer needs are composed from
:meth:`Walker.children`, :func:`filter_platforms` and :func:`limit_manifests`; import's
completeness check, export, ``images ls``, ``images check``, unpack, garbage collection and
pull all walk this way.

What the OCI image-spec says about what ctrpy does not know is kept here, once:

* an index entry of a media type ctrpy does not know (``application/xml``, ``text/plain``)
  is not an error: it is a leaf, reported to ``on_unknown``, and *optional* (see
  :meth:`Walker.content`) -- carried along when present, never required;
* a manifest whose config is not an image config is an **artifact** (an SBOM, a signature,
  ``application/vnd.oci.empty.v1+json``): its config is never parsed, it has no platform of
  its own, and it is never unpacked; :meth:`Walker.resolve` tells images from artifacts.

Everything read comes from a JSON reader (verified, size-capped) and is schema-checked,
including containerd's rule that a manifest's bytes must not look like an index and the
other way round, and that a ``mediaType`` inside must agree with the descriptor's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ctrpy.errors import ContentNotFound, InvalidArchive, PlatformNotFound
from ctrpy.oci import Descriptor, Matcher, Platform, digest, mediatypes

REF_CONTENT = "containerd.io/gc.ref.content"

JsonReader = Callable[[str], Any]
Handler = Callable[[Descriptor], Sequence[Descriptor]]
UnknownHook = Callable[[Descriptor, str], None]  # (descriptor, where it was named)


# --------------------------------------------------------------------------- documents
@dataclass
class Manifest:
    descriptor: Descriptor
    config: Descriptor
    layers: list[Descriptor]
    artifact_type: str = ""

    @property
    def is_image(self) -> bool:
        return mediatypes.is_image_config(self.config.media_type)


@dataclass
class Config:
    platform: Platform
    diff_ids: list[str]
    raw: dict[str, Any] = field(default_factory=dict)


def _check_document(obj: Any, desc: Descriptor, where: str) -> dict[str, Any]:
    """A JSON object whose own mediaType (if any) and shape agree with ``desc``."""
    if not isinstance(obj, dict):
        raise InvalidArchive(f"{where}: not a JSON object")
    if obj.get("schemaVersion") == 1 or mediatypes.is_schema1(str(obj.get("mediaType"))):
        raise InvalidArchive(f"{where}: schema 1 manifests are no longer supported")
    inner = obj.get("mediaType")
    if inner is not None and inner != desc.media_type:
        raise InvalidArchive(f"{where}: its mediaType {inner!r} disagrees with its descriptor's {desc.media_type!r}")
    if mediatypes.is_manifest(desc.media_type) and ("manifests" in obj or "fsLayers" in obj):
        raise InvalidArchive(f"{where}: described as a manifest, but it is an index")
    if mediatypes.is_index(desc.media_type) and ("config" in obj or "layers" in obj or "fsLayers" in obj):
        raise InvalidArchive(f"{where}: described as an index, but it is a manifest")
    if obj.get("schemaVersion") != 2:
        raise InvalidArchive(f"{where}: schemaVersion must be 2")
    return obj


def parse_index(obj: Any, where: str, desc: Descriptor | None = None) -> list[Descriptor]:
    doc = _check_document(obj, desc or Descriptor(mediatypes.OCI_INDEX, "", 0), where)
    items = doc.get("manifests")
    if not isinstance(items, list):
        raise InvalidArchive(f"{where}: index has no manifests list")
    return [Descriptor.from_json(m, where=f"{where} manifests[{i}]") for i, m in enumerate(items)]


def parse_manifest(obj: Any, desc: Descriptor) -> Manifest:
    where = f"manifest {desc.digest}"
    doc = _check_document(obj, desc, where)
    config = Descriptor.from_json(doc.get("config"), where=f"{where} config")
    layers = doc.get("layers")
    if not isinstance(layers, list):
        raise InvalidArchive(f"{where}: layers must be a list")
    artifact_type = doc.get("artifactType") or ""
    if not isinstance(artifact_type, str):
        raise InvalidArchive(f"{where}: artifactType must be a string")
    return Manifest(
        desc,
        config,
        [Descriptor.from_json(layer, where=f"{where} layers[{i}]") for i, layer in enumerate(layers)],
        artifact_type,
    )


def parse_config(obj: Any, dgst: str) -> Config:
    """An image config: os, architecture, rootfs.diff_ids (never called for artifacts)."""
    where = f"config {dgst}"
    if not isinstance(obj, dict):
        raise InvalidArchive(f"{where}: not a JSON object")
    os_, arch = obj.get("os"), obj.get("architecture")
    if not isinstance(os_, str) or not isinstance(arch, str) or not os_ or not arch:
        raise InvalidArchive(f"{where}: needs os and architecture")
    variant = obj.get("variant") or ""
    osv = obj.get("os.version") or ""
    if not isinstance(variant, str) or not isinstance(osv, str):
        raise InvalidArchive(f"{where}: variant and os.version must be strings")
    rootfs = obj.get("rootfs")
    if not isinstance(rootfs, dict) or not isinstance(rootfs.get("diff_ids"), list):
        raise InvalidArchive(f"{where}: rootfs.diff_ids missing")
    if rootfs.get("type", "layers") != "layers":
        raise InvalidArchive(f"{where}: unsupported rootfs type {rootfs.get('type')!r}")
    diff_ids = rootfs["diff_ids"]
    for d in diff_ids:
        if not isinstance(d, str) or not digest.is_valid(d):
            raise InvalidArchive(f"{where}: invalid diff_id {d!r}")
    return Config(Platform(os_, arch, variant, osv), list(diff_ids), obj)


# --------------------------------------------------------------------------- the walk
def walk(roots: Iterable[Descriptor], handler: Handler, *, once: bool = True) -> None:
    """Call ``handler`` on every descriptor reachable from ``roots`` and visit the children
    it returns: depth first, parents before children, children in order.  Iterative.
    ``once``: each digest is visited once (``False`` counts repeated leaves, as ctr's
    image size does; use it only with handlers that do not fan out)."""
    stack = list(reversed(list(roots)))
    seen: set[str] = set()
    while stack:
        desc = stack.pop()
        if once:
            if desc.digest in seen:
                continue
            seen.add(desc.digest)
        stack.extend(reversed(handler(desc)))


def filter_platforms(handler: Handler, matcher: Matcher) -> Handler:
    """containerd's FilterPlatforms: an index's children whose platform the matcher refuses
    are dropped (children without a platform are kept)."""

    def h(desc: Descriptor) -> Sequence[Descriptor]:
        kids = handler(desc)
        if not mediatypes.is_index(desc.media_type):
            return kids
        return [k for k in kids if k.platform is None or matcher.match(k.platform)]

    return h


def limit_manifests(handler: Handler, limit: int) -> Handler:
    """containerd's LimitManifests: of an index's children keep the first ``limit``, those
    with a platform before those without (the order is otherwise kept: the matcher is
    strict, so every platform it keeps is equally good)."""

    def h(desc: Descriptor) -> Sequence[Descriptor]:
        kids = list(handler(desc))
        if not mediatypes.is_index(desc.media_type):
            return kids
        kids.sort(key=lambda k: k.platform is None)
        return kids[:limit]

    return h


def _unknown_platform(p: Platform) -> bool:
    return p.os == "unknown" or p.architecture == "unknown"


@dataclass
class Selected:
    """The manifest an image means for a platform (see :meth:`Walker.resolve`)."""

    descriptor: Descriptor
    manifest: Manifest
    config: Config | None  # None: an artifact

    @property
    def is_artifact(self) -> bool:
        return self.config is None


@dataclass
class Content:
    """One blob an image needs (see :meth:`Walker.content`)."""

    descriptor: Descriptor
    optional: bool  # named by an index with a media type ctrpy does not know
    parent: Descriptor | None


class Walker:
    """Reads image graphs through ``read_json`` (verified, size-capped JSON of a blob).

    ``exists`` says whether a blob is present; when given, walks do not read what is
    absent (consumers see the descriptor and decide).  ``on_unknown`` hears of every index
    entry whose media type ctrpy does not know."""

    def __init__(
        self,
        read_json: JsonReader,
        exists: Callable[[str], bool] | None = None,
        on_unknown: UnknownHook | None = None,
    ):
        self._read_json = read_json
        self.exists = exists or (lambda _d: True)
        self.on_unknown = on_unknown
        self._docs: dict[str, Any] = {}  # digest -> parsed JSON: content-addressed, read once

    def read_json(self, dgst: str) -> Any:
        doc = self._docs.get(dgst)
        if doc is None:
            doc = self._docs[dgst] = self._read_json(dgst)
        return doc

    # -- documents --------------------------------------------------------------
    def index(self, desc: Descriptor) -> list[Descriptor]:
        where = f"index {desc.digest}"
        entries = parse_index(self.read_json(desc.digest), where, desc)
        if self.on_unknown is not None:
            for entry in entries:
                if not mediatypes.is_known(entry.media_type):
                    self.on_unknown(entry, where)
        return entries

    def manifest(self, desc: Descriptor) -> Manifest:
        return parse_manifest(self.read_json(desc.digest), desc)

    def config(self, desc: Descriptor) -> Config:
        return parse_config(self.read_json(desc.digest), desc.digest)

    def children(self, desc: Descriptor) -> list[Descriptor]:
        """containerd's ChildrenHandler: an index's entries, a manifest's config and layers,
        nothing for anything else (absent documents have no known children)."""
        if mediatypes.is_index(desc.media_type):
            return self.index(desc) if self.exists(desc.digest) else []
        if mediatypes.is_manifest(desc.media_type):
            if not self.exists(desc.digest):
                return []
            m = self.manifest(desc)
            return [m.config, *m.layers]
        return []

    def reference_labels(self, desc: Descriptor) -> dict[str, str]:
        """containerd's garbage-collection reference labels of an index or manifest, as
        ctr writes them on its content: ``containerd.io/gc.ref.content.m.<i>`` for an
        index's entries, ``...content.config`` and ``...content.l.<i>`` for a manifest's."""
        if mediatypes.is_index(desc.media_type):
            return {f"{REF_CONTENT}.m.{i}": e.digest for i, e in enumerate(self.index(desc))}
        if mediatypes.is_manifest(desc.media_type):
            m = self.manifest(desc)
            labels = {f"{REF_CONTENT}.config": m.config.digest}
            labels.update({f"{REF_CONTENT}.l.{i}": layer.digest for i, layer in enumerate(m.layers)})
            return labels
        return {}

    # -- what an image needs ------------------------------------------------------
    def content(self, target: Descriptor, matcher: Matcher) -> list[Content]:
        """Every blob reachable from ``target`` for the matched platforms, each once,
        parents first.  Absent indexes and manifests are listed but not read."""
        out: list[Content] = []
        parent_of: dict[str, Descriptor] = {}
        optional: set[str] = set()

        def handler(desc: Descriptor) -> Sequence[Descriptor]:
            out.append(Content(desc, desc.digest in optional, parent_of.get(desc.digest)))
            kids = self.children(desc)
            for k in kids:
                parent_of.setdefault(k.digest, desc)
                if mediatypes.is_index(desc.media_type) and not mediatypes.is_known(k.media_type):
                    optional.add(k.digest)
            return kids

        walk([target], filter_platforms(handler, matcher))
        return out

    def size(self, target: Descriptor, matcher: Matcher) -> int:
        """The SIZE ``ctr images ls`` shows: the target, below an index only its first
        child for the platform (LimitManifests 1), config and layers as often as listed.
        Raises ContentNotFound when a document on the way is absent."""
        total = 0

        def handler(desc: Descriptor) -> Sequence[Descriptor]:
            nonlocal total
            total += desc.size
            if (mediatypes.is_index(desc.media_type) or mediatypes.is_manifest(desc.media_type)) and not self.exists(
                desc.digest
            ):
                raise ContentNotFound(desc.digest)
            return self.children(desc)

        walk([target], limit_manifests(filter_platforms(handler, matcher), 1), once=False)
        return total

    def platforms(self, target: Descriptor) -> list[Platform]:
        """containerd's images.Platforms: the platform of every index entry that has one
        (not ``unknown``), else of every image config reached; absent content is skipped."""
        out: list[Platform] = []

        def handler(desc: Descriptor) -> Sequence[Descriptor]:
            if desc.platform is not None:
                if not _unknown_platform(desc.platform):
                    out.append(desc.platform)
                return []
            if mediatypes.is_image_config(desc.media_type) and self.exists(desc.digest):
                cfg = self.config(desc)
                out.append(Platform(cfg.platform.os, cfg.platform.architecture).normalized())
            return self.children(desc)

        walk([target], handler)
        return out

    # -- the manifest of a platform -------------------------------------------------
    def resolve(self, target: Descriptor, matcher: Matcher, name: str | None = None) -> Selected:
        """The manifest ``target`` means for the matched platforms (containerd's
        images.Manifest): the first image manifest whose platform -- its index entry's,
        else its config's -- matches.  When ``target`` holds no image manifest at all, its
        first artifact manifest is the answer (``config`` None: never unpacked).

        Raises PlatformNotFound when images exist but none for the platforms, and
        ContentNotFound when a document needed on the way is absent."""
        images: list[Selected] = []
        artifacts: list[Selected] = []
        any_image = False

        def handler(desc: Descriptor) -> Sequence[Descriptor]:
            nonlocal any_image
            if mediatypes.is_index(desc.media_type):
                if not self.exists(desc.digest):
                    raise ContentNotFound(desc.digest, "index")
                kids = self.index(desc)
                if any(_names_image(k) for k in kids):
                    any_image = True
                return [k for k in kids if mediatypes.is_known(k.media_type)
                        and (k.platform is None or matcher.match(k.platform))]
            if not mediatypes.is_manifest(desc.media_type):
                return []
            if not self.exists(desc.digest):
                raise ContentNotFound(desc.digest, "manifest")
            m = self.manifest(desc)
            if not m.is_image:
                artifacts.append(Selected(desc, m, None))
                return []
            any_image = True
            if images:
                return []
            cfg = self.config(m.config) if self.exists(m.config.digest) else None
            platform = desc.platform or (cfg.platform if cfg is not None else None)
            if platform is None:
                raise ContentNotFound(m.config.digest, "config")
            if matcher.match(platform):
                if cfg is None:
                    raise ContentNotFound(m.config.digest, "config")
                images.append(Selected(desc, m, cfg))
            return []

        walk([target], handler)
        if images:
            return images[0]
        if artifacts and not any_image:
            return artifacts[0]
        raise PlatformNotFound(f"image {name}" if name else target.digest, matcher.describe())

    def offers(self, target: Descriptor, matcher: Matcher, name: str | None = None) -> bool:
        """Does ``target`` mean something for the matched platforms (an image manifest for
        one of them, or, holding no images, an artifact)?"""
        try:
            self.resolve(target, matcher, name)
        except PlatformNotFound:
            return False
        return True


def _names_image(entry: Descriptor) -> bool:
    """Does an index entry, unread, say it is an image manifest (or an index of them)?"""
    if mediatypes.is_index(entry.media_type):
        return False  # its own entries say, when it is walked
    if not mediatypes.is_manifest(entry.media_type):
        return False
    return entry.platform is not None and not _unknown_platform(entry.platform)

