"""``ctrpy leases``: create, list and remove leases (what holds content for a while)."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from ctrpy.cli.context import App, pass_app
from ctrpy.cli.group import examples, plain_group
from ctrpy.cli.options import list_command
from ctrpy.cli.params import Duration, parse_labels
from ctrpy.cli.render import labels_cell, listing
from ctrpy.metadata.leases import LABEL_EXPIRE, Lease, expiry_label

leases = plain_group(
    "leases", "Manage leases: content and snapshots held without an image (for a while).", "ctrpy leases create --expires 1h"
)


def _created(lease: Lease) -> str:
    """ctr prints the creation time as RFC 3339 in local time."""
    try:
        t = datetime.strptime(lease.created_at[:26], "%Y-%m-%dT%H:%M:%S.%f")
    except ValueError:
        return lease.created_at
    return t.replace(tzinfo=UTC).astimezone().replace(microsecond=0).isoformat()


@leases.command("create")
@click.option("--id", "lease_id", default=None, help="The lease's id [default: a new random one].")
@click.option(
    "--expires", type=Duration(), default="24h", show_default=True,
    help="How long until the lease expires (0s: never, as ctr).",
)
@click.argument("labels", nargs=-1, metavar="[K=V...]")
@pass_app
@examples("ctrpy leases create --id keep-build --expires 2h team=ci")
def create(app: App, lease_id: str | None, expires: float, labels: tuple[str, ...]) -> None:
    """Create a lease and print its id."""
    label_map = parse_labels(labels, param="LABELS")
    if expires > 0:
        label_map[LABEL_EXPIRE] = expiry_label(expires)
    click.echo(app.client.leases.create(lease_id, label_map).id)


@list_command(leases, "the ids", "ctrpy leases ls")
def ls(app: App, quiet: bool, as_json: bool) -> None:
    """List leases: ID CREATED AT LABELS."""
    listing(
        app.client.leases.list(), lambda lease: lease, quiet=quiet, as_json=as_json, kind="LeaseList",
        name=lambda lease: lease.id, header=["ID", "CREATED AT", "LABELS"],
        row=lambda lease: [lease.id, _created(lease), labels_cell(lease.labels)],
        to_json=Lease.to_json,
    )


@leases.command("rm", aliases=("remove", "delete", "del"))
@click.option("--sync", is_flag=True, help="Accepted for ctr: what the leases held is always freed before returning.")
@click.argument("ids", nargs=-1, required=True)
@pass_app
@examples("ctrpy leases rm keep-build")
def rm(app: App, ids: tuple[str, ...], sync: bool) -> None:
    """Remove leases, then free what only they held."""
    del sync
    store = app.client.leases
    for lease_id in ids:
        store.get(lease_id)  # all must exist before any is removed
    for lease_id in ids:
        store.delete(lease_id)
        click.echo(lease_id)
    app.freed(app.client.collect())
