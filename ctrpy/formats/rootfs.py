"""``images import --rootfs NAME IN``: a one-layer image from a plain root filesystem tar,
as ``docker import`` makes one.

The tar (uncompressed, gzip or zstd: sniffed) is read once.  One thread reads it through
the strict tar reader (a stream that is not a tar fails here, naming the offset) while the
other gzips the same bytes into the layer blob; the diffID is the tar's own digest, so
the layer unpacks to exactly the entries of IN.  The image is an OCI manifest with that
one gzip layer and an image config for the selected platform (the host's by default).
Nothing in it depends on the time or the machine: the same tar always gives the same
digests.
"""

from __future__ import annotations

from typing import Any, BinaryIO, cast

from ctrpy.archive.compression import Compression, open_decompressed
from ctrpy.archive.tar import iter_tar
from ctrpy.errors import CtrpyError, InvalidArchive
from ctrpy.formats.base import ImportContext, ImportedImage, ImportResult
from ctrpy.layers import LayerBlob, Producer, Writable, write_layer
from ctrpy.oci import Descriptor, Platform, digest, mediatypes
from ctrpy.progress import BlobStored
from ctrpy.streams import CHUNK, TapReader, json_bytes

__all__ = ["import_rootfs_tar", "rootfs_config"]


def _checked_copy(stream: BinaryIO) -> Producer:
    """A producer for :func:`ctrpy.layers.write_layer`: the decompressed bytes of
    ``stream``, each read by the tar reader on its way (so IN must be a whole tar)."""

    def produce(out: Writable) -> None:
        _kind, raw = open_decompressed(stream)
        tee = TapReader(raw, out.write)
        entries = 0
        for _entry in iter_tar(cast(BinaryIO, tee)):  # the reader skips data by reading it
            entries += 1
        while tee.read(CHUNK):  # padding after the end-of-archive blocks is the layer's too
            pass
        if tee.size == 0:
            raise InvalidArchive("the root filesystem tar is empty")
        if entries == 0:
            raise InvalidArchive("the root filesystem tar has no entries")

    return produce


def rootfs_config(platform: Platform, diff_id: str) -> dict[str, Any]:
    """The image config of a one-layer image made from a root filesystem."""
    p = platform.normalized()
    config: dict[str, Any] = {"architecture": p.architecture, "os": p.os}
    if p.variant:
        config["variant"] = p.variant
    config["config"] = {}
    config["rootfs"] = {"type": "layers", "diff_ids": [diff_id]}
    config["history"] = [{"created_by": "ctrpy images import --rootfs", "comment": "a root filesystem tar"}]
    return config


def _store(ctx: ImportContext, data: bytes, media_type: str, what: str) -> Descriptor:
    dgst = digest.of_bytes(data)
    with ctx.writer(dgst, len(data)) as w:
        w.write(data)
        dgst, size = w.commit()
    ctx.progress(BlobStored(dgst, size, what, new=not w.existed))
    return Descriptor(media_type, dgst, size)


def import_rootfs_tar(stream: BinaryIO, name: str, ctx: ImportContext) -> ImportResult:
    """The import of a one-layer image ``name`` from the root filesystem tar ``stream``;
    its platform is the first the options select."""
    (platform,) = ctx.options.matcher.platforms[:1] or [Platform.host()]
    try:
        layer: LayerBlob = write_layer(ctx.blobs, _checked_copy(stream), Compression.GZIP, lease=ctx.lease)
    except CtrpyError as e:
        raise e.within("the root filesystem tar") from None
    ctx.progress(BlobStored(layer.digest, layer.size, "layer", new=layer.new))
    layer_desc = Descriptor(layer.media_type(), layer.digest, layer.size)
    config = _store(ctx, json_bytes(rootfs_config(platform, layer.diff_id)), mediatypes.OCI_CONFIG, "config")
    manifest = {
        "schemaVersion": 2,
        "mediaType": mediatypes.OCI_MANIFEST,
        "config": config.to_json(),
        "layers": [layer_desc.to_json()],
    }
    target = _store(ctx, json_bytes(manifest), mediatypes.OCI_MANIFEST, "manifest")
    result = ImportResult(images=[ImportedImage(name, target)])
    for d in (layer_desc, config, target):
        result.blobs[d.digest] = d.size
    result.blob_labels[layer.digest] = {mediatypes.LABEL_UNCOMPRESSED: layer.diff_id}
    return result
