"""``ctrpy images unpack|extract|flatten|mount|unmount|check|usage``: images as root filesystems.

The commands are plain click commands; ``ctrpy.cli.main`` registers them in the ``images``
group by name, each loaded when first named.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ctrpy import filters
from ctrpy.cli.context import App, pass_app
from ctrpy.cli.group import examples
from ctrpy.cli.options import (
    filter_argument,
    image_argument,
    list_options,
    platform_option,
    snapshotter_option,
)
from ctrpy.cli.params import stdout_binary
from ctrpy.cli.render import human_size, listing, table
from ctrpy.images.summary import ImageCheck
from ctrpy.oci import Matcher


def _matcher(platforms: tuple[str, ...]) -> Matcher:
    return Matcher.from_options(platforms, False)


@click.command("unpack")
@platform_option
@snapshotter_option
@image_argument
@pass_app
@examples("ctrpy images unpack --snapshotter native busybox:latest")
def unpack(app: App, platforms: tuple[str, ...], snapshotter: str | None, ref: str) -> None:
    """Unpack an image's layers into snapshots (skipping layers already unpacked)."""
    app.progress_for("unpack")
    app.client.unpack(ref, _matcher(platforms), snapshotter)


@click.command("extract")
@platform_option
@image_argument
@click.argument("dest", metavar="DIR", type=click.Path(path_type=Path))
@pass_app
@examples("ctrpy images extract busybox:latest ./rootfs")
def extract(app: App, platforms: tuple[str, ...], ref: str, dest: Path) -> None:
    """Write an image's flattened root filesystem into DIR (new or empty); works rootless."""
    app.progress_for("extract")
    app.client.extract(ref, dest, _matcher(platforms))


@click.command("flatten")
@platform_option
@image_argument
@click.argument("out", metavar="OUT")
@pass_app
@examples("ctrpy images flatten busybox:latest - | tar -t | head")
def flatten(app: App, platforms: tuple[str, ...], ref: str, out: str) -> None:
    """Write an image's flattened root filesystem as one tar to OUT, or stdout with '-'."""
    app.progress_for("flatten")
    app.client.flatten(ref, stdout_binary() if out == "-" else out, _matcher(platforms))


@click.command("mount")
@click.option("--rw", is_flag=True, help="Mount writable (changes go to a new active snapshot).")
@platform_option
@snapshotter_option
@image_argument
@click.argument("target", metavar="TARGET", type=click.Path(path_type=Path))
@pass_app
@examples("ctrpy images mount busybox:latest /mnt/busybox")
def mount(app: App, rw: bool, platforms: tuple[str, ...], snapshotter: str | None, ref: str, target: Path) -> None:
    """Mount an image's root filesystem on TARGET (root only; unpacks first if needed)."""
    app.progress_for("mount")
    click.echo(app.client.mount(ref, target, rw=rw, matcher=_matcher(platforms), snapshotter=snapshotter))


@click.command("unmount")
@click.option("--rm", "remove", is_flag=True, help="Also remove the writable snapshot of an --rw mount.")
@snapshotter_option
@click.argument("target", metavar="TARGET", type=click.Path(path_type=Path))
@pass_app
@examples("ctrpy images unmount --rm /mnt/busybox")
def unmount(app: App, remove: bool, snapshotter: str | None, target: Path) -> None:
    """Unmount TARGET (mounted by `images mount`)."""
    app.client.unmount(target, remove=remove, snapshotter=snapshotter)
    click.echo(str(target))


@click.command("check")
@list_options("the names of complete images")
@snapshotter_option
@filter_argument
@pass_app
@examples("ctrpy images check", "ctrpy images check 'name~=^docker.io/library/'")
def check(app: App, quiet: bool, as_json: bool, snapshotter: str | None, where: tuple[filters.Filter, ...]) -> None:
    """Check that images have all their content, and whether they are unpacked.

    FILTERs select the images as for `images ls`.  With no image to check, the table
    is not printed at all (as ctr)."""
    client = app.client
    found = client.images.list(filters.any_of(where))
    if not found and not as_json:
        return
    listing(
        found, lambda img: client.check(img, snapshotter=snapshotter),
        quiet=quiet, as_json=as_json, kind="ImageCheckList", name=lambda img: img.name,
        header=["REF", "TYPE", "DIGEST", "STATUS", "SIZE", "UNPACKED"],
        row=lambda c: [
            c.image.name, c.image.target.media_type, c.image.target.digest,
            f"{'complete' if c.complete else 'incomplete'} ({c.present}/{c.required})",
            f"{human_size(c.size)}/{human_size(c.required_size)}", "true" if c.unpacked else "false",
        ],
        to_json=ImageCheck.to_json,
        quiet_keeps=lambda c: c.complete,
        row_end="",  # ctr ends the header's last cell with a tab, not the rows'
    )


@click.command("usage")
@platform_option
@snapshotter_option
@image_argument
@pass_app
@examples("ctrpy images usage busybox:latest")
def usage(app: App, platforms: tuple[str, ...], snapshotter: str | None, ref: str) -> None:
    """Show the disk usage of an image's unpacked snapshots, layer by layer."""
    rows = app.client.usage(ref, _matcher(platforms), snapshotter)
    total = sum(u.size for _c, u in rows if u is not None)
    inodes = sum(u.inodes for _c, u in rows if u is not None)
    cells = [
        [cid, human_size(u.size) if u else "-", str(u.inodes) if u else "-"] for cid, u in rows
    ]
    cells.append(["TOTAL", human_size(total), str(inodes)])
    table(sys.stdout, ["SNAPSHOT", "SIZE", "INODES"], cells)

