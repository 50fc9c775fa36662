"""``ctrpy snapshots prepare|view|commit|mounts|label|diff``: snapshots made by hand, and
layers made from them, as with ctr (``ctrpy.cli.main`` registers them in the ``snapshots``
group by name; see :mod:`ctrpy.handmade` for why they survive garbage collection)."""

from __future__ import annotations

from collections.abc import Callable

import click

from ctrpy.cli.context import App, pass_app
from ctrpy.cli.group import examples
from ctrpy.cli.labelcmd import label_command
from ctrpy.cli.params import parse_labels
from ctrpy.handmade import DIFF_MEDIA_TYPES, HandSnapshots
from ctrpy.oci import mediatypes
from ctrpy.snapshots import Snapshot
from ctrpy.snapshots.mounts import Mount

target_option = click.option(
    "-t", "--target", metavar="DIR", default=None,
    help="Print the mount(8) commands that mount the snapshot on DIR (as ctr does; nothing is mounted).",
)


def _hand(app: App) -> HandSnapshots:
    return app.client.snapshots_by_hand(app.snapshotter)


def _print_mounts(mounts: list[Mount], target: str) -> None:
    for m in mounts:
        click.echo(m.command(target))


def _made(app: App, target: str | None, make: Callable[[HandSnapshots], Snapshot]) -> None:
    """Make a snapshot; with --target, print how to mount it there."""
    hand = _hand(app)
    snap = make(hand)
    if target is not None:
        _print_mounts(hand.mounts(snap.key), target)


@click.command("prepare")
@target_option
@click.argument("key")
@click.argument("parent", default="")
@pass_app
@examples("ctrpy snapshots prepare --target /mnt/work work sha256:...")
def prepare(app: App, target: str | None, key: str, parent: str) -> None:
    """Make an active snapshot KEY on top of committed PARENT (none: an empty tree), to
    change by hand and then commit or diff. It is labelled containerd.io/gc.root, so
    collections keep it until `snapshots rm`."""
    _made(app, target, lambda hand: hand.prepare(key, parent))


@click.command("view")
@target_option
@click.argument("key")
@click.argument("parent")
@pass_app
@examples("ctrpy snapshots view --target /mnt/look look sha256:...")
def view(app: App, target: str | None, key: str, parent: str) -> None:
    """Make a read-only view KEY of committed snapshot PARENT (labelled containerd.io/gc.root)."""
    _made(app, target, lambda hand: hand.view(key, parent))


@click.command("commit")
@click.argument("name")
@click.argument("key")
@pass_app
@examples("ctrpy snapshots commit work-done work")
def commit(app: App, name: str, key: str) -> None:
    """Commit active snapshot KEY as NAME (its labels are kept)."""
    _hand(app).commit(name, key)


@click.command("mounts")
@click.argument("target", metavar="TARGET")
@click.argument("key")
@pass_app
@examples("ctrpy snapshots mounts /mnt/work work | sh")
def mounts(app: App, target: str, key: str) -> None:
    """Print the mount(8) commands that mount active or view snapshot KEY on TARGET (pipe
    them to sh as root; without root, change the bind source directory of a native
    snapshot directly)."""
    _print_mounts(_hand(app).mounts(key), target)


label = label_command(
    metavar="KEY", noun="a snapshot", example="ctrpy snapshots label work team=infra",
    set_labels=lambda app, key, changes: _hand(app).label(key, changes),
)


@click.command("diff")
@click.option(
    "--media-type", default=mediatypes.OCI_LAYER_GZIP, show_default=True,
    type=click.Choice(DIFF_MEDIA_TYPES), metavar="TYPE",
    help="Media type (so compression) of the layer: " + ", ".join(DIFF_MEDIA_TYPES) + ".",
)
@click.option("--label", "labels", multiple=True, metavar="K=V", help="Label the layer blob (repeatable).")
@click.option("--keep", is_flag=True, help="Accepted for ctr: the layer blob is always kept (labelled containerd.io/gc.root).")
@click.argument("key")
@click.argument("parent", required=False)
@pass_app
@examples("ctrpy snapshots diff work")
def diff(app: App, media_type: str, labels: tuple[str, ...], keep: bool, key: str, parent: str | None) -> None:
    """Store the changes of snapshot KEY against PARENT (default: KEY's parent) as a layer
    blob, with whiteouts for what was deleted; prints its digest. The blob is labelled
    containerd.io/uncompressed (its diffID) and containerd.io/gc.root."""
    del keep  # the blob always stays until `content rm`
    layer = _hand(app).diff(key, parent, media_type, parse_labels(labels))
    click.echo(layer.digest)

