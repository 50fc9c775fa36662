"""The ``ctrpy`` command group, its global options, and the ONE place errors become exit codes.

Exit codes: 0 success; 1 an error (one line on stderr: ``ctrpy: error: ...``); 2 a usage
error (click's usage message); 130 interrupted.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence
from typing import IO, Any, NoReturn

import click

import ctrpy
from ctrpy.cli.completion import complete_namespaces
from ctrpy.cli.context import App
from ctrpy.cli.group import AliasedGroup
from ctrpy.cli.progress import MODES
from ctrpy.cli.render import message_line
from ctrpy.errors import (
    CtrpyError,
    ImageExists,
    ImageNotFound,
    MountBusy,
    PlatformContentMissing,
    PlatformNotFound,
    SnapshotterUnavailable,
)
from ctrpy.metadata import namespaces


class CommandFailed(click.ClickException):
    """A CtrpyError or OSError on its way to the user: one line, exit 1."""

    exit_code = 1

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(message_line("ctrpy: error: ", self.message), err=True)


def hint(e: CtrpyError) -> str:
    """What the user can do about ``e``, in the CLI's own words (its flags): the library
    carries the data, this is the one place that names flags."""
    if isinstance(e, PlatformContentMissing):
        if e.all_platforms:
            return "--all-platforms needs every platform's content"
        return "import or pull it with --platform or --all-platforms"
    if isinstance(e, PlatformNotFound):
        return "use --platform or --all-platforms"
    if isinstance(e, ImageExists):
        return "use --force to replace it"
    if isinstance(e, ImageNotFound) and e.suggestions:
        return "did you mean " + " or ".join(repr(s) for s in e.suggestions) + "?"
    if isinstance(e, SnapshotterUnavailable):
        return "use --snapshotter native"
    if isinstance(e, MountBusy):
        return f"remove it with `ctrpy snapshots rm {e.key}` or `ctrpy images unmount --rm {e.target}` first"
    return ""


def with_hint(e: CtrpyError) -> str:
    text = hint(e)
    return f"{e} ({text})" if text else str(e)


def _describe_os_error(e: OSError) -> str:
    text = e.strerror or str(e)
    return f"{e.filename}: {text}" if e.filename else text


class RootGroup(AliasedGroup):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except CtrpyError as e:
            self._maybe_trace(ctx)
            raise CommandFailed(with_hint(e)) from e
        except BrokenPipeError:
            # the reader went away (`ctrpy ... | head`): not our error to report
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise click.exceptions.Exit(1) from None
        except OSError as e:
            self._maybe_trace(ctx)
            raise CommandFailed(_describe_os_error(e)) from e
        except KeyboardInterrupt:
            click.echo("ctrpy: interrupted", err=True)
            raise click.exceptions.Exit(130) from None
        except Exception as e:
            self._maybe_trace(ctx)
            raise CommandFailed(f"internal error: {type(e).__name__}: {e} (run with --debug for details)") from e

    @staticmethod
    def _maybe_trace(ctx: click.Context) -> None:
        app = ctx.find_object(App)
        if app is not None and app.debug:
            traceback.print_exc(file=sys.stderr)


@click.group(cls=RootGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--root",
    envvar="CTRPY_ROOT",
    type=click.Path(path_type=str),
    help="Root directory of the store [env CTRPY_ROOT; default /var/lib/ctrpy as root, "
    "else $XDG_DATA_HOME/ctrpy].",
)
@click.option(
    "-n",
    "--namespace",
    envvar=["CTRPY_NAMESPACE", "CONTAINERD_NAMESPACE"],
    default=namespaces.DEFAULT,
    show_default=True,
    help="Namespace to use [env CTRPY_NAMESPACE, then CONTAINERD_NAMESPACE].",
    shell_complete=complete_namespaces,
)
@click.option("--debug", is_flag=True, help="Show tracebacks on errors [env CTRPY_DEBUG: any non-empty value].")
@click.option(
    "--progress",
    type=click.Choice(MODES),
    default="auto",
    show_default=True,
    envvar="CTRPY_PROGRESS",
    help="How progress is shown: auto (bars on stderr when it is a terminal, else plain), plain "
    "(ctr's 'unpacking ...done' lines on stdout, no escape codes), none (only data) [env CTRPY_PROGRESS].",
)
@click.option(
    "-q", "--quiet", is_flag=True,
    help="Print only data (e.g. the imported image names, one per line); as --progress none.",
)
@click.version_option(ctrpy.__version__, "--version", "-v", prog_name="ctrpy", message="%(prog)s version %(version)s")
@click.pass_context
def cli(ctx: click.Context, root: str | None, namespace: str, debug: bool, progress: str, quiet: bool) -> None:
    """ctrpy: a daemonless, ctr-compatible container image tool.

    Imports and exports image archives (OCI and docker save), keeps them in an embedded
    store under one root directory, and unpacks them into snapshots. No daemon.

    \b
    Example:
      $ ctrpy images import busybox.tar
    """
    namespaces.validate(namespace)
    debug = debug or bool(os.environ.get("CTRPY_DEBUG"))
    # a resource, not a close callback: it learns whether the command failed (see App.__exit__)
    ctx.obj = ctx.with_resource(App(root=root, namespace=namespace, debug=debug, progress=progress, quiet=quiet))


@cli.command("version")
def version_cmd() -> None:
    """Print the version of ctrpy and of what it runs on.

    \b
    Example:
      $ ctrpy version
    """
    import platform

    from ctrpy.oci import Platform

    click.echo(f"ctrpy:\n  Version:  {ctrpy.__version__}\n  Python:   {platform.python_version()}")
    click.echo(f"  Platform: {Platform.host()}")


def _register() -> None:
    """Every command group, added here and only here."""
    from ctrpy.cli import completion, content, images, leases, namespaces_cmd, rootfs, snapshots

    for cmd in rootfs.COMMANDS:
        images.images.add_command(cmd)
    cli.add_command(images.images)
    cli.add_command(content.content)
    cli.add_command(leases.leases)
    cli.add_command(namespaces_cmd.namespaces)
    cli.add_command(snapshots.snapshots)
    cli.add_command(completion.completion)


_register()


def main(argv: Sequence[str] | None = None) -> NoReturn:
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="ctrpy")
    except SystemExit:
        raise
    sys.exit(0)
