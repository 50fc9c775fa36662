"""The Importer / Exporter protocols and the data they pass around."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO, ClassVar, Protocol, runtime_checkable

from ctrpy.content.blobs import BlobStore, BlobWriter
from ctrpy.content.store import parse_json
from ctrpy.errors import ContentNotFound, CtrpyError, MissingFromArchive, SizeMismatch
from ctrpy.images.walk import Walker
from ctrpy.metadata.leases import Held
from ctrpy.oci import Descriptor, Matcher, digest, mediatypes
from ctrpy.progress import Event, Sink, Warn, null_sink

DEFAULT_OCI_BASE = "unknown/unknown"


@dataclass
class ImportOptions:
    base_name: str | None = None  # ctr's --base-name/--oci-name; None when not given
    digests: bool = False
    skip_digest_for_named: bool = False
    index_name: str | None = None
    matcher: Matcher = field(default_factory=Matcher.default)
    compress_blobs: bool = False

    @property
    def oci_base(self) -> str:
        """The base name OCI entries with a bare tag or no name get (ctr's default)."""
        return self.base_name or DEFAULT_OCI_BASE


@dataclass
class ImportedImage:
    name: str
    target: Descriptor


@dataclass
class ImportResult:
    images: list[ImportedImage] = field(default_factory=list)
    blobs: dict[str, int] = field(default_factory=dict)  # every blob stored: digest -> size
    blob_labels: dict[str, dict[str, str]] = field(default_factory=dict)
    # stored from the archive, then replaced by a compressed copy: garbage once recorded
    replaced: list[str] = field(default_factory=list)


_KINDS = (
    (mediatypes.is_index, "index"), (mediatypes.is_manifest, "manifest"),
    (mediatypes.is_image_config, "config"), (mediatypes.is_layer, "layer"),
)


def content_kind(media_type: str) -> str:
    """What a blob is, in words, for messages."""
    return next((word for test, word in _KINDS if test(media_type)), "blob")


# (label key, value) -> digests of stored blobs carrying that label, in any namespace
LabelLookup = Callable[[str, str], list[str]]


class ImportContext:
    """What an importer may use: the raw blob store, options, a progress sink, and (when
    the caller has a metadata database) a lookup of blobs by content label."""

    def __init__(
        self,
        blobs: BlobStore,
        options: ImportOptions,
        progress: Sink = null_sink,
        find_labelled: LabelLookup | None = None,
        lease: Held | None = None,
    ):
        self.blobs = blobs
        self.options = options
        self.progress: Callable[[Event], None] = progress
        self.find_labelled = find_labelled
        self.lease = lease
        self._unknown_seen: set[str] = set()
        self._walker: Walker | None = None

    def writer(self, expected: str | None = None, expected_size: int | None = None) -> BlobWriter:
        """A blob writer held by the import's lease (when there is one)."""
        return self.blobs.writer(expected, expected_size, self.lease)

    def hold(self, dgst: str) -> None:
        """Hold a stored blob the import relies on without writing it (the archive lacks
        it), before looking at it: a collection running now keeps it."""
        if self.lease is not None:
            self.lease.content(dgst)

    def read_json(self, dgst: str) -> Any:
        """A blob from the store, verified and size-capped, parsed as JSON."""
        digest.validate(dgst)
        try:
            data = self.blobs.read_small(dgst, what=f"blob {dgst}")
        except ContentNotFound:
            raise MissingFromArchive(dgst) from None
        return parse_json(data, f"blob {dgst}")

    def exists(self, dgst: str) -> bool:
        return self.blobs.exists(dgst)

    def walker(self) -> Walker:
        """The walk over what this import stored (one, so each document is read once);
        index entries of unknown media types are reported once each, as warnings (they are
        skipped, never an error)."""
        if self._walker is None:
            self._walker = Walker(self.read_json, self.exists, self._unknown)
        return self._walker

    def _unknown(self, desc: Descriptor, where: str) -> None:
        if desc.digest in self._unknown_seen:
            return
        self._unknown_seen.add(desc.digest)
        self.progress(Warn(f"{where}: skipping {desc.digest}: unknown media type {desc.media_type!r}"))


def check_complete(ctx: ImportContext, image: ImportedImage, sizes: dict[str, int]) -> None:
    """Raise unless every blob ``image`` needs for the selected platforms is in the store
    with the announced size (the one walk: index entries of unknown media types are
    optional, non-distributable and foreign layers may be absent).

    A needed blob the archive did not carry but the store already holds (verified when it
    was written, perhaps by another namespace) is added to ``sizes``, so the import makes
    it visible in this namespace too.
    """
    try:
        for item in ctx.walker().content(image.target, ctx.options.matcher):
            d = item.descriptor
            ctx.hold(d.digest)
            if not ctx.exists(d.digest):
                if item.optional or d.media_type in mediatypes.NON_DISTRIBUTABLE or d.urls:
                    continue
                raise MissingFromArchive(d.digest, content_kind(d.media_type))
            size = sizes.get(d.digest)
            if size is None:
                size = sizes[d.digest] = ctx.blobs.size(d.digest)
            if size != d.size:
                raise SizeMismatch(d.size, size, f"blob {d.digest}")
    except CtrpyError as e:
        raise e.within(f"image {image.name}") from None


@dataclass
class ExportTarget:
    """One image to export: its descriptor and the name to record for it (if any)."""

    descriptor: Descriptor
    name: str | None = None
    ref_name: str | None = None  # overrides the ref.name annotation


@dataclass
class ExportOptions:
    matcher: Matcher | None = None  # the platforms asked for; None: the host's (see selected)
    all_platforms: bool = False
    skip_manifest_json: bool = False
    skip_non_distributable: bool = False

    def selected(self) -> Matcher:
        """The platforms exported.  Without a matcher, the host's -- except that an image
        that is one lone manifest is exported whatever its platform (there is nothing else
        it could mean); with one, a lone manifest must match it too."""
        if self.all_platforms:
            return Matcher(all_platforms=True)
        return self.matcher or Matcher.default()


class ExportSource(Protocol):
    """Where an exporter reads content from (the namespaced content store)."""

    def read_json(self, dgst: str) -> Any: ...

    def open(self, dgst: str) -> Any: ...

    def exists(self, dgst: str) -> bool: ...


@runtime_checkable
class Importer(Protocol):
    name: ClassVar[str]

    def import_stream(self, stream: BinaryIO, ctx: ImportContext) -> ImportResult: ...


@runtime_checkable
class Exporter(Protocol):
    name: ClassVar[str]

    def export(self, source: ExportSource, targets: list[ExportTarget], out: BinaryIO,
               options: ExportOptions, progress: Sink = null_sink) -> None: ...
