"""``ctrpy content``: the blobs of the content store."""

from __future__ import annotations

import click

from ctrpy import filters
from ctrpy.cli.context import App, pass_app
from ctrpy.cli.group import examples, plain_group
from ctrpy.cli.labelcmd import label_command
from ctrpy.cli.options import list_command
from ctrpy.cli.params import Duration, parse_labels, stdin_binary, stdout_binary
from ctrpy.cli.render import age, go_human_size, human_size, labels_cell, listing
from ctrpy.content import Info
from ctrpy.oci import digest as _digest
from ctrpy.streams import CHUNK

content = plain_group(
    "content", "Manage the content store: list, get, ingest, label and remove blobs.", "ctrpy content ls"
)


@list_command(content, "the digests", "ctrpy content ls -q",
              "ctrpy content ls 'labels.\"containerd.io/uncompressed\"'", filtered=True)
def ls(app: App, quiet: bool, as_json: bool, where: tuple[filters.Filter, ...]) -> None:
    """List blobs: DIGEST SIZE AGE LABELS, as ctr prints them (tab-separated, sizes as
    63.37MB); --json for exact sizes and times.

    FILTERs are containerd's: digest and labels.KEY, with == != or ~= (a regular
    expression); a comma joins selectors that must all match, and a blob is listed when
    any FILTER matches."""
    listing(
        app.client.content.list(filters.any_of(where)), lambda i: i, quiet=quiet, as_json=as_json,
        kind="ContentList", name=lambda i: i.digest, header=["DIGEST", "SIZE", "AGE", "LABELS"],
        row=lambda i: [i.digest, go_human_size(i.size), age(i.created_at), labels_cell(i.labels)],
        to_json=Info.to_json, padchar="\t", header_end="", row_end="",
    )


@content.command("get")
@click.argument("digest")
@pass_app
@examples("ctrpy content get sha256:... | jq .")
def get(app: App, digest: str) -> None:
    """Write a blob's raw bytes to stdout (verified while read)."""
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
@examples("echo hello | ctrpy content ingest hello")
def ingest(app: App, expected_digest: str | None, expected_size: int | None, labels: tuple[str, ...], ref: str) -> None:
    """Store the bytes on stdin as a blob and print its digest (REF names the ingest, as in ctr)."""
    if expected_digest is not None:
        _digest.validate(expected_digest)
    label_map = parse_labels(labels)
    info = app.client.ingest(stdin_binary(), expected=expected_digest, expected_size=expected_size, labels=label_map)
    click.echo(info.digest)


@content.command("rm", aliases=("remove", "delete", "del"))
@click.argument("digests", nargs=-1, required=True)
@pass_app
@examples("ctrpy content rm sha256:...")
def rm(app: App, digests: tuple[str, ...]) -> None:
    """Remove blobs from this namespace, then free their bytes when no namespace has them."""
    freed = app.client.remove_content(digests)  # all must exist before any is removed
    for d in digests:
        click.echo(d)
    app.freed(freed)


@content.command("verify")
@click.option("--all", "all_blobs", is_flag=True, help="Verify every stored blob (and every snapshot's tree).")
@click.option("--fix", is_flag=True, help="Delete corrupt blobs and forget snapshots whose tree is gone.")
@click.argument("digests", nargs=-1)
@pass_app
@examples("ctrpy content verify --all")
def verify(app: App, all_blobs: bool, fix: bool, digests: tuple[str, ...]) -> None:
    """Re-hash stored blobs and report those whose bytes no longer match their digest.

    Prints one line per problem: `DIGEST corrupt (hashes to DIGEST)`, `DIGEST missing`,
    `snapshot SNAPSHOTTER/KEY (namespace NS) has no tree`. Exit 1 when problems remain
    (none with --fix: the next import or pull brings the blobs back)."""
    if all_blobs == bool(digests):
        raise click.UsageError("name the DIGESTs to verify, or --all")
    report = app.client.verify(None if all_blobs else digests, fix=fix)
    for dgst, actual in report.corrupt:
        click.echo(f"{dgst} corrupt (hashes to {actual})")
    for dgst in report.missing:
        click.echo(f"{dgst} missing")
    for ns, sn, key in report.broken_snapshots:
        click.echo(f"snapshot {sn}/{key} (namespace {ns}) has no tree")
    problems = len(report.corrupt) + len(report.missing) + len(report.broken_snapshots)
    if not app.quiet:
        done = " (removed)" if fix and problems else ""
        click.echo(f"ctrpy: verified {report.checked} blobs: {problems} problems{done}", err=True)
    if problems and not fix:
        raise click.exceptions.Exit(1)


content.add_command(label_command(
    metavar="DIGEST", noun="a blob", example="ctrpy content label sha256:... containerd.io/gc.root=keep",
    set_labels=lambda app, dgst, changes: app.client.content.set_labels(dgst, changes),
))


@content.command("prune")
@click.option(
    "--older-than", type=Duration(), default="1h", show_default=True,
    help="Keep partial writes nothing holds until they are this old (0s: remove them all).",
)
@pass_app
@examples("ctrpy content prune --older-than 0s")
def prune(app: App, older_than: float) -> None:
    """Collect garbage in every namespace: blobs and snapshots no image, lease or gc.root
    label holds, partial writes of operations that are gone, and snapshot directories an
    interrupted run left.  Prints each removed digest; says on stderr what was freed
    (not with -q)."""
    result = app.client.collect(grace=older_than)
    for dgst in result.digests:
        click.echo(dgst)
    if not app.quiet:
        click.echo(
            f"ctrpy: pruned {result.blobs} blobs, {result.snapshots} snapshots and {result.partial} "
            f"partial writes ({human_size(result.bytes)})",
            err=True,
        )
