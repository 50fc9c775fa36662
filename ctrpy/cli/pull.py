"""``ctrpy images pull`` and ``ctrpy content fetch``: images from a registry, with ctr's flags."""

from __future__ import annotations

import click

from ctrpy.cli.context import App, pass_app
from ctrpy.cli.group import examples
from ctrpy.cli.options import PLATFORM_HELP, snapshotter_option
from ctrpy.cli.params import parse_labels
from ctrpy.cli.registry_flags import registry_options
from ctrpy.oci import Matcher
from ctrpy.remote import RemoteOptions

platforms_option = click.option("--platform", "platforms", multiple=True, help=PLATFORM_HELP)
all_platforms_option = click.option("--all-platforms", is_flag=True, help="Pull content and metadata of every platform.")
all_metadata_option = click.option(
    "--all-metadata", is_flag=True, help="Also fetch every other platform's manifests and configs (not their layers)."
)
label_option = click.option("--label", "labels", multiple=True, metavar="K=V", help="Label the image (repeatable).")


def _matcher(platforms: tuple[str, ...], all_platforms: bool) -> Matcher:
    if platforms and all_platforms:
        raise click.UsageError("--platform and --all-platforms: give one")
    return Matcher.from_options(platforms, all_platforms)


@click.command("pull")
@platforms_option
@all_platforms_option
@all_metadata_option
@click.option("--skip-metadata", is_flag=True,
              help="Fetch no metadata of platforms not pulled (the default; overrides --all-metadata).")
@snapshotter_option
@label_option
@click.option("--print-chainid", is_flag=True, help="Print the chain ID of each platform unpacked.")
@click.option("--max-concurrent-downloads", type=click.IntRange(min=1), default=3, show_default=True,
              help="Blobs downloaded at the same time.")
@click.option("--local", is_flag=True, help="Accepted for ctr: ctrpy always pulls in this process.")
@registry_options
@click.argument("ref", metavar="REF")
@pass_app
@examples(
    "ctrpy images pull 127.0.0.1:5000/app:1",
    "ctrpy images pull --platform linux/arm64 --print-chainid registry.example/app:1",
)
def pull(
    app: App,
    remote: RemoteOptions,
    platforms: tuple[str, ...],
    all_platforms: bool,
    all_metadata: bool,
    skip_metadata: bool,
    snapshotter: str | None,
    labels: tuple[str, ...],
    print_chainid: bool,
    max_concurrent_downloads: int,
    local: bool,
    ref: str,
) -> None:
    """Pull an image from a registry: fetch what the platforms need, unpack it, record it.

    Downloads run in parallel (largest first) and resume where an interrupted pull of the
    same blob stopped; the image is recorded only once everything is stored and unpacked.
    Credentials come from -u, else docker's config.json, else containers' auth.json."""
    from ctrpy.pull import PullOptions

    del local  # there is no daemon to pull for us
    opts = PullOptions(
        matcher=_matcher(platforms, all_platforms),
        all_metadata=all_metadata and not skip_metadata,
        snapshotter=snapshotter,
        max_concurrent_downloads=max_concurrent_downloads,
        labels=parse_labels(labels),
    )
    client = app.client
    client.snapshotter(snapshotter)  # an unknown snapshotter fails before any download
    progress = app.progress_for("pull")
    result = client.pull(ref, remote, opts)
    if not progress.unpack_lines:  # the name is the data, unless ctr's lines say it
        click.echo(result.image.name)
    if print_chainid:
        for _platform, top in result.unpacked:
            click.echo(f"image chain ID: {top}")


@click.command("fetch")
@platforms_option
@all_platforms_option
@all_metadata_option
@click.option("--metadata-only", is_flag=True, help="Fetch every manifest and config, no layer.")
@label_option
@registry_options
@click.argument("ref", metavar="REF")
@pass_app
@examples("ctrpy content fetch --all-platforms 127.0.0.1:5000/app:1")
def fetch(
    app: App,
    remote: RemoteOptions,
    platforms: tuple[str, ...],
    all_platforms: bool,
    all_metadata: bool,
    metadata_only: bool,
    labels: tuple[str, ...],
    ref: str,
) -> None:
    """Fetch an image from a registry into the content store and record it, without unpacking.

    Prints the image's name."""
    from ctrpy.pull import PullOptions

    opts = PullOptions(
        matcher=_matcher(platforms, all_platforms),
        all_metadata=all_metadata,
        metadata_only=metadata_only,
        labels=parse_labels(labels),
    )
    app.progress_for("fetch")
    click.echo(app.client.fetch(ref, remote, opts).name)
