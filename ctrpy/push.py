"""Pushing an image from the store to a registry (containerd's ``remotes.PushContent``).

What is pushed is decided first (:func:`select`, :func:`plan`), before any request: the
one walk (:mod:`ctrpy.images.walk`) lists every blob of the top object, parents first; a
blob that is needed and absent is an error then, not halfway through.  Then:

1. blobs (configs, layers), ``max_concurrent`` at a time: HEAD first (a blob the
   repository has is not sent again); a ``containerd.io/distribution.source.<host>=<repo>``
   label naming another repository of the same registry is tried as a cross-repository
   mount; otherwise one streamed PUT from the blob file (re-opened for a retry), or chunked
   PATCHes (:attr:`PushOptions.chunk_size`, or when the registry asks for them);
2. manifests and indexes, children before parents, each by digest (a HEAD first);
3. the top object under the tag, last.  A failure before that PUT creates no tag.

Layers of non-distributable media types are left out, as ctr does, unless
:attr:`PushOptions.allow_non_distributable` says otherwise.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from ctrpy.archive.pipeline import Prefetched
from ctrpy.content import ContentStore
from ctrpy.content.store import VerifyingReader
from ctrpy.errors import ContentNotFound, InvalidArgument, PlatformContentMissing, PlatformNotFound
from ctrpy.images import Walker
from ctrpy.oci import Descriptor, Matcher, Platform, digest, mediatypes
from ctrpy.oci.reference import parse as parse_reference
from ctrpy.progress import Sink, Transfer
from ctrpy.streams import json_bytes

if TYPE_CHECKING:
    from ctrpy.remote import Registry  # the HTTP client loads when a push runs

SOURCE_LABEL = "containerd.io/distribution.source."
DEFAULT_CONCURRENCY = 3  # ctr's --max-concurrent-uploaded-layers


@dataclass(frozen=True)
class PushOptions:
    """``platforms``: none, every platform; one, that platform's manifest becomes the top
    object (ctr); several, a new index of the index's entries for them is the top object.
    ``max_concurrent``: blobs uploaded at once.  ``chunk_size``: upload in PATCHes of this
    many bytes.  ``allow_non_distributable``: push non-distributable layers too."""

    platforms: tuple[Platform, ...] = ()
    max_concurrent: int = DEFAULT_CONCURRENCY
    chunk_size: int | None = None
    allow_non_distributable: bool = False

    def check(self) -> None:
        if self.max_concurrent < 1:
            raise InvalidArgument(f"at least one upload at a time, not {self.max_concurrent}")
        if self.chunk_size is not None and self.chunk_size < 1:
            raise InvalidArgument(f"a chunk size must be positive, not {self.chunk_size}")


@dataclass
class PushResult:
    """``reference``: what the registry now has (``host/repo:tag``); ``descriptor``: the top
    object; ``statuses``: (ctr's ref, status) of every object, in walk order (parents first),
    status one of ``done`` (sent), ``mounted``, ``exists`` (already there)."""

    reference: str
    descriptor: Descriptor
    statuses: list[tuple[str, str]] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for _, s in self.statuses if s == status)


@dataclass(frozen=True)
class Selection:
    """The top object to push: a stored one (``data`` None), or a new index (``data``)
    whose entries ``roots`` are stored; ``matcher`` filters the walk below it."""

    top: Descriptor
    roots: list[Descriptor]
    matcher: Matcher
    data: bytes | None = None


@dataclass
class Plan:
    blobs: list[Descriptor] = field(default_factory=list)  # configs, layers, other leaves
    manifests: list[Descriptor] = field(default_factory=list)  # indexes and manifests, parents first
    skipped: list[Descriptor] = field(default_factory=list)  # non-distributable, or absent and not needed


def ref_key(desc: Descriptor) -> str:
    """The name ctr shows for an object (containerd's ``remotes.MakeRefKey``)."""
    t = desc.media_type
    if mediatypes.is_index(t):
        kind = "index"
    elif mediatypes.is_manifest(t):
        kind = "manifest"
    elif mediatypes.is_layer(t):
        kind = "layer"
    elif mediatypes.is_image_config(t) or t == mediatypes.OCI_EMPTY:
        kind = "config"
    else:
        kind = "unknown"
    return f"{kind}-{desc.digest}"


ALL = Matcher(all_platforms=True)


def select(walker: Walker, target: Descriptor, platforms: Sequence[Platform], name: str) -> Selection:
    """What to push of ``target`` for ``platforms`` (see :class:`PushOptions`)."""
    if not platforms:
        return Selection(target, [target], ALL)
    matcher = Matcher(platforms)
    if len(platforms) == 1 or not mediatypes.is_index(target.media_type):
        chosen = walker.resolve(target, matcher, name)
        return Selection(chosen.descriptor, [chosen.descriptor], ALL)
    if not walker.exists(target.digest):
        raise ContentNotFound(target.digest, "index")
    raw: dict[str, Any] = dict(walker.read_json(target.digest))
    entries = walker.index(target)
    kept = [i for i, e in enumerate(entries) if e.platform is None or matcher.match(e.platform)]
    if not any(entries[i].platform is not None for i in kept):
        raise PlatformNotFound(f"image {name}", matcher.describe())
    raw["manifests"] = [raw["manifests"][i] for i in kept]
    data = json_bytes(raw)
    top = Descriptor(target.media_type, digest.of_bytes(data), len(data), dict(target.annotations))
    return Selection(top, [entries[i] for i in kept], matcher, data)


def plan(walker: Walker, selection: Selection, name: str, *, allow_non_distributable: bool) -> Plan:
    """Every object to push, parents first; a needed object that is absent raises."""
    out = Plan()
    seen: set[str] = set()
    if selection.data is not None:
        out.manifests.append(selection.top)
        seen.add(selection.top.digest)
    for root in selection.roots:
        for item in walker.content(root, selection.matcher):
            d = item.descriptor
            if d.digest in seen:
                continue
            seen.add(d.digest)
            nondist = d.media_type in mediatypes.NON_DISTRIBUTABLE
            if nondist and not allow_non_distributable:
                out.skipped.append(d)
                continue
            if not walker.exists(d.digest):
                if item.optional or nondist or d.urls:
                    out.skipped.append(d)
                    continue
                parent = item.parent
                if parent is not None and mediatypes.is_index(parent.media_type):
                    raise PlatformContentMissing(name, d.digest, str(d.platform or "an unnamed platform"),
                                                 all_platforms=False)
                raise ContentNotFound(d.digest, ref_key(d).split("-", 1)[0])
            if mediatypes.is_index(d.media_type) or mediatypes.is_manifest(d.media_type):
                out.manifests.append(d)
            else:
                out.blobs.append(d)
    return out


def mount_candidate(labels: dict[str, str], domain: str, repository: str) -> str | None:
    """The repository of the same registry to mount a blob from, as containerd picks it
    (``selectRepositoryMountCandidate``): of the repositories the
    ``distribution.source.<domain>`` label names, other than ``repository``, the one
    sharing the longest path prefix with it (the first one on a tie)."""
    value = labels.get(SOURCE_LABEL + domain, "")
    repos = [r.strip() for r in value.split(",") if r.strip() and r.strip() != repository]
    if not repos:
        return None

    def common(r: str) -> int:
        n = 0
        for a, b in zip(r.split("/"), repository.split("/"), strict=False):
            if a != b:
                break
            n += 1
        return n

    return max(repos, key=common)  # max keeps the first of equals


class _Counting:
    """A reader of a blob that reports the bytes read so far.  The blob is read and
    verified on a second thread, ahead of the upload (hashing 100 MiB costs a quarter of a
    second that the socket need not wait for); a corrupt blob fails the read at its end,
    before the upload is finished."""

    def __init__(self, f: VerifyingReader, report: Callable[[int], None]):
        self._f = f
        self._ahead: Prefetched | None = None  # started by the first read
        self._report = report
        self._done = 0

    def read(self, n: int = -1, /) -> bytes:
        if self._ahead is None:
            self._ahead = Prefetched(cast(BinaryIO, self._f), hashing=False)
        data = self._ahead.read(n)
        self._done += len(data)
        self._report(self._done)
        return data

    def close(self) -> None:
        if self._ahead is not None:
            self._ahead.close()
        self._f.close()


class Pusher:
    """Pushes one selection into one repository (see the module's docstring)."""

    def __init__(self, content: ContentStore, registry: Registry, options: PushOptions, progress: Sink):
        options.check()
        self.content = content
        self.registry = registry
        self.options = options
        self._progress = progress
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def _emit(self, desc: Descriptor, state: str, done: int = 0) -> None:
        with self._lock:
            self._progress(Transfer(ref_key(desc), desc.digest, state, done, desc.size))

    def push(self, selection: Selection, work: Plan, tag_or_digest: str) -> PushResult:
        status: dict[str, str] = {}
        for d in [*work.manifests, *work.blobs]:
            self._emit(d, "waiting")
        self._push_blobs(work.blobs, status)
        top = selection.top
        for d in reversed(work.manifests):  # children before parents, the top (the tag) last
            if d.digest == top.digest:
                continue
            status[d.digest] = self._push_manifest(d, self._manifest_bytes(d), None)
        status[top.digest] = self._push_manifest(top, selection.data or self._manifest_bytes(top), tag_or_digest)
        reg = self.registry
        where = f"{reg.name}@{tag_or_digest}" if tag_or_digest.startswith("sha256:") else f"{reg.name}:{tag_or_digest}"
        statuses = [(ref_key(d), status[d.digest]) for d in [*work.manifests, *work.blobs]]
        return PushResult(where, top, statuses)

    # -- blobs --------------------------------------------------------------------------
    def _push_blobs(self, blobs: list[Descriptor], status: dict[str, str]) -> None:
        if not blobs:
            return
        with ThreadPoolExecutor(max_workers=min(self.options.max_concurrent, len(blobs)),
                                thread_name_prefix="ctrpy-push") as pool:
            futures: dict[Future[str], Descriptor] = {pool.submit(self._push_blob, d): d for d in blobs}
            try:
                done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            except BaseException:  # interrupted: what has not started does not start
                self._stop.set()
                for f in futures:
                    f.cancel()
                raise
            failed = [f for f in done if f.exception() is not None]
            if failed:
                self._stop.set()  # what has not started yet does not start
                for f in futures:
                    f.cancel()
                wait(futures)
                first = next(f for f in futures if f.done() and not f.cancelled() and f.exception() is not None)
                exc = first.exception()
                assert exc is not None
                raise exc
            for f, d in futures.items():
                status[d.digest] = f.result()

    def _push_blob(self, d: Descriptor) -> str:
        if self._stop.is_set():
            return "cancelled"
        try:
            if self.registry.blob_exists(d):
                self._emit(d, "exists", d.size)
                return "exists"
            session = None
            source = mount_candidate(self.content.info(d.digest).labels, self.registry.reference.domain,
                                     self.registry.path)
            if source is not None:
                result = self.registry.mount_blob(d, source)
                if result.mounted:
                    self._emit(d, "mounted", d.size)
                    return "mounted"
                session = result.session
            self._emit(d, "uploading")
            self.registry.upload_blob(d, self._opener(d), self.options.chunk_size, session=session)
        except BaseException:
            self._emit(d, "failed")
            raise
        self._emit(d, "done", d.size)
        return "done"

    def _opener(self, d: Descriptor) -> Callable[[], _Counting]:
        def report(n: int) -> None:
            self._emit(d, "uploading", n)

        def open_blob() -> _Counting:
            return _Counting(self.content.open(d.digest), report)  # verified as it is read

        return open_blob

    # -- manifests ----------------------------------------------------------------------
    def _manifest_bytes(self, d: Descriptor) -> bytes:
        return self.content.read_all(d.digest)

    def _push_manifest(self, d: Descriptor, data: bytes, tag_or_digest: str | None) -> str:
        tag = tag_or_digest if tag_or_digest and not tag_or_digest.startswith("sha256:") else None
        try:
            if self.registry.manifest_exists(d, tag):
                self._emit(d, "exists", d.size)
                return "exists"
            self._emit(d, "uploading")
            self.registry.put_manifest(tag or d.digest, d.media_type, data)
        except BaseException:
            self._emit(d, "failed")
            raise
        self._emit(d, "done", d.size)
        return "done"


def destination(reference: str, top: Descriptor) -> str:
    """Where the top object goes in the repository: the reference's tag (``latest`` when it
    has neither tag nor digest), or its digest, which must be the top object's."""
    ref = parse_reference(reference)
    if ref.digest:
        if ref.digest != top.digest:
            raise InvalidArgument(f"{reference} names {ref.digest}, but what is pushed is {top.digest}")
        return ref.tag or ref.digest
    return ref.tag or "latest"
