"""``ctrpy snapshots``: list, inspect, remove and measure snapshots."""

from __future__ import annotations

import json
import sys

import click

from ctrpy.cli.context import App, pass_app
from ctrpy.cli.group import aliased_group, examples
from ctrpy.cli.options import list_command, snapshotter_option
from ctrpy.cli.render import human_size, listing, table
from ctrpy.snapshots import Snapshot, Snapshotter


@aliased_group("snapshots")
@snapshotter_option
@pass_app
@examples("ctrpy snapshots --snapshotter native ls")
def snapshots(app: App, snapshotter: str | None) -> None:
    """Manage snapshots: the unpacked layers of images."""
    app.snapshotter = snapshotter



def _sn(app: App) -> Snapshotter:
    return app.client.snapshotter(app.snapshotter)


def _info(s: Snapshot, snapshotter: str) -> dict[str, object]:
    """``snapshots info``: ctr's shape."""
    return {
        "Kind": s.kind.capitalize(),
        "Name": s.key,
        "Parent": s.parent,
        "Labels": s.labels,
        "Created": s.created_at,
        "Updated": s.updated_at,
        "Snapshotter": snapshotter,
    }


@list_command(snapshots, "the keys", "ctrpy snapshots ls")
def ls(app: App, quiet: bool, as_json: bool) -> None:
    """List snapshots: KEY PARENT KIND."""
    sn = _sn(app)
    listing(
        sn.list(), lambda s: s, quiet=quiet, as_json=as_json, kind="SnapshotList", name=lambda s: s.key,
        header=["KEY", "PARENT", "KIND"], row=lambda s: [s.key, s.parent, s.kind.capitalize()],
        to_json=lambda s: s.to_json(sn.name),
    )


@snapshots.command("info")
@click.argument("key")
@pass_app
@examples("ctrpy snapshots info sha256:...")
def info(app: App, key: str) -> None:
    """Print a snapshot's metadata as JSON."""
    sn = _sn(app)
    click.echo(json.dumps(_info(sn.stat(key), sn.name), indent=2))


@snapshots.command("rm", aliases=("remove", "delete", "del"))
@click.argument("keys", nargs=-1, required=True)
@pass_app
@examples("ctrpy snapshots rm sha256:...")
def rm(app: App, keys: tuple[str, ...]) -> None:
    """Remove snapshots (children first: a snapshot with children is refused)."""
    freed = app.client.remove_snapshots(keys, app.snapshotter)
    for key in keys:
        click.echo(key)
    app.freed(freed)


@snapshots.command("tree")
@pass_app
@examples("ctrpy snapshots tree")
def tree(app: App) -> None:
    """Show snapshots as a tree of parents and children, indented as ctr does."""
    # ctr's snapshotTree: nodes in the order they are first seen walking the keys in byte
    # order, a parent not seen yet added as a placeholder root until its own key comes
    nodes: list[str] = []
    parents: dict[str, str] = {}
    children: dict[str, list[str]] = {}

    def add(key: str, parent: str) -> None:
        if key not in parents:
            nodes.append(key)
            children[key] = []
        parents[key] = parent
        if parent:
            if parent not in parents:
                add(parent, "")
            children[parent].append(key)

    for s in sorted(_sn(app).list(), key=lambda s: s.key.encode()):
        add(s.key, s.parent)

    def show(key: str, level: int) -> None:
        click.echo("  " * level + ("\\_" if level else "") + " " + key)
        for child in children[key]:
            show(child, level + 1)

    for key in nodes:
        if not parents[key]:
            show(key, 0)


@snapshots.command("usage")
@click.argument("keys", nargs=-1)
@pass_app
@examples("ctrpy snapshots usage")
def usage(app: App, keys: tuple[str, ...]) -> None:
    """Show disk usage of snapshots (all when no KEY is given): KEY SIZE INODES."""
    sn = _sn(app)
    names = list(keys) or [s.key for s in sn.list()]
    rows = []
    for key in names:
        u = sn.usage(key)
        rows.append([key, human_size(u.size), str(u.inodes)])
    table(sys.stdout, ["KEY", "SIZE", "INODES"], rows)
