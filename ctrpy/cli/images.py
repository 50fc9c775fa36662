"""``ctrpy images``: list, tag, remove, label, inspect, import and export images."""

from __future__ import annotations

import json
import os

import click

from ctrpy import filters
from ctrpy.cli.completion import complete_images, complete_import_formats
from ctrpy.cli.context import App, pass_app
from ctrpy.cli.group import examples, plain_group
from ctrpy.cli.labelcmd import label_command
from ctrpy.cli.options import list_command, platform_option, snapshotter_option
from ctrpy.cli.params import open_input, parse_labels, stdout_binary
from ctrpy.cli.render import human_size, labels_cell, listing
from ctrpy.images.summary import ImageSummary
from ctrpy.oci import Matcher, Platform, mediatypes

images = plain_group("images", "Manage images: list, import, export, tag, label and remove them.", "ctrpy images ls")


@list_command(images, "the image names", "ctrpy images ls -q",
              "ctrpy images ls 'name~=busybox' 'labels.\"team\"==infra'", filtered=True)
def ls(app: App, quiet: bool, as_json: bool, where: tuple[filters.Filter, ...]) -> None:
    """List images: REF TYPE DIGEST SIZE PLATFORMS LABELS.

    FILTERs are containerd's: name, target.digest, target.mediatype, labels.KEY and
    annotations.KEY, with == != or ~= (a regular expression); a comma joins selectors
    that must all match, and an image is listed when any FILTER matches."""
    client = app.client
    listing(
        client.images.list(filters.any_of(where)), client.summarize, quiet=quiet, as_json=as_json, kind="ImageList",
        name=lambda img: img.name,
        header=["REF", "TYPE", "DIGEST", "SIZE", "PLATFORMS", "LABELS"],
        row=lambda s: [
            s.image.name, s.image.target.media_type, s.image.target.digest, human_size(s.size),
            ",".join(str(p) for p in s.platforms) or "-", labels_cell(s.image.labels),
        ],
        to_json=ImageSummary.to_json,
    )


@images.command("tag")
@click.option("--force", is_flag=True, help="Replace a target name that already exists.")
@click.argument("source", shell_complete=complete_images)
@click.argument("targets", nargs=-1, required=True)
@pass_app
@examples("ctrpy images tag docker.io/library/busybox:latest busybox:mine")
def tag(app: App, source: str, targets: tuple[str, ...], force: bool) -> None:
    """Give an existing image more names."""
    for img in app.client.images.tag(source, list(targets), force=force):
        click.echo(img.name)


@images.command("rm", aliases=("remove", "delete", "del"))
@click.option("--sync", is_flag=True, help="Accepted for ctr: the content and snapshots are always freed before returning.")
@click.argument("refs", nargs=-1, required=True, shell_complete=complete_images)
@pass_app
@examples("ctrpy images rm docker.io/library/busybox:latest")
def rm(app: App, refs: tuple[str, ...], sync: bool) -> None:
    """Remove images by name, then free what no other image holds (a missing name is a
    warning, as in ctr)."""
    from ctrpy.cli.main import with_hint  # main imports this module

    del sync  # there is no daemon to do it later: rm always collects before it returns
    removed, missing, freed = app.client.remove_images(refs)
    for e in missing:
        click.echo(f"ctrpy: warning: {with_hint(e)}", err=True)
    for img in removed:
        click.echo(img.name)
    app.freed(freed)


images.add_command(label_command(
    metavar="REF", noun="an image", example="ctrpy images label busybox:latest team=infra",
    set_labels=lambda app, ref, changes: app.client.images.set_labels(ref, changes).labels, complete=complete_images,
))


@images.command("inspect")
@click.argument("ref", shell_complete=complete_images)
@pass_app
@examples("ctrpy images inspect busybox:latest")
def inspect(app: App, ref: str) -> None:
    """Print an image's record, manifest and config as JSON."""
    click.echo(json.dumps(app.client.inspect(ref), indent=2))


