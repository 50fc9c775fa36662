"""``ctrpy content``: the blobs of the content store."""

from __future__ import annotations

import click

from ctrpy.cli.context import App, pass_app
from ctrpy.cli.group import AliasedGroup
from ctrpy.cli.params import Duration, parse_labels, stdin_binary, stdout_binary
from ctrpy.cli.render import age, human_size, labels_cell, listing
from ctrpy.content import Info
from ctrpy.oci import digest as _digest
from ctrpy.streams import CHUNK


@click.group(cls=AliasedGroup)
def content() -> None:
    """Manage the content store: list, get, ingest, label and remove blobs.

    \b
    Example:
      $ ctrpy content ls
    """


@content.command("ls", aliases=("list",))
@click.option("-q", "--quiet", is_flag=True, help="Print only the digests.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON envelope instead of a table.")
@pass_app
def ls(app: App, quiet: bool, as_json: bool) -> None:
    """List blobs: DIGEST SIZE AGE LABELS.

    \b
    Example:
      $ ctrpy content ls -q
    """
    listing(
        app.client.content.list(), lambda i: i, quiet=quiet, as_json=as_json, kind="ContentList",
        name=lambda i: i.digest, header=["DIGEST", "SIZE", "AGE", "LABELS"],
        row=lambda i: [i.digest, str(i.size), age(i.created_at), labels_cell(i.labels)],
        to_json=Info.to_json,
    )


@content.command("get")
@click.argument("digest")
@pass_app
def get(app: App, digest: str) -> None:
    """Write a blob's raw bytes to stdout (verified while read).

    \b
    Example:
      $ ctrpy content get sha256:... | jq .
    """
    _digest.validate(digest)
    out = stdout_binary()
    with app.client.content.open(digest) as f:
        while chunk := f.read(CHUNK):
            out.write(chunk)
    out.flush()


@content.command("ingest")
@click.option("--expected-digest", default=None, help="Fail unless the bytes have this digest.")
@click.option("--expected-size", type=click.IntRange(min=0), default=None, help="Fail unless exactly this many bytes arrive.")
@click.option("--label", "labels", multiple=True, metavar="K=V", help="Label the blob (repeatable).")
@click.argument("ref")
@pass_app
def ingest(app: App, expected_digest: str | None, expected_size: int | None, labels: tuple[str, ...], ref: str) -> None:
    """Store the bytes on stdin as a blob and print its digest (REF names the ingest, as in ctr).

    \b
    Example:
      $ echo hello | ctrpy content ingest hello
    """
    if expected_digest is not None:
        _digest.validate(expected_digest)
    label_map = parse_labels(labels)
    info = app.client.content.ingest(
        stdin_binary(), expected_digest, expected_size, label_map
    )
    click.echo(info.digest)


@content.command("rm", aliases=("remove", "delete", "del"))
@click.argument("digests", nargs=-1, required=True)
@pass_app
def rm(app: App, digests: tuple[str, ...]) -> None:
    """Remove blobs from this namespace (their bytes go when no namespace has them).

    \b
    Example:
      $ ctrpy content rm sha256:...
    """
    for d in digests:
        _digest.validate(d)
    store = app.client.content
    for d in digests:
        store.info(d)  # all must exist before any is removed
    for d in digests:
        store.delete(d)
        click.echo(d)


@content.command("label")
@click.argument("digest")
@click.argument("labels", nargs=-1)
@pass_app
def label(app: App, digest: str, labels: tuple[str, ...]) -> None:
    """Set (k=v) or remove (k=) labels on a blob; prints the resulting labels.

    \b
    Example:
      $ ctrpy content label sha256:... containerd.io/gc.root=keep
    """
    merged = app.client.content.set_labels(digest, parse_labels(labels, param="LABELS"))
    click.echo(labels_cell(merged))


@content.command("prune")
@click.option(
    "--older-than", type=Duration(), default="1h", show_default=True,
    help="Only blobs and partial writes at least this old (protects imports running now).",
)
@pass_app
def prune(app: App, older_than: float) -> None:
    """Delete stored bytes no namespace holds, and leftover partial writes.

    Failed imports, `--compress-blobs` originals and removed namespaces leave blob files
    that no `content ls` shows; this frees them. Prints each removed digest.

    \b
    Example:
      $ ctrpy content prune --older-than 0s
    """
    result = app.client.prune_content(older_than)
    for dgst in result.removed:
        click.echo(dgst)
    click.echo(
        f"ctrpy: pruned {len(result.removed)} blobs ({human_size(result.bytes)}) "
        f"and {result.partial} partial writes",
        err=True,
    )
