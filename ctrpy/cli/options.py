"""Options and arguments several commands share, defined once."""

from __future__ import annotations

import click

from ctrpy.cli.completion import complete_images, complete_snapshotters

PLATFORM_HELP = "Platform to use, e.g. linux/arm64 (repeatable; strict match)."
SNAPSHOTTER_HELP = "Snapshotter to use [env CTRPY_SNAPSHOTTER; default overlayfs where usable, else native]."

platform_option = click.option("--platform", "platforms", multiple=True, help=PLATFORM_HELP)
snapshotter_option = click.option(
    "--snapshotter", default=None, envvar="CTRPY_SNAPSHOTTER", help=SNAPSHOTTER_HELP,
    shell_complete=complete_snapshotters,
)
image_argument = click.argument("ref", metavar="IMAGE", shell_complete=complete_images)
