"""Layers -> snapshot chain, and layers -> a plain directory (extract).

For each layer: skip it when its chainID snapshot is committed, else decompress (by magic
bytes), apply into a fresh active snapshot while hashing the uncompressed stream, check
the diffID, and commit.  Anything that fails removes the active snapshot, so a later
unpack never trusts half a layer.  The compressed blob is verified too (read to EOF
through the content store's verifying reader).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from ctrpy.archive.apply import ApplyOptions, ApplyResult, apply_layer
from ctrpy.archive.compression import open_decompressed
from ctrpy.archive.pipeline import Prefetched
from ctrpy.errors import AlreadyExists, CtrpyError, DigestMismatch, UnpackError, UnsupportedFormat
from ctrpy.images.walk import Config, Manifest, Walker
from ctrpy.metadata.leases import Held
from ctrpy.oci import Descriptor, Matcher, digest, mediatypes
from ctrpy.progress import (
    LayerDone,
    LayerProgress,
    LayerStarted,
    Sink,
    UnpackDone,
    UnpackStarted,
    Warn,
    null_sink,
)
from ctrpy.snapshots import Snapshotter
from ctrpy.streams import CHUNK

LABEL_SNAPSHOT_IMAGE = "ctrpy.io/unpacked-from"
REF_SNAPSHOT_LABEL = "containerd.io/gc.ref.snapshot."


class ContentReader(Protocol):
    """What unpacking reads: verified blob streams and JSON (a ContentStore or RawContent)."""

    def open(self, dgst: str) -> Any: ...

    def read_json(self, dgst: str) -> Any: ...

    def exists(self, dgst: str) -> bool: ...


@dataclass
class ImageLayers:
    manifest: Manifest
    config: Config
    layers: list[Descriptor]
    diff_ids: list[str]
    chain_ids: list[str]


def image_layers(walker: Walker, target: Descriptor, matcher: Matcher, name: str | None = None) -> ImageLayers | None:
    """The layers of the image's manifest for the platform; None for an artifact (a
    manifest whose config is not an image config: nothing to unpack)."""
    selected = walker.resolve(target, matcher, name)
    if selected.config is None:
        return None
    config = selected.config
    layers = [d for d in selected.manifest.layers if mediatypes.is_layer(d.media_type)]
    if len(layers) != len(config.diff_ids):
        error = UnpackError(
            f"mismatched image rootfs and manifest layers: the manifest lists {len(layers)} layers, "
            f"its config {len(config.diff_ids)} diff_ids"
        )
        raise error.within(f"image {name}") if name else error
    return ImageLayers(selected.manifest, config, layers, config.diff_ids, digest.chain_ids(config.diff_ids))


def walker_of(content: ContentReader) -> Walker:
    return Walker(content.read_json, content.exists)


class _Counting:
    """Counts the compressed bytes read, for progress."""

    def __init__(self, f: Any):
        self.f = f
        self.n = 0

    def read(self, n: int = -1) -> bytes:
        data: bytes = self.f.read(n)
        self.n += len(data)
        return data


def apply_blob(
    content: ContentReader,
    layer: Descriptor,
    target_dir: Path,
    options: ApplyOptions,
    progress: Callable[[int, int, int], None] | None = None,
) -> ApplyResult:
    """Decompress and apply one stored layer blob into ``target_dir``; verify the blob.

    ``progress(compressed_bytes, entries, uncompressed_bytes)`` is called per entry."""
    with content.open(layer.digest) as raw:
        counted = _Counting(raw)
        if progress is not None:
            report = progress
            options.on_progress = lambda entries, size: report(counted.n, entries, size)
        _comp, stream = open_decompressed(counted, buffered=False)  # type: ignore[arg-type]

        def verify() -> None:  # the compressed digest, to the last byte (on the reading thread)
            while raw.read(CHUNK):
                pass

        # decompression and both digests on a second thread, entries on this one
        with Prefetched(stream, finish=verify) as tar_stream:
            result = apply_layer(target_dir, tar_stream, options)
    return result


class SkippedDevices:
    """The device nodes the layers of one image could not create (without root), said
    in one warning per reason after the image instead of one per node."""

    SHOWN = 5  # names listed before "and N more"

    def __init__(self, name: str) -> None:
        self.name = name
        self.entries: dict[str, list[str]] = {}  # why -> entry names (appends are thread-safe)

    def add(self, entry: str, why: str) -> None:
        self.entries.setdefault(why, []).append(entry)

    def report(self, progress: Sink) -> None:
        for why, entries in sorted(self.entries.items()):
            names = sorted(set(entries))
            shown = ", ".join(names[: self.SHOWN]) + (f" and {len(names) - self.SHOWN} more"
                                                       if len(names) > self.SHOWN else "")
            count = f"{len(names)} device node{'s' if len(names) != 1 else ''}"
            progress(Warn(f"{self.name}: {count} not created ({why}): {shown}"))


def apply_checked(
    content: ContentReader,
    name: str,
    info: ImageLayers,
    index: int,
    target_dir: Path,
    whiteouts: Literal["delete", "overlay"],
    progress: Sink,
    devices: SkippedDevices | None = None,
) -> None:
    """Apply layer ``index`` of an image into ``target_dir`` and check its diffID; every
    failure names the layer and the image (and keeps its class: a layer whose bytes do
    not match its diffID is a DigestMismatch)."""
    layer, diff_id = info.layers[index], info.diff_ids[index]

    def on_progress(compressed: int, entries: int, size: int) -> None:
        progress(LayerProgress(name, index, compressed, entries, size))

    opts = ApplyOptions(
        whiteouts=whiteouts,
        same_owner=os.geteuid() == 0,
        on_warning=lambda message: progress(Warn(message)),
        on_skipped_device=devices.add if devices is not None else None,
    )
    where = f"layer {index} ({layer.digest}) of {name}"
    try:
        result = apply_blob(content, layer, target_dir, opts, on_progress)
    except CtrpyError as e:
        raise e.within(where) from None
    if result.diff_id != diff_id:
        raise DigestMismatch(
            diff_id, result.diff_id,
            text=f"the uncompressed layer has digest {result.diff_id}, but the config says diffID {diff_id}",
        ).within(where)


class Unpacker:
    def __init__(
        self,
        content: ContentReader,
        snapshotter: Snapshotter,
        progress: Sink = null_sink,
        lease: Held | None = None,
        wait: Callable[[Descriptor], None] | None = None,
    ):
        self.content = content
        self.wait = wait  # called before a layer is read: a pull blocks there until it is stored
        self.sn = snapshotter
        self.progress = progress
        self.lease = lease  # holds the snapshots made, until an image record does
        # what unpacking teaches the content store, as ctr labels it: a layer's
        # containerd.io/uncompressed diffID, a config's gc.ref.snapshot.<snapshotter> top
        self.labels: dict[str, dict[str, str]] = {}
        self.workers = min(2, os.cpu_count() or 1)
        self.committed: list[str] = []  # snapshots this unpacker created, in order
        self.devices = SkippedDevices("")  # of the image being unpacked

    def rollback(self) -> None:
        """Remove the snapshots this unpacker committed (newest first): the import that
        asked for them failed, and a failed import changes nothing."""
        for chain_id in reversed(self.committed):
            try:
                self.sn.remove(chain_id)
            except CtrpyError:
                pass
        self.committed = []

    def unpack(self, name: str, target: Descriptor, matcher: Matcher) -> str:
        """Unpack ``target`` for the platform; returns the top chainID.

        Snapshotters whose layers are independent directories (overlayfs) get their
        missing layers applied side by side on ``workers`` threads; the commits still
        happen bottom-up, each onto its committed parent.
        """
        info = image_layers(walker_of(self.content), target, matcher, name)
        if info is None:  # an artifact: recorded, never unpacked
            self.progress(UnpackStarted(name, target.digest, 0))
            self.progress(UnpackDone(name, target.digest))
            return ""
        count = len(info.layers)
        self.devices = SkippedDevices(name)
        self.progress(UnpackStarted(name, target.digest, count, str(info.config.platform.normalized())))
        if self.lease is not None:  # the layers already unpacked are held before we look
            self.lease.snapshots(self.sn.name, info.chain_ids)
        todo = [i for i, cid in enumerate(info.chain_ids) if not self.sn.exists(cid)]
        for i in todo:
            self.sn.forget_broken(info.chain_ids[i])
        for i, layer in enumerate(info.layers):
            if layer.digest != info.diff_ids[i]:
                self.labels.setdefault(layer.digest, {})[mediatypes.LABEL_UNCOMPRESSED] = info.diff_ids[i]
        if info.chain_ids:
            self.labels.setdefault(info.manifest.config.digest, {})[
                f"{REF_SNAPSHOT_LABEL}{self.sn.name}"] = info.chain_ids[-1]
        if self.sn.independent_layers and len(todo) > 1 and self.workers > 1:
            self._unpack_parallel(name, info, todo)
        else:
            parent = ""
            for i, (layer, cid) in enumerate(zip(info.layers, info.chain_ids, strict=True)):
                self.progress(LayerStarted(name, i, count, layer.digest, layer.size))
                if i in todo:
                    key = self._prepare(cid, parent)
                    try:
                        self._apply_into(name, i, info, self.sn.fs_path(self.sn.stat(key)))
                    except BaseException:
                        self._discard(key)
                        raise
                    self._commit(name, cid, key, parent)
                self.progress(LayerDone(name, i, cid, i not in todo))
                parent = cid
        self.progress(UnpackDone(name, target.digest))
        self.devices.report(self.progress)
        return info.chain_ids[-1] if info.chain_ids else ""

    def _unpack_parallel(self, name: str, info: ImageLayers, todo: list[int]) -> None:
        keys: dict[int, str] = {}
        try:
            for i in todo:
                keys[i] = self._prepare(info.chain_ids[i], "")
            paths = {i: self.sn.fs_path(self.sn.stat(k)) for i, k in keys.items()}
            with ThreadPoolExecutor(max_workers=self.workers) as pool:
                futures = {}
                for i in todo:
                    layer = info.layers[i]
                    self.progress(LayerStarted(name, i, len(info.layers), layer.digest, layer.size))
                    futures[i] = pool.submit(self._apply_into, name, i, info, paths[i])
                for i in todo:  # first failure in layer order wins
                    futures[i].result()
            parent = ""
            for i, cid in enumerate(info.chain_ids):
                if i in keys:
                    self._commit(name, cid, keys.pop(i), parent)
                self.progress(LayerDone(name, i, cid, i not in todo))
                parent = cid
        finally:
            for key in keys.values():
                self._discard(key)

    def _prepare(self, chain_id: str, parent: str) -> str:
        key = f"extract-{secrets.token_hex(6)}-{chain_id}"
        self.sn.prepare(key, parent, lease=self.lease)
        return key

    def _discard(self, key: str) -> None:
        try:
            self.sn.remove(key)
        except CtrpyError:
            pass

    def _apply_into(self, name: str, index: int, info: ImageLayers, fs: Path) -> None:
        """Apply layer ``index`` into an active snapshot's directory (no database use:
        this runs on worker threads)."""
        if self.wait is not None:
            self.wait(info.layers[index])
        apply_checked(self.content, name, info, index, fs, self.sn.whiteouts, self.progress, self.devices)

    def _commit(self, name: str, chain_id: str, key: str, parent: str) -> None:
        try:
            self.sn.commit(chain_id, key, {LABEL_SNAPSHOT_IMAGE: name}, parent=parent)
            self.committed.append(chain_id)
        except AlreadyExists:
            self._discard(key)  # someone else committed the same layer meanwhile
        except BaseException:
            self._discard(key)
            raise

    def is_unpacked(self, target: Descriptor, matcher: Matcher) -> bool:
        """Is the image's top snapshot committed?  (An artifact never is.)"""
        try:
            info = image_layers(walker_of(self.content), target, matcher)
        except CtrpyError:
            return False
        return info is not None and (not info.chain_ids or self.sn.exists(info.chain_ids[-1]))


def require_layers(content: ContentReader, name: str, target: Descriptor, matcher: Matcher) -> ImageLayers:
    """The image's layers; an artifact is an error (it has no root filesystem)."""
    info = image_layers(walker_of(content), target, matcher, name)
    if info is None:
        raise UnsupportedFormat(f"{name} is an artifact, not an image: it has no root filesystem")
    return info


def extract(
    content: ContentReader,
    name: str,
    target: Descriptor,
    matcher: Matcher,
    dest: Path,
    progress: Sink = null_sink,
) -> ImageLayers:
    """Apply every layer of the image, in order, straight into ``dest`` (umoci raw unpack)."""
    info = require_layers(content, name, target, matcher)
    dest.mkdir(parents=True, exist_ok=True)
    devices = SkippedDevices(name)
    progress(UnpackStarted(name, target.digest, len(info.layers)))
    for i, layer in enumerate(info.layers):
        progress(LayerStarted(name, i, len(info.layers), layer.digest, layer.size))
        apply_checked(content, name, info, i, dest, "delete", progress, devices)
        progress(LayerDone(name, i, "", False))
    progress(UnpackDone(name, target.digest))
    devices.report(progress)
    return info
