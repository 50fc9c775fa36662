"""The Importer / Exporter protocols and the data they pass around."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO, ClassVar, Protocol, runtime_checkable

from ctrpy.content.blobs import BlobStore
from ctrpy.content.store import parse_json
from ctrpy.errors import InvalidArchive, NotFound
from ctrpy.oci import Descriptor, Matcher, digest
from ctrpy.progress import Event, Sink, null_sink


@dataclass
class ImportOptions:
    base_name: str = "unknown/unknown"
    base_name_given: bool = False
    digests: bool = False
    skip_digest_for_named: bool = False
    index_name: str | None = None
    matcher: Matcher = field(default_factory=Matcher.default)
    compress_blobs: bool = False


@dataclass
class ImportedImage:
    name: str
    target: Descriptor


@dataclass
class ImportResult:
    images: list[ImportedImage] = field(default_factory=list)
    blobs: dict[str, int] = field(default_factory=dict)  # every blob stored: digest -> size
    blob_labels: dict[str, dict[str, str]] = field(default_factory=dict)


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
    ):
        self.blobs = blobs
        self.options = options
        self.progress: Callable[[Event], None] = progress
        self.find_labelled = find_labelled

    def read_json(self, dgst: str) -> Any:
        """A blob from the store, verified and size-capped, parsed as JSON."""
        digest.validate(dgst)
        try:
            data = self.blobs.read_small(dgst, what=f"blob {dgst}")
        except NotFound:
            raise InvalidArchive(f"archive is missing blob {dgst}") from None
        return parse_json(data, f"blob {dgst}")


@dataclass
class ExportTarget:
    """One image to export: its descriptor and the name to record for it (if any)."""

    descriptor: Descriptor
    name: str | None = None
    ref_name: str | None = None  # overrides the ref.name annotation


@dataclass
class ExportOptions:
    matcher: Matcher = field(default_factory=Matcher.default)
    all_platforms: bool = False
    skip_manifest_json: bool = False
    skip_non_distributable: bool = False


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

    def export(
        self,
        source: ExportSource,
        targets: list[ExportTarget],
        out: BinaryIO,
        options: ExportOptions,
        progress: Sink = null_sink,
    ) -> None: ...
