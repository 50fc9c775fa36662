"""The ``ctrpy`` command group, its global options, and the ONE place errors become exit codes.

Exit codes: 0 success; 1 an error (one line on stderr: ``ctrpy: error: ...``); 2 a usage
error (click's usage message); 130 interrupted; 141 (128 + SIGPIPE) when the reader of
stdout went away (``ctrpy images ls | head -1``): nothing is said, as ``cat`` and ``ctr``
say nothing when the pipe closes.
"""

from __future__ import annotations

import atexit
import os
import select
import shutil
import subprocess
import sys
import traceback
from collections.abc import Sequence
from typing import IO, Any, NoReturn

import click

import ctrpy
from ctrpy.cli.completion import complete_namespaces
from ctrpy.cli.context import App
from ctrpy.cli.group import AliasedGroup, examples, running_command
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
from ctrpy.remote.errors import AuthError, RemoteError

EXIT_BROKEN_PIPE = 128 + 13  # what a shell reports for a process killed by SIGPIPE


class CommandFailed(click.ClickException):
    """A CtrpyError or OSError on its way to the user: one line, exit 1."""

    exit_code = 1

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(message_line("ctrpy: error: ", self.message), err=True)


REMOTE_HINTS = {
    "tls-verify": "give its CA with --tlscacert, or skip verification with -k/--skip-verify",
    "plain-http": "use --plain-http",
    "https": "drop --plain-http; for a loopback registry, give --tlscacert or -k so that TLS is used",
    "client-cert": "give a client certificate with --tlscert and --tlskey",
    "password": "give it with -u USER:PASSWORD or --password-stdin (or type it on a terminal)",
}


def options_of(cmd: click.Command | None) -> frozenset[str] | None:
    """The option names ``cmd`` takes (``--platform``, ``-q``...); None when unknown."""
    if cmd is None:
        return None
    return frozenset(o for p in cmd.params if isinstance(p, click.Option) for o in (*p.opts, *p.secondary_opts))


def hint(e: CtrpyError, offered: frozenset[str] | None = None) -> str:
    """What the user can do about ``e``, in the CLI's own words (its flags): the library
    carries the data, this is the one place that names flags.  ``offered``: the options of
    the command that failed, when known; a hint names only flags it takes."""
    if isinstance(e, PlatformContentMissing):
        if e.all_platforms:
            return "--all-platforms needs every platform's content"
        return "import or pull it with --platform or --all-platforms"
    if isinstance(e, PlatformNotFound):
        flags = [f for f in ("--platform", "--all-platforms") if offered is None or f in offered]
        return "use " + " or ".join(flags) if flags else ""
    if isinstance(e, ImageExists):
        return "use --force to replace it"
    if isinstance(e, ImageNotFound) and e.suggestions:
        return "did you mean " + " or ".join(repr(s) for s in e.suggestions) + "?"
    if isinstance(e, SnapshotterUnavailable):
        return "use --snapshotter native"
    if isinstance(e, RemoteError) and e.topic in REMOTE_HINTS:
        return REMOTE_HINTS[e.topic]
    if isinstance(e, AuthError) and e.status == 401:
        return "give credentials with -u USER[:PASSWORD], or log in with docker login or skopeo login"
    if isinstance(e, MountBusy):
        return f"remove it with `ctrpy snapshots rm {e.key}` or `ctrpy images unmount --rm {e.target}` first"
    return ""


def with_hint(e: CtrpyError, offered: frozenset[str] | None = None) -> str:
    text = hint(e, offered)
    return f"{e} ({text})" if text else str(e)


def _describe_os_error(e: OSError) -> str:
    text = e.strerror or str(e)
    return f"{e.filename}: {text}" if e.filename else text