@images.command("import")
@click.option(
    "--format", "fmt", default="auto", show_default=True,
    help="Archive format: auto, oci.v1, docker.v1.2 (alias docker.v1.1), or a plugin's name.",
    shell_complete=complete_import_formats,
)
@click.option(
    "--oci-name", "--base-name", "base_name", default=None,
    help="Base image name for entries with a bare tag or no name [default: unknown/unknown].",
)
@click.option("--digests", is_flag=True, help="Also create NAME@DIGEST images for named entries.")
@click.option(
    "--skip-digest-for-named", is_flag=True,
    help="With --digests: do not create digest images for entries that have a name.",
)
@click.option("--index-name", default=None, help="Also record an image for the archive's whole index.")
@click.option("--label", "labels", multiple=True, metavar="K=V", help="Label every imported image (repeatable).")
@platform_option
@click.option("--all-platforms", is_flag=True, help="Import content for all platforms.")
@click.option("--no-unpack", is_flag=True, help="Do not unpack the images into snapshots.")
@snapshotter_option
@click.option(
    "--compress-blobs", is_flag=True,
    help="docker archives: gzip uncompressed layers while importing (and free the uncompressed copies).",
)
@click.option(
    "--rootfs", "rootfs_name", default=None, metavar="NAME",
    help="IN is a plain root filesystem tar (or gzip/zstd of one): make the one-layer image NAME from it.",
)
@click.argument("archive", metavar="IN")
@pass_app
@examples(
    "ctrpy images import --platform linux/amd64 busybox.tar",
    "zcat busybox.tar.gz | ctrpy images import -",
    "ctrpy images import ./busybox-oci-layout",
    "tar -C rootfs -c . | ctrpy images import --rootfs me/base:1 -",
)
def import_cmd(
    app: App,
    fmt: str,
    base_name: str | None,
    digests: bool,
    skip_digest_for_named: bool,
    index_name: str | None,
    labels: tuple[str, ...],
    platforms: tuple[str, ...],
    all_platforms: bool,
    no_unpack: bool,
    snapshotter: str | None,
    compress_blobs: bool,
    rootfs_name: str | None,
    archive: str,
) -> None:
    """Import images from an archive file, an OCI image-layout directory, or stdin with '-'."""
    if base_name is not None and not base_name.strip():
        raise click.BadParameter("must not be empty", param_hint="--oci-name/--base-name")
    layout = archive != "-" and os.path.isdir(archive)
    if rootfs_name is not None:
        _check_rootfs(fmt, base_name, digests, index_name, all_platforms, compress_blobs, platforms, layout)
    elif layout and fmt not in ("auto", "oci.v1"):
        raise click.BadParameter(f"a directory is read as an OCI image layout, not {fmt}", param_hint="--format")
    from ctrpy.formats import ImportOptions, registry  # the formats load for the commands that read them

    importer = registry.get_importer(fmt)
    opts = ImportOptions(
        base_name=base_name,
        digests=digests,
        skip_digest_for_named=skip_digest_for_named,
        index_name=index_name,
        matcher=Matcher.from_options(platforms, all_platforms),
        compress_blobs=compress_blobs,
    )
    label_map = parse_labels(labels)
    client = app.client
    if not no_unpack:
        client.snapshotter(snapshotter)  # an unknown snapshotter fails before any work
    progress = app.progress_for("import")
    if layout:
        imported = client.import_layout(archive, opts, label_map, unpack=not no_unpack, snapshotter=snapshotter)
    else:
        stream, close = open_input(archive)
        try:
            if rootfs_name is not None:
                platform = Platform.parse(platforms[0]) if platforms else None
                imported = client.import_rootfs(stream, rootfs_name, platform, label_map, not no_unpack, snapshotter)
            else:
                imported = client.import_archive(
                    stream, importer, opts, label_map, unpack=not no_unpack, snapshotter=snapshotter
                )
        finally:
            if close:
                stream.close()
    if no_unpack or not progress.unpack_lines:  # the names are the data, unless ctr's lines say it
        for img in imported:
            click.echo(img.name)


def _check_rootfs(fmt: str, base_name: str | None, digests: bool, index_name: str | None, all_platforms: bool,
                  compress_blobs: bool, platforms: tuple[str, ...], layout: bool) -> None:
    """--rootfs makes one image of one tar: the options of archives do not apply."""
    given = {"--format": fmt != "auto", "--oci-name": base_name is not None, "--digests": digests,
             "--index-name": index_name is not None, "--all-platforms": all_platforms,
             "--compress-blobs": compress_blobs}
    for flag, used in given.items():
        if used:
            raise click.UsageError(f"--rootfs does not take {flag}")
    if len(platforms) > 1:
        raise click.UsageError("--rootfs makes an image for one --platform")
    if layout:
        raise click.BadParameter("--rootfs reads a tar (or -), not a directory", param_hint="IN")


@images.command("export")
@click.option("--skip-manifest-json", is_flag=True, help="Do not write a Docker-compatible manifest.json.")
@click.option("--skip-non-distributable", is_flag=True, help="Leave out non-distributable layers.")
@click.option("--oci-ref-name", default=None, help="Override the org.opencontainers.image.ref.name annotation.")
@click.option("--manifest", "manifest", default=None, metavar="DIGEST", help="Export this content digest instead of looking IMAGE up.")
@click.option(
    "--manifest-type", default=mediatypes.OCI_MANIFEST, show_default=True,
    help="Media type of the --manifest digest.",
)
@platform_option
@click.option("--all-platforms", is_flag=True, help="Export every platform (all must be in the store).")
@click.argument("out", metavar="OUT")
@click.argument("names", nargs=-1, metavar="IMAGE...", shell_complete=complete_images)
@pass_app
@examples(
    "ctrpy images export busybox.tar docker.io/library/busybox:latest",
    "ctrpy images export - busybox:latest | gzip > busybox.tar.gz",
)
def export_cmd(
    app: App,
    skip_manifest_json: bool,
    skip_non_distributable: bool,
    oci_ref_name: str | None,
    manifest: str | None,
    manifest_type: str,
    platforms: tuple[str, ...],
    all_platforms: bool,
    out: str,
    names: tuple[str, ...],
) -> None:
    """Export images as an OCI archive to a file, or to stdout with '-'."""
    from ctrpy.formats import ExportOptions

    if not names and manifest is None:
        raise click.UsageError("name at least one IMAGE to export")
    client = app.client
    app.progress_for("export")
    targets = client.export_targets(names, manifest, manifest_type, oci_ref_name)
    opts = ExportOptions(
        matcher=Matcher.from_options(platforms, False) if platforms else None,
        all_platforms=all_platforms,
        skip_manifest_json=skip_manifest_json,
        skip_non_distributable=skip_non_distributable,
    )
    client.export(targets, stdout_binary() if out == "-" else out, options=opts)


