"""Progress as plain data.  The library emits events; only ``ctrpy.cli`` renders them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class ArchiveRead:
    """Bytes of the input archive consumed so far (``total`` when the input is a file)."""

    done: int
    total: int | None


@dataclass(frozen=True)
class BlobStored:
    digest: str
    size: int
    path: str  # the member name in the archive
    new: bool  # False when the store already had these bytes


@dataclass(frozen=True)
class UnpackStarted:
    image: str
    digest: str
    layers: int
    platform: str = ""  # of the manifest unpacked ("" for an artifact)


@dataclass(frozen=True)
class LayerStarted:
    image: str
    index: int
    count: int
    digest: str
    size: int


@dataclass(frozen=True)
class LayerProgress:
    image: str
    index: int
    compressed_done: int
    entries: int
    bytes: int


@dataclass(frozen=True)
class LayerDone:
    image: str
    index: int
    chain_id: str
    skipped: bool  # the snapshot existed already


@dataclass(frozen=True)
class UnpackDone:
    image: str
    digest: str


@dataclass(frozen=True)
class BytesWritten:
    """Bytes of the output archive written so far (``total`` when known in advance)."""

    done: int
    total: int | None = None


FINISHED_STATES = frozenset({"done", "exists", "mounted"})


@dataclass(frozen=True)
class Transfer:
    """One blob moving to or from a registry (pull, push, content fetch).

    ``state`` is ctr's word for it: ``resolving``, ``waiting``, ``downloading`` or
    ``uploading``, ``exists`` (already there: nothing moved), ``mounted`` (a push: the
    registry took it from another of its repositories), ``done``, ``failed``.
    ``ref`` is what ctr shows in its first column (``manifest-sha256:...``,
    ``layer-sha256:...``, ``config-sha256:...``, ``index-sha256:...``)."""

    ref: str
    digest: str
    state: str
    done: int = 0
    total: int | None = None

    @property
    def finished(self) -> bool:
        """It has arrived (or was there already): nothing more will move."""
        return self.state in FINISHED_STATES


@dataclass(frozen=True)
class Warn:
    """Something skipped or worth knowing; ``topic`` lets a front end add its own hint
    (the CLI names its flags there: ``platform`` -> "use --platform or --all-platforms")."""

    message: str
    topic: str = ""


Event = (
    ArchiveRead | BlobStored | UnpackStarted | LayerStarted | LayerProgress | LayerDone
    | UnpackDone | BytesWritten | Transfer | Warn
)
Sink = Callable[[Event], None]


def null_sink(event: Event) -> None:
    """Drops every event."""
