"""``oci.v1``: OCI image-layout archives, as ``ctr images import/export`` read and write them."""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, ClassVar

from ctrpy.content.blobs import CHUNK
from ctrpy.errors import InvalidArchive, NotFound
from ctrpy.formats.base import (
    ExportOptions,
    ExportSource,
    ExportTarget,
    ImportContext,
    ImportedImage,
    ImportOptions,
    ImportResult,
)
from ctrpy.formats.reader import ArchiveContents, read_archive
from ctrpy.images.walk import Walker, parse_index
from ctrpy.oci import Descriptor, Matcher, digest, mediatypes, reference
from ctrpy.progress import BytesWritten, Sink, Warning, null_sink

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
        named = ref if reference.is_full_ref_name(ref) else f"{opts.base_name}:{ref}"
    with_digest = reference.with_digest(opts.base_name, desc.digest)
    if named is None:
        return [with_digest]
    if opts.digests and not opts.skip_digest_for_named:
        return [named, with_digest]
    return [named]


# --------------------------------------------------------------------------- checks
def required_blobs(walker: Walker, target: Descriptor, matcher: Matcher) -> Iterator[Descriptor]:
    """Every descriptor an image needs for the matched platforms (walks stored JSON)."""
    yield from walker.walk(target, matcher)


def check_complete(ctx: ImportContext, image: ImportedImage, sizes: dict[str, int]) -> None:
    """Raise unless every blob ``image`` needs is in the store with the announced size.

    A needed blob the archive did not carry but the store already holds (verified when it
    was written, perhaps by another namespace) is added to ``sizes``, so the import makes
    it visible in this namespace too.
    """
    walker = Walker(ctx.read_json)
    for desc in required_blobs(walker, image.target, ctx.options.matcher):
        if not ctx.blobs.exists(desc.digest):
            if desc.media_type in mediatypes.NON_DISTRIBUTABLE or desc.urls:
                continue
            kind = _kind(desc.media_type)
            raise InvalidArchive(f"archive is missing {kind} {desc.digest} of image {image.name}")
        size = sizes.get(desc.digest)
        if size is None:
            size = sizes[desc.digest] = ctx.blobs.size(desc.digest)
        if size != desc.size:
            raise InvalidArchive(
                f"blob {desc.digest} of image {image.name} has {size} bytes, "
                f"but its descriptor says {desc.size}"
            )


def _kind(media_type: str) -> str:
    if mediatypes.is_index(media_type):
        return "index"
    if mediatypes.is_manifest(media_type):
        return "manifest"
    if media_type in mediatypes.CONFIG_TYPES:
        return "config"
    if mediatypes.is_layer(media_type):
        return "layer"
    return "blob"


