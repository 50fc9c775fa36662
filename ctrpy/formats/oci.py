"""``oci.v1``: OCI image-layout archives, as ``ctr images import/export`` read and write them."""

from __future__ import annotations

import tarfile
from dataclasses import dataclass
from typing import Any, BinaryIO, ClassVar

from ctrpy.errors import (
    ContentNotFound,
    CtrpyError,
    InvalidArchive,
    MissingFromArchive,
    PlatformContentMissing,
    PlatformNotFound,
    SizeMismatch,
)
from ctrpy.formats.base import (
    ExportOptions,
    ExportSource,
    ExportTarget,
    ImportContext,
    ImportedImage,
    ImportOptions,
    ImportResult,
    check_complete,
    content_kind,
)
from ctrpy.formats.reader import ArchiveContents, read_archive
from ctrpy.images.walk import Walker, parse_index
from ctrpy.oci import Descriptor, Matcher, digest, mediatypes, reference
from ctrpy.progress import BytesWritten, Sink, Warn, null_sink
from ctrpy.streams import CHUNK, json_bytes

LAYOUT_VERSION = "1.0.0"


# --------------------------------------------------------------------------- naming
def names_for_entry(desc: Descriptor, opts: ImportOptions) -> list[str]:
    """The image names ctr gives one index.json entry (see the README's naming rules)."""
    ann = desc.annotations
    named: str | None = None
    if ann.get(mediatypes.ANNOTATION_IMAGE_NAME):
        named = ann[mediatypes.ANNOTATION_IMAGE_NAME]
    elif ann.get(mediatypes.ANNOTATION_REF_NAME):
        ref = ann[mediatypes.ANNOTATION_REF_NAME]
        named = ref if reference.is_full_ref_name(ref) else f"{opts.oci_base}:{ref}"
    with_digest = reference.with_digest(opts.oci_base, desc.digest)
    if named is None:
        return [with_digest]
    if opts.digests and not opts.skip_digest_for_named:
        return [named, with_digest]
    return [named]


# --------------------------------------------------------------------------- import
def import_oci_layout(contents: ArchiveContents, ctx: ImportContext) -> ImportResult:
    layout = contents.json("oci-layout")
    if not isinstance(layout, dict) or layout.get("imageLayoutVersion") != LAYOUT_VERSION:
        version = layout.get("imageLayoutVersion") if isinstance(layout, dict) else None
        raise InvalidArchive(
            f"unsupported OCI layout version {version!r} in oci-layout (want {LAYOUT_VERSION!r})"
        )
    index_bytes = contents.metadata_bytes("index.json")
    if index_bytes is None:
        raise InvalidArchive("archive has oci-layout but no index.json")
    index_obj = contents.json("index.json")
    entries = parse_index(index_obj, "index.json")
    opts = ctx.options
    walker = ctx.walker()
    result = ImportResult(blobs=dict(contents.sizes))
    known = 0
    for i, entry in enumerate(entries):
        if not mediatypes.is_known(entry.media_type):
            ctx.progress(Warn(
                f"index.json manifests[{i}]: skipping {entry.digest}: unknown media type {entry.media_type!r}"
            ))
            continue
        known += 1
        if not ctx.exists(entry.digest):
            raise MissingFromArchive(entry.digest, content_kind(entry.media_type))
        names = names_for_entry(entry, opts)
        try:
            offered = walker.offers(entry, opts.matcher, names[0])
        except ContentNotFound as e:
            raise MissingFromArchive(e.digest, e.what).within(f"image {names[0]}") from None
        if not offered:
            ctx.progress(Warn(f"skipping {names[0]}: no manifest for {opts.matcher.describe()}", "platform"))
            continue
        target = Descriptor(entry.media_type, entry.digest, entry.size)
        for name in names:
            result.images.append(ImportedImage(name, target))
    if opts.index_name:
        with ctx.writer() as w:
            w.write(index_bytes)
            dgst, size = w.commit()
        result.blobs[dgst] = size
        media_type = index_obj.get("mediaType") if isinstance(index_obj, dict) else None
        result.images.append(ImportedImage(
            opts.index_name, Descriptor(media_type or mediatypes.OCI_INDEX, dgst, size)
        ))
    if not result.images:
        if not known:
            raise InvalidArchive("index.json names no index or manifest ctrpy knows")
        raise PlatformNotFound("the archive", opts.matcher.describe(), "image")
    for image in result.images:
        check_complete(ctx, image, result.blobs)
    return result


