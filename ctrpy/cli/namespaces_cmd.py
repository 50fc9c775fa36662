"""``ctrpy namespaces``: list, create, label and remove namespaces."""

from __future__ import annotations

import click

from ctrpy.cli.completion import complete_namespaces
from ctrpy.cli.context import App, pass_app
from ctrpy.cli.group import examples, plain_group
from ctrpy.cli.labelcmd import label_command
from ctrpy.cli.options import list_command
from ctrpy.cli.params import parse_labels
from ctrpy.cli.render import labels_cell, listing
from ctrpy.metadata import namespaces as ns_rules

namespaces = plain_group(
    "namespaces", "Manage namespaces (images and content are kept per namespace).", "ctrpy namespaces ls"
)


@list_command(namespaces, "the names", "ctrpy ns ls")
def ls(app: App, quiet: bool, as_json: bool) -> None:
    """List namespaces: NAME LABELS."""
    listing(
        app.client.namespaces.list(), lambda item: item, quiet=quiet, as_json=as_json, kind="NamespaceList",
        name=lambda item: item[0], header=["NAME", "LABELS"], row=lambda item: [item[0], labels_cell(item[1])],
        to_json=lambda item: {"name": item[0], "labels": item[1]},
    )


@namespaces.command("create")
@click.argument("name")
@click.argument("labels", nargs=-1)
@pass_app
@examples("ctrpy ns create ci team=infra")
def create(app: App, name: str, labels: tuple[str, ...]) -> None:
    """Create a namespace, optionally with k=v labels."""
    ns_rules.validate(name)
    app.client.namespaces.create(name, parse_labels(labels, param="LABELS"))


namespaces.add_command(label_command(
    metavar="NAME", noun="a namespace", example="ctrpy ns label ci team=",
    set_labels=lambda app, name, changes: app.client.namespaces.set_labels(name, changes), complete=complete_namespaces,
))


@namespaces.command("rm", aliases=("remove", "delete", "del"))
@click.argument("names", nargs=-1, required=True, shell_complete=complete_namespaces)
@pass_app
@examples("ctrpy ns rm ci")
def rm(app: App, names: tuple[str, ...]) -> None:
    """Remove namespaces; refuses one that still holds images or snapshots."""
    for name in names:
        app.freed(app.client.remove_namespace(name))
        click.echo(name)