def _stdout_reader_gone() -> bool:
    """Has the reading end of stdout been closed?  A pipe (or socket) whose reader went
    away polls as an error; a stdout we cannot poll (tests, an odd stream) is taken to be it."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, ValueError, OSError):
        return True
    poller = select.poll()
    poller.register(fd, 0)
    return any(events & (select.POLLERR | select.POLLHUP) for _fd, events in poller.poll(0))


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so that nothing written later (the flush at exit) fails again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (AttributeError, ValueError, OSError):
        pass


def global_option_hint(e: click.NoSuchOption, group: click.Group) -> click.NoSuchOption:
    """``ctrpy images ls -n x``: -n is ctrpy's, not the command's; say where it goes."""
    for param in group.params:
        if isinstance(param, click.Option) and e.option_name in (*param.opts, *param.secondary_opts):
            value = "" if param.is_flag or param.count else f" {(param.name or '').upper()}"
            path = e.ctx.command_path.split(" ", 1) if e.ctx is not None else ["ctrpy", "COMMAND"]
            example = " ".join([path[0], e.option_name + value, *path[1:]])
            return click.NoSuchOption(e.option_name, ctx=e.ctx, message=(
                f"No such option: {e.option_name} (a global option: put {e.option_name} before "
                f"the command, as in `{example}`)"))
    return e


class RootGroup(AliasedGroup):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.NoSuchOption as e:
            raise global_option_hint(e, self) from None
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except CtrpyError as e:
            self._maybe_trace(ctx)
            raise CommandFailed(with_hint(e, options_of(running_command(ctx)))) from e
        except BrokenPipeError as e:
            if not _stdout_reader_gone():
                self._maybe_trace(ctx)
                raise CommandFailed(_describe_os_error(e)) from e
            # the reader went away (`ctrpy ... | head`): quietly, as cat and ctr do
            _quiet_stdout()
            raise click.exceptions.Exit(EXIT_BROKEN_PIPE) from None
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
@examples("ctrpy images import busybox.tar")
def cli(ctx: click.Context, root: str | None, namespace: str, debug: bool, progress: str, quiet: bool) -> None:
    """ctrpy: a daemonless, ctr-compatible container image tool.

    Imports and exports image archives (OCI and docker save), keeps them in an embedded
    store under one root directory, and unpacks them into snapshots. No daemon."""
    namespaces.validate(namespace)
    debug = debug or bool(os.environ.get("CTRPY_DEBUG"))
    # a resource, not a close callback: it learns whether the command failed (see App.__exit__)
    ctx.obj = ctx.with_resource(App(root=root, namespace=namespace, debug=debug, progress=progress, quiet=quiet))


@cli.command("version")
@examples("ctrpy version")
def version_cmd() -> None:
    """Print the version of ctrpy and of what it runs on."""
    import platform

    from ctrpy.oci import Platform

    click.echo(f"ctrpy:\n  Version:  {ctrpy.__version__}\n  Python:   {platform.python_version()}")
    click.echo(f"  Platform: {Platform.host()}")


@cli.command("help")
@click.option("--man", "as_man", is_flag=True, help="Show the command's man page (man -l on the page installed with ctrpy).")
@click.argument("names", nargs=-1, metavar="[COMMAND]...")
@click.pass_context
@examples("ctrpy help images import", "ctrpy help --man images import")
def help_cmd(ctx: click.Context, as_man: bool, names: tuple[str, ...]) -> None:
    """Show the help of a command: `ctrpy help images ls` is `ctrpy images ls --help`."""
    parent = ctx.parent
    assert parent is not None
    cmd: click.Command = parent.command
    path: list[str] = []
    for name in names:
        sub = cmd.get_command(parent, name) if isinstance(cmd, click.Group) else None
        if sub is None:
            raise click.UsageError(f"No such command {' '.join([*names[: len(path)], name])!r}.")
        parent = click.Context(sub, info_name=sub.name, parent=parent)
        cmd = sub
        path.append(sub.name or name)
    if not as_man:
        click.echo(cmd.get_help(parent))
        return
    from ctrpy.cli.manpages import DIRECTORY, page_name

    page = DIRECTORY / f"{page_name(path)}.1"
    if shutil.which("man") is None:
        raise CommandFailed(f"man is not installed; the page is {page}")
    raise click.exceptions.Exit(subprocess.run(["man", "-l", str(page)], check=False).returncode)


def _leaves(cmd: click.Command) -> list[click.Command]:
    if not isinstance(cmd, click.Group):
        return [cmd]
    return [leaf for sub in cmd.commands.values() for leaf in _leaves(sub)]


def _with_quiet(cmd: click.Command) -> None:
    """docker load -q, podman load -q: every command takes -q where ctrpy takes it, as the
    global one (the list commands have their own: only the names)."""
    from ctrpy.cli.options import quiet_option

    for leaf in _leaves(cmd):
        if not any("-q" in p.opts for p in leaf.params if isinstance(p, click.Option)):
            quiet_option(leaf)


def _register() -> None:
    """Every command group, registered here and only here, by where it lives: a group's
    module is imported when the group is first named (see DESIGN.md, "Start-up")."""
    cli.on_load = _with_quiet
    rootfs = {name: f"ctrpy.cli.rootfs:{name}" for name in ("unpack", "extract", "flatten", "mount", "unmount",
                                                           "check", "usage")}
    cli.add_lazy("images", "ctrpy.cli.images:images", aliases=("image", "i"), more={
        **rootfs, "convert": "ctrpy.cli.convert:convert", "pull": "ctrpy.cli.pull:pull", "push": "ctrpy.cli.push:push"})
    cli.add_lazy("content", "ctrpy.cli.content:content", more={"fetch": "ctrpy.cli.pull:fetch"})
    cli.add_lazy("leases", "ctrpy.cli.leases:leases", aliases=("lease",))
    cli.add_lazy("namespaces", "ctrpy.cli.namespaces_cmd:namespaces", aliases=("namespace", "ns"))
    cli.add_lazy("snapshots", "ctrpy.cli.snapshots:snapshots", aliases=("snapshot",), more={
        name: f"ctrpy.cli.snapshots_edit:{name}" for name in ("prepare", "view", "commit", "mounts", "label", "diff")})
    cli.add_lazy("completion", "ctrpy.cli.completion:completion")
    for cmd in (version_cmd, help_cmd):
        _with_quiet(cmd)


_register()


def main(argv: Sequence[str] | None = None) -> NoReturn:
    code: int | str | None = 0
    stdout = sys.stdout
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="ctrpy")
    except SystemExit as e:
        code = e.code
    if sys.stdout is not stdout:  # click met the closed pipe itself (--help) and wrapped stdout
        sys.stdout = stdout
        _quiet_stdout()
        code = EXIT_BROKEN_PIPE
    try:  # what is still buffered (a table) meets a closed pipe here, not in the command
        sys.stdout.flush()
    except BrokenPipeError:
        _quiet_stdout()
        code = EXIT_BROKEN_PIPE
    sys.exit(code)


def run() -> NoReturn:
    """The ``ctrpy`` program: :func:`main`, then out of the process without tearing the
    interpreter down.

    Freeing every module and object at exit took 30 to 50 ms of each command (a twentieth
    of a push), for a process that ends anyway.  atexit handlers still run, and stdout and
    stderr are flushed, before ``os._exit``; only the teardown is skipped.  A program that
    calls :func:`main` itself gets ``SystemExit`` as before."""
    try:
        main()
    except SystemExit as e:
        code = e.code
    if code is None:
        code = 0
    elif not isinstance(code, int):
        if sys.stderr is not None:
            print(code, file=sys.stderr)
        code = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        if stream is None:  # started with the descriptor closed (`2>&-`)
            continue
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)