def has_platform(walker: Walker, target: Descriptor, matcher: Matcher) -> bool:
    """Does ``target`` offer a manifest for the matched platform(s)?"""
    if matcher.all:
        return True
    try:
        walker.resolve_manifest(target, matcher)
        return True
    except NotFound:
        return False


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
    walker = Walker(ctx.read_json)
    result = ImportResult(blobs=dict(contents.sizes))
    for i, entry in enumerate(entries):
        if not (mediatypes.is_index(entry.media_type) or mediatypes.is_manifest(entry.media_type)):
            raise InvalidArchive(
                f"index.json manifests[{i}]: unsupported media type {entry.media_type!r}"
            )
        if not ctx.blobs.exists(entry.digest):
            raise InvalidArchive(f"archive is missing {_kind(entry.media_type)} {entry.digest}")
        names = names_for_entry(entry, opts)
        if (entry.platform is not None and not opts.matcher.match(entry.platform)) or not has_platform(
            walker, entry, opts.matcher
        ):
            ctx.progress(Warning(
                f"skipping {names[0]}: no manifest for {opts.matcher.describe()} "
                "(use --platform or --all-platforms)"
            ))
            continue
        target = Descriptor(entry.media_type, entry.digest, entry.size)
        for name in names:
            result.images.append(ImportedImage(name, target))
    if opts.index_name:
        with ctx.blobs.writer() as w:
            w.write(index_bytes)
            dgst, size = w.commit()
        result.blobs[dgst] = size
        media_type = index_obj.get("mediaType") if isinstance(index_obj, dict) else None
        result.images.append(ImportedImage(
            opts.index_name, Descriptor(media_type or mediatypes.OCI_INDEX, dgst, size)
        ))
    if not result.images:
        raise InvalidArchive(
            f"the archive has no image for {opts.matcher.describe()} (use --platform or --all-platforms)"
        )
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

    def export(
        self,
        source: ExportSource,
        targets: list[ExportTarget],
        out: BinaryIO,
        options: ExportOptions,
        progress: Sink = null_sink,
    ) -> None:
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
    walker = Walker(source.read_json)
    matcher = Matcher(all_platforms=True) if options.all_platforms else options.matcher
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
        _collect(source, walker, t.descriptor, matcher, options, blobs, t.name or t.descriptor.digest)
        if not options.skip_manifest_json and t.name:
            _docker_entry(walker, t, options.matcher, docker_entries)
    index = {"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX, "manifests": manifests}
    return ExportPlan(index, blobs, None if options.skip_manifest_json else list(docker_entries.values()))


def _collect(
    source: ExportSource,
    walker: Walker,
    target: Descriptor,
    matcher: Matcher,
    options: ExportOptions,
    blobs: dict[str, int],
    label: str,
) -> None:
    if not source.exists(target.digest):
        raise NotFound(f"content {target.digest} of image {label} not found")
    blobs[target.digest] = target.size
    stack = [target]
    while stack:
        desc = stack.pop()
        if mediatypes.is_index(desc.media_type):
            chosen = [c for c in walker.children(desc) if c.platform is None or matcher.match(c.platform)]
            if not chosen and desc is target:
                raise NotFound(f"image {label} has no manifest for {matcher.describe()}")
            for child in chosen:
                if not source.exists(child.digest):
                    hint = (
                        "--all-platforms needs every platform's content" if options.all_platforms
                        else "import it with --platform or --all-platforms"
                    )
                    raise NotFound(
                        f"image {label}: manifest {child.digest} for "
                        f"{child.platform or 'an unnamed platform'} is not in the store ({hint})"
                    )
                blobs[child.digest] = child.size
                stack.append(child)
        elif mediatypes.is_manifest(desc.media_type):
            for child in walker.children(desc):
                nondist = child.media_type in mediatypes.NON_DISTRIBUTABLE
                if nondist and options.skip_non_distributable:
                    continue
                if not source.exists(child.digest):
                    if nondist:
                        continue
                    raise NotFound(f"image {label}: {_kind(child.media_type)} {child.digest} not found")
                blobs[child.digest] = child.size


def _docker_entry(walker: Walker, t: ExportTarget, matcher: Matcher, entries: dict[str, dict[str, Any]]) -> None:
    assert t.name is not None
    if mediatypes.is_manifest(t.descriptor.media_type):
        # a lone manifest is exported whatever its platform (as ctr does): describe it too
        manifest = walker.manifest(t.descriptor)
    else:
        try:
            manifest, _cfg = walker.resolve_manifest(t.descriptor, matcher)
        except NotFound:
            return
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


def _json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


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
        "oci-layout": _json_bytes({"imageLayoutVersion": LAYOUT_VERSION}),
        "index.json": _json_bytes(plan.index),
    }
    if plan.manifest_json is not None:
        files["manifest.json"] = _json_bytes(plan.manifest_json)
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
            raise InvalidArchive(f"content {dgst} has {copied} bytes, expected {size}")
        emit(_pad(size))
    emit(b"\0" * (2 * tarfile.BLOCKSIZE))
    rest = -written % tarfile.RECORDSIZE
    if rest:
        emit(b"\0" * rest)
    progress(BytesWritten(written, total))

