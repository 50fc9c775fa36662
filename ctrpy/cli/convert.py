"""``ctrpy images convert``: a new image from an existing one (``ctrpy.main`` adds it to
the ``images`` group)."""

from __future__ import annotations

import click

from ctrpy.cli.completion import complete_images
from ctrpy.cli.context import App, pass_app
from ctrpy.cli.group import examples
from ctrpy.cli.options import platform_option
from ctrpy.errors import InvalidArgument
from ctrpy.oci import Matcher


@click.command("convert")
@click.option("--oci", is_flag=True, help="Convert Docker media types to OCI media types.")
@click.option("--uncompress", is_flag=True, help="Store every layer uncompressed (tar).")
@click.option("--gzip", "gzip_", is_flag=True, help="Recompress layers with gzip (isa-l levels 0-3).")
@click.option("--zstd", is_flag=True, help="Recompress layers with zstd (levels 1-22); implies --oci.")
@click.option("--level", type=int, default=None, metavar="N",
              help="Compression level for --gzip or --zstd (then layers already so compressed are recompressed too).")
@platform_option
@click.option("--all-platforms", is_flag=True, help="Convert every platform of an index (all must be in the store).")
@click.argument("source", metavar="SRC", shell_complete=complete_images)
@click.argument("target", metavar="DST")
@pass_app
@examples(
    "ctrpy images convert --oci --uncompress docker.io/library/busybox:latest busybox:oci",
    "ctrpy images convert --zstd --level 9 --all-platforms app:v1 app:v1-zstd",
)
def convert(
    app: App,
    oci: bool,
    uncompress: bool,
    gzip_: bool,
    zstd: bool,
    level: int | None,
    platforms: tuple[str, ...],
    all_platforms: bool,
    source: str,
    target: str,
) -> None:
    """Record DST as SRC converted: media types, layer compression, platforms; prints the
    digest of DST's new target (as ctr does). DST is replaced if it exists.

    Without --platform or --all-platforms only the host's platform of an index is kept.
    DiffIDs never change: DST has SRC's snapshots, and its config is SRC's."""
    from ctrpy.archive.compression import Compression
    from ctrpy.convert import ConvertOptions
    from ctrpy.layers import check_level

    if sum((uncompress, gzip_, zstd)) > 1:
        raise click.UsageError("choose one of --uncompress, --gzip and --zstd")
    compression = Compression.GZIP if gzip_ else Compression.ZSTD if zstd else None
    if level is not None:
        if compression is None:
            raise click.BadParameter("needs --gzip or --zstd", param_hint="--level")
        try:
            check_level(compression, level)
        except InvalidArgument as e:
            raise click.BadParameter(str(e), param_hint="--level") from None
    if not (oci or uncompress or compression or platforms):
        raise click.UsageError("no conversion specified: give --oci, --uncompress, --gzip, --zstd or --platform")
    options = ConvertOptions(
        oci=oci,
        uncompress=uncompress,
        compression=compression,
        level=level,
        matcher=Matcher.from_options(platforms, False) if platforms else None,
        all_platforms=all_platforms,
    )
    app.progress_for("convert")
    image = app.client.convert(source, target, options)
    click.echo(image.target.digest)
