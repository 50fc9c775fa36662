"""Pull: a registry's image into the store, resumable, in parallel, unpacked on the way.

:func:`pull_image` does everything but the record (``Client.pull`` writes that, in the one
transaction import uses):

1. resolve the reference (:meth:`ctrpy.remote.Registry.resolve`);
2. walk the image from it, fetching each index, manifest and config as it is reached
   (verified, stored under the pull's lease): an index's entries for the selected platforms
   (all of them with ``all_metadata``: their manifests and configs, never their layers);
3. download the layers the selected platforms need, ``max_concurrent_downloads`` at a time,
   largest first; a blob the store holds is not downloaded again; each download streams
   into a :class:`~ctrpy.content.ingest.ResumableWriter` (hashed while written, a dead
   pull's partial file resumed with ``Range``, a mismatch deletes it);
4. meanwhile unpack: layer *i* is applied as soon as it is stored (the unpacker waits for
   each layer in turn while later ones still download);
5. hand back the blobs and the labels to record: containerd's gc reference labels,
   ``containerd.io/distribution.source.<host>=<repo>`` on everything pulled, the
   unpacker's labels.

Any failure stops the other downloads, removes the snapshots this pull made, and records
nothing; partial downloads stay (named after the pull's lease) for a rerun to resume.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from ctrpy.content import BlobStore, ContentStore, RawContent
from ctrpy.content.ingest import Cancelled, ResumableWriter
from ctrpy.errors import ContentNotFound, DigestMismatch, InvalidArgument, SizeMismatch
from ctrpy.images import Image
from ctrpy.images.walk import Walker, walk
from ctrpy.metadata.labels import validate as validate_labels
from ctrpy.metadata.leases import Held
from ctrpy.oci import Descriptor, Matcher, Platform, mediatypes
from ctrpy.oci.reference import parse as parse_reference
from ctrpy.progress import Sink, Transfer, null_sink
from ctrpy.remote import Registry, RemoteOptions
from ctrpy.snapshots import Snapshotter
from ctrpy.unpack import Unpacker

LABEL_SOURCE = "containerd.io/distribution.source."
PROGRESS_STEP = 1 << 20  # a Transfer event at most every MiB of a download


@dataclass(frozen=True)
class PullOptions:
    """What ``images pull`` / ``content fetch`` ask for.

    ``matcher``: the platforms (default: this host's).  ``all_metadata``: also every other
    platform's manifests and configs (no layers).  ``metadata_only``: every manifest and
    config, no layer at all (``content fetch --metadata-only``; implies no unpack).
    ``labels`` go on the image record."""

    matcher: Matcher = field(default_factory=Matcher.default)
    all_metadata: bool = False
    metadata_only: bool = False
    unpack: bool = True
    snapshotter: str | None = None
    max_concurrent_downloads: int = 3
    labels: Mapping[str, str] = field(default_factory=dict)

    def check(self) -> None:
        if self.max_concurrent_downloads < 1:
            raise InvalidArgument("the number of concurrent downloads must be at least 1")
        validate_labels({k: v for k, v in self.labels.items() if v})


@dataclass
class Pulled:
    """What a pull stored and made, for ``Client.pull`` to record (or roll back)."""

    name: str
    target: Descriptor
    blobs: dict[str, int]
    labels: dict[str, dict[str, str]]
    unpacked: list[tuple[Platform, str]]  # (platform, top chainID) per unpack
    downloaded: int = 0  # bytes that came over the network
    resumed: int = 0  # bytes of partial downloads taken over
    unpacker: Unpacker | None = None

    def rollback(self) -> None:
        if self.unpacker is not None:
            self.unpacker.rollback()


@dataclass
class PullResult:
    """The image a pull recorded, what it unpacked (platform, top chainID), and the bytes
    that came over the network and those taken over from earlier partial downloads."""

    image: Image
    unpacked: list[tuple[Platform, str]]
    downloaded: int = 0
    resumed: int = 0


def _kind(desc: Descriptor) -> str:
    """ctr's first column: ``index-``, ``manifest-``, ``config-``, ``layer-`` + digest."""
    mt = desc.media_type
    if mediatypes.is_index(mt):
        return "index"
    if mediatypes.is_manifest(mt):
        return "manifest"
    if mediatypes.is_layer(mt):
        return "layer"
    if mediatypes.is_image_config(mt):
        return "config"
    return "blob"


class _Downloads:
    """Blob downloads into the store under one lease; thread-safe; stops on the first failure."""

    def __init__(self, registry: Registry, blobs: BlobStore, lease: Held, progress: Sink):
        self.registry = registry
        self.blobs = blobs
        self.lease = lease
        self.progress = progress
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self.downloaded = 0
        self.resumed = 0
        self.failure: BaseException | None = None  # the first download that failed

    def result(self, fut: Future[None]) -> None:
        """A download's outcome; one stopped because another failed raises that failure."""
        try:
            fut.result()
        except Cancelled:
            if self.failure is not None:
                raise self.failure from None
            raise

    def _failed(self, e: BaseException) -> None:
        with self._lock:
            if self.failure is None and not isinstance(e, Cancelled):
                self.failure = e
        self.stop.set()

    def present(self, desc: Descriptor) -> bool:
        self.lease.content(desc.digest)  # held before we look: a collection now keeps it
        try:
            return self.blobs.size(desc.digest) == desc.size
        except ContentNotFound:
            return False

    def document(self, desc: Descriptor) -> None:
        """An index or manifest: read whole (capped, verified), then stored."""
        ref = f"{_kind(desc)}-{desc.digest}"
        if self.present(desc):
            self.progress(Transfer(ref, desc.digest, "exists", desc.size, desc.size))
            return
        self.progress(Transfer(ref, desc.digest, "downloading", 0, desc.size))
        data = self.registry.fetch_manifest(desc)
        with self.blobs.writer(desc.digest, desc.size, self.lease) as w:
            w.write(data)
            w.commit()
        self._count(len(data), 0)
        self.progress(Transfer(ref, desc.digest, "done", desc.size, desc.size))

    def blob(self, desc: Descriptor) -> None:
        """Any other blob: streamed into a resumable partial write, then committed."""
        ref = f"{_kind(desc)}-{desc.digest}"
        if self.stop.is_set():
            raise Cancelled(desc.digest)
        if self.present(desc):
            self.progress(Transfer(ref, desc.digest, "exists", desc.size, desc.size))
            return
        writer = ResumableWriter(self.blobs, desc.digest, desc.size, self.lease, self.stop.is_set)
        start = writer.offset
        last = [start]

        def on_progress(n: int) -> None:
            if n - last[0] >= PROGRESS_STEP or n < last[0] or n == desc.size:
                last[0] = n
                self.progress(Transfer(ref, desc.digest, "downloading", n, desc.size))

        self.progress(Transfer(ref, desc.digest, "downloading", start, desc.size))
        try:
            self.registry.fetch_blob(desc, writer, on_progress, use_urls=desc.media_type in mediatypes.NON_DISTRIBUTABLE)
            writer.commit()
        except (DigestMismatch, SizeMismatch) as e:
            writer.discard()  # those bytes can never become this blob
            self.progress(Transfer(ref, desc.digest, "failed", writer.offset, desc.size))
            self._failed(e)
            raise
        except BaseException as e:
            writer.close()  # kept, named after our lease: a rerun resumes it
            self.progress(Transfer(ref, desc.digest, "failed", writer.offset, desc.size))
            self._failed(e)
            raise
        self._count(desc.size - start, writer.adopted)
        self.progress(Transfer(ref, desc.digest, "done", desc.size, desc.size))

    def _count(self, downloaded: int, resumed: int) -> None:
        with self._lock:
            self.downloaded += downloaded
            self.resumed += resumed


class _Graph:
    """The walk over the remote image: documents fetched as they are reached."""

    def __init__(self, downloads: _Downloads, options: PullOptions):
        self.downloads = downloads
        self.options = options
        content = RawContent(downloads.blobs)
        self.walker = Walker(content.read_json, content.exists)
        self.documents: list[Descriptor] = []  # indexes and manifests, parents first
        self.blobs: dict[str, int] = {}  # everything the image record will hold
        self.layers: list[Descriptor] = []  # to download, in manifest order
        self._layers_wanted: dict[str, bool] = {}  # manifest digest -> its platform was selected

    def run(self, target: Descriptor) -> None:
        walk([target], self._visit)

    def _visit(self, desc: Descriptor) -> list[Descriptor]:
        mt = desc.media_type
        opts = self.options
        if mediatypes.is_index(mt):
            self._document(desc)
            kids: list[Descriptor] = []
            for k in self.walker.index(desc):
                if not mediatypes.is_known(k.media_type):
                    continue  # an unknown entry is optional: left on the registry
                selected = k.platform is None or opts.matcher.match(k.platform)
                if selected or opts.all_metadata or opts.metadata_only:
                    kids.append(k)
                    self._layers_wanted[k.digest] = self._layers_wanted.get(k.digest, False) or selected
            return kids
        if mediatypes.is_manifest(mt):
            self._document(desc)
            m = self.walker.manifest(desc)
            if not opts.metadata_only and self._layers_wanted.get(desc.digest, True):
                for layer in m.layers:
                    if layer.digest not in self.blobs:
                        self.blobs[layer.digest] = layer.size
                        self.layers.append(layer)
            return [m.config]
        self.downloads.blob(desc)  # a config (or an artifact's): needed before the layers
        self.blobs[desc.digest] = desc.size
        return []

    def _document(self, desc: Descriptor) -> None:
        self.downloads.document(desc)
        self.documents.append(desc)
        self.blobs[desc.digest] = desc.size


def _platforms_to_unpack(walker: Walker, target: Descriptor, matcher: Matcher) -> list[Matcher]:
    """One unpack per platform, as ctr does: every platform of the image with
    ``all_platforms``, else each one asked for (an image of one manifest: that one)."""
    if not mediatypes.is_index(target.media_type):
        return [matcher]
    if matcher.all:
        found = sorted({str(p.normalized()): p for p in walker.platforms(target)}.items())
        return [Matcher([p]) for _, p in found] or [matcher]
    return [Matcher([p]) for p in matcher.platforms]


def _source_labels(content: ContentStore, blobs: dict[str, int], host: str, repo: str) -> dict[str, dict[str, str]]:
    """containerd's distribution source label on each blob, the repository added to those
    it already names (comma separated, sorted)."""
    key = LABEL_SOURCE + host
    out: dict[str, dict[str, str]] = {}
    for dgst in blobs:
        try:
            have = content.info(dgst).labels.get(key, "")
        except ContentNotFound:
            have = ""
        repos = sorted({r for r in have.split(",") if r} | {repo})
        out[dgst] = {key: ",".join(repos)}
    return out


def pull_image(
    ref: str,
    remote: RemoteOptions | None,
    options: PullOptions,
    blobs: BlobStore,
    content: ContentStore,
    lease: Held,
    snapshotter: Snapshotter | None,
    progress: Sink = null_sink,
    registry_factory: Callable[[str, RemoteOptions | None], Registry] = Registry.for_reference,
) -> Pulled:
    """Fetch (and, given a snapshotter, unpack) ``ref``; see the module's docstring."""
    options.check()
    reference = parse_reference(ref)
    name = str(reference)
    with registry_factory(name, remote) as registry:
        progress(Transfer(name, "", "resolving"))
        target = registry.resolve()
        progress(Transfer(name, target.digest, "done", target.size, target.size))
        downloads = _Downloads(registry, blobs, lease, progress)
        graph = _Graph(downloads, options)
        graph.run(target)
        pulled = Pulled(name, target, graph.blobs, {}, [])
        try:
            _download_and_unpack(graph, downloads, target, name, options, snapshotter, progress, pulled)
            pulled.downloaded, pulled.resumed = downloads.downloaded, downloads.resumed
            for doc in graph.documents:
                pulled.labels.setdefault(doc.digest, {}).update(graph.walker.reference_labels(doc))
            for dgst, extra in _source_labels(content, graph.blobs, reference.domain, reference.path).items():
                pulled.labels.setdefault(dgst, {}).update(extra)
            if pulled.unpacker is not None:
                for dgst, extra in pulled.unpacker.labels.items():
                    pulled.labels.setdefault(dgst, {}).update(extra)
        except BaseException:
            downloads.stop.set()
            pulled.rollback()
            raise
    return pulled


def _download_and_unpack(
    graph: _Graph,
    downloads: _Downloads,
    target: Descriptor,
    name: str,
    options: PullOptions,
    snapshotter: Snapshotter | None,
    progress: Sink,
    pulled: Pulled,
) -> None:
    layers = sorted(graph.layers, key=lambda d: -d.size)  # largest first: they take longest
    for layer in layers:
        progress(Transfer(f"layer-{layer.digest}", layer.digest, "waiting", 0, layer.size))
    pool = ThreadPoolExecutor(max_workers=options.max_concurrent_downloads, thread_name_prefix="pull")
    futures: dict[str, Future[None]] = {}
    try:
        for layer in layers:
            futures[layer.digest] = pool.submit(downloads.blob, layer)

        def ready(layer: Descriptor) -> None:
            """The unpacker's wait: until this layer is stored (its failure is raised here)."""
            fut = futures.get(layer.digest)
            if fut is not None:
                downloads.result(fut)

        if options.unpack and snapshotter is not None and not options.metadata_only:
            unpacker = Unpacker(RawContent(downloads.blobs), snapshotter, progress, downloads.lease, wait=ready)
            pulled.unpacker = unpacker
            for matcher in _platforms_to_unpack(graph.walker, target, options.matcher):
                top = unpacker.unpack(name, target, matcher)
                selected = graph.walker.resolve(target, matcher, name)
                platform = selected.config.platform if selected.config is not None else Platform("", "")
                pulled.unpacked.append((platform, top))
        for layer in layers:
            downloads.result(futures[layer.digest])
    except BaseException:
        downloads.stop.set()
        for fut in futures.values():
            fut.cancel()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
