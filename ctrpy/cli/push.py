"""``ctrpy images push``: an image from the store to a registry (``ctrpy.main`` adds it to
the ``images`` group)."""

from __future__ import annotations

import click

from ctrpy.cli.completion import complete_images
from ctrpy.cli.context import App, pass_app
from ctrpy.cli.group import examples
from ctrpy.cli.options import platform_option
from ctrpy.cli.registry_flags import registry_options
from ctrpy.cli.render import tabwriter
from ctrpy.oci import Platform, mediatypes
from ctrpy.push import DEFAULT_CONCURRENCY, PushOptions
from ctrpy.remote import RemoteOptions


@click.command("push")
@registry_options
@click.option("--manifest", default=None, metavar="DIGEST", help="Push this stored manifest instead of LOCAL's target.")
@click.option("--manifest-type", default=mediatypes.OCI_MANIFEST, show_default=True,
              help="Media type of the --manifest digest.")
@platform_option
@click.option("--max-concurrent-uploaded-layers", "max_concurrent", type=click.IntRange(min=1),
              default=DEFAULT_CONCURRENCY, show_default=True, help="Blobs uploaded at the same time.")
@click.option("--chunk-size", type=click.IntRange(min=1), default=None, metavar="BYTES",
              help="Upload blobs in chunks (PATCH requests) of this many bytes.")
@click.option("--allow-non-distributable-blobs", is_flag=True,
              help="Push non-distributable (foreign) layers too; by default they are left out.")
@click.argument("reference", metavar="REMOTE")
@click.argument("local", metavar="[LOCAL]", required=False, shell_complete=complete_images)
@pass_app
@examples(
    "ctrpy images push 127.0.0.1:5000/busybox:latest docker.io/library/busybox:latest",
    "ctrpy images push -u alice registry.example.com/team/app:1 app:1",
)
def push(
    app: App,
    remote: RemoteOptions,
    manifest: str | None,
    manifest_type: str,
    platforms: tuple[str, ...],
    max_concurrent: int,
    chunk_size: int | None,
    allow_non_distributable_blobs: bool,
    reference: str,
    local: str | None,
) -> None:
    """Push the image LOCAL (default: the image named REMOTE) to the registry REMOTE names.

    Blobs the repository has are not sent again; one another repository of the registry
    has (a distribution.source label, written by pull) is mounted from it; the tag is
    written last, so a failed push leaves no tag.  With one --platform, that platform's
    manifest is pushed (as ctr does); with several, an index of just their entries.
    Prints ctr's final status of every object (REF: STATUS) on stdout."""
    options = PushOptions(
        platforms=tuple(Platform.parse(p) for p in platforms),
        max_concurrent=max_concurrent,
        chunk_size=chunk_size,
        allow_non_distributable=allow_non_distributable_blobs,
    )
    client = app.client
    app.progress_for("push")
    result = client.push(reference, local, options, remote, manifest=manifest, manifest_type=manifest_type)
    if app.quiet:
        return
    click.echo(tabwriter([[f"{ref}:", status] for ref, status in result.statuses]), nl=False)