class OCIFormat:
    """The ``oci.v1`` importer and exporter."""

    name: ClassVar[str] = "oci.v1"

    def import_stream(self, stream: BinaryIO, ctx: ImportContext) -> ImportResult:
        contents = read_archive(stream, ctx)
        if contents.metadata_bytes("oci-layout") is None:
            raise InvalidArchive("not an OCI image layout: the archive has no oci-layout file")
        return import_oci_layout(contents, ctx)

    def export(self, source: ExportSource, targets: list[ExportTarget], out: BinaryIO,
               options: ExportOptions, progress: Sink = null_sink) -> None:
        plan = plan_export(source, targets, options, progress)
        write_layout_tar(source, plan, out, progress)


# --------------------------------------------------------------------------- export
@dataclass
class ExportPlan:
    index: dict[str, Any]
    blobs: dict[str, int]  # digest -> size, every blob to write
    manifest_json: list[dict[str, Any]] | None


def _ref_name(target: ExportTarget) -> str | None:
    if target.ref_name:
        return target.ref_name
    if not target.name:
        return None
    _repo, tag = reference.split_tag(target.name)
    return tag or None


def plan_export(
    source: ExportSource, targets: list[ExportTarget], options: ExportOptions, progress: Sink
) -> ExportPlan:
    walker = Walker(source.read_json, source.exists)
    blobs: dict[str, int] = {}
    manifests: list[dict[str, Any]] = []
    docker_entries: dict[str, dict[str, Any]] = {}
    for t in targets:
        ann: dict[str, str] = dict(t.descriptor.annotations)
        if t.name:
            ann[mediatypes.ANNOTATION_IMAGE_NAME] = t.name
        ref = _ref_name(t)
        if ref:
            ann[mediatypes.ANNOTATION_REF_NAME] = ref
        desc = Descriptor(t.descriptor.media_type, t.descriptor.digest, t.descriptor.size, ann,
                          t.descriptor.platform)
        manifests.append(desc.to_json())
        label = t.name or t.descriptor.digest
        try:
            collect_blobs(source, walker, t.descriptor, options, blobs, label)
        except CtrpyError as e:
            raise e.within(f"image {label}") from None
        if not options.skip_manifest_json and t.name:
            _docker_entry(walker, t, options, docker_entries)
    index = {"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX, "manifests": manifests}
    return ExportPlan(index, blobs, None if options.skip_manifest_json else list(docker_entries.values()))


def collect_blobs(
    source: ExportSource, walker: Walker, target: Descriptor, options: ExportOptions,
    blobs: dict[str, int], label: str,
) -> None:
    """Every blob of ``target`` the export writes (the one walk, platform-filtered)."""
    if not source.exists(target.digest):
        raise ContentNotFound(target.digest)
    matcher = options.selected()
    for item in walker.content(target, matcher):
        d = item.descriptor
        nondist = d.media_type in mediatypes.NON_DISTRIBUTABLE
        if nondist and options.skip_non_distributable:
            continue
        if not source.exists(d.digest):
            if item.optional or nondist or d.urls:
                continue
            if item.parent is not None and mediatypes.is_index(item.parent.media_type):
                raise PlatformContentMissing(label, d.digest, str(d.platform or "an unnamed platform"),
                                             all_platforms=options.all_platforms)
            raise ContentNotFound(d.digest, content_kind(d.media_type))
        blobs[d.digest] = d.size
    lone_manifest = mediatypes.is_manifest(target.media_type)
    if not options.all_platforms and (options.matcher is not None or not lone_manifest):
        walker.resolve(target, matcher, label)  # the platform asked for is there (a lone manifest too)


def _docker_entry(walker: Walker, t: ExportTarget, options: ExportOptions,
                  entries: dict[str, dict[str, Any]]) -> None:
    """manifest.json's item for a named image (docker load reads it): its image manifest
    for the platform; an artifact, or an image without that platform, gets none."""
    assert t.name is not None
    lone_manifest = mediatypes.is_manifest(t.descriptor.media_type)
    matcher = Matcher(all_platforms=True) if lone_manifest and options.matcher is None else options.selected()
    try:
        selected = walker.resolve(t.descriptor, matcher)
    except CtrpyError:
        return
    if selected.is_artifact:
        return
    manifest = selected.manifest
    entry = entries.setdefault(manifest.descriptor.digest, {
        "Config": "blobs/sha256/" + digest.hex_of(manifest.config.digest),
        "RepoTags": [],
        "Layers": ["blobs/sha256/" + digest.hex_of(layer.digest) for layer in manifest.layers],
    })
    tagged = reference.try_normalize(t.name)
    if tagged is not None and "@" not in tagged:
        fam = reference.familiar(tagged)
        if fam not in entry["RepoTags"]:
            entry["RepoTags"].append(fam)


def _header(name: str, size: int, *, directory: bool = False) -> bytes:
    ti = tarfile.TarInfo(name)
    ti.size = 0 if directory else size
    ti.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    ti.mode = 0o755 if directory else 0o444
    ti.mtime = 0
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    return ti.tobuf(format=tarfile.PAX_FORMAT)


def _pad(n: int) -> bytes:
    return b"\0" * (-n % tarfile.BLOCKSIZE)


def write_layout_tar(source: ExportSource, plan: ExportPlan, out: BinaryIO, progress: Sink) -> None:
    """Write the plan as a tar: entries sorted by name, mtime 0, owner 0, files 0444."""
    files: dict[str, bytes | tuple[str, int]] = {
        "oci-layout": json_bytes({"imageLayoutVersion": LAYOUT_VERSION}),
        "index.json": json_bytes(plan.index),
    }
    if plan.manifest_json is not None:
        files["manifest.json"] = json_bytes(plan.manifest_json)
    for dgst, size in plan.blobs.items():
        files["blobs/sha256/" + digest.hex_of(dgst)] = (dgst, size)
    dirs = [_header("blobs/", 0, directory=True), _header("blobs/sha256/", 0, directory=True)]
    headers = {
        name: _header(name, len(item) if isinstance(item, bytes) else item[1]) for name, item in files.items()
    }
    # the size of the whole tar, known before the first byte: for progress with a total
    total = sum(map(len, dirs)) + 2 * tarfile.BLOCKSIZE
    for name, item in files.items():
        size = len(item) if isinstance(item, bytes) else item[1]
        total += len(headers[name]) + size + len(_pad(size))
    total += -total % tarfile.RECORDSIZE
    written = 0

    def emit(data: bytes) -> None:
        nonlocal written
        out.write(data)
        written += len(data)

    progress(BytesWritten(0, total))
    for header in dirs:
        emit(header)
    next_report = 0
    for name in sorted(files):
        item = files[name]
        if isinstance(item, bytes):
            emit(headers[name])
            emit(item + _pad(len(item)))
            continue
        dgst, size = item
        emit(headers[name])
        copied = 0
        with source.open(dgst) as f:
            while chunk := f.read(CHUNK):
                emit(chunk)
                copied += len(chunk)
                if written >= next_report:
                    next_report = written + (8 << 20)
                    progress(BytesWritten(written, total))
        if copied != size:
            raise SizeMismatch(size, copied, f"content {dgst}")
        emit(_pad(size))
    emit(b"\0" * (2 * tarfile.BLOCKSIZE))
    rest = -written % tarfile.RECORDSIZE
    if rest:
        emit(b"\0" * rest)
    progress(BytesWritten(written, total))

