"""Options and arguments several commands share, defined once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from ctrpy import filters
from ctrpy.cli.completion import complete_images, complete_snapshotters
from ctrpy.cli.context import App, pass_app
from ctrpy.cli.group import AliasedGroup, examples
from ctrpy.errors import FilterError

PLATFORM_HELP = "Platform to use, e.g. linux/arm64 (repeatable; strict match)."
SNAPSHOTTER_HELP = "Snapshotter to use [env CTRPY_SNAPSHOTTER; default overlayfs where usable, else native]."

platform_option = click.option("--platform", "platforms", multiple=True, help=PLATFORM_HELP)
snapshotter_option = click.option(
    "--snapshotter", default=None, envvar="CTRPY_SNAPSHOTTER", help=SNAPSHOTTER_HELP,
    shell_complete=complete_snapshotters,
)
image_argument = click.argument("ref", metavar="IMAGE", shell_complete=complete_images)


def _quiet(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        ctx.find_object(App).quiet = True  # type: ignore[union-attr]  # the root group made it


quiet_option = click.option(
    "-q", "--quiet", is_flag=True, expose_value=False, callback=_quiet,
    help="Print only data, no progress or messages: the global -q, also accepted here.",
)
"""``-q`` on a command that prints data and messages: the same as ``ctrpy -q`` (the list
commands have their own ``-q``: only the names)."""


class FilterType(click.ParamType):  # type: ignore[type-arg]  # generic only in newer click
    """One filter argument in containerd's syntax (see :mod:`ctrpy.filters`); one that does
    not parse is a usage error naming it."""

    name = "filter"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> filters.Filter:
        if not isinstance(value, str):
            return value  # type: ignore[no-any-return]  # already parsed
        try:
            return filters.parse(value)
        except FilterError as e:
            self.fail(str(e), param, ctx)


filter_argument = click.argument("where", nargs=-1, metavar="[FILTER]...", type=FilterType())
"""``[FILTER]...``: each is ``selector[,selector...]`` (all must match); an object is listed
when any FILTER matches it (containerd's rule)."""


F = TypeVar("F", bound=Callable[..., Any])


def list_options(what: str) -> Callable[[F], F]:
    """A list command's ``-q`` (only ``what``: the names, ids, digests...) and ``--json``."""

    def wrap(f: F) -> F:
        f = click.option("--json", "as_json", is_flag=True, help="Print a JSON envelope instead of a table.")(f)
        return click.option("-q", "--quiet", is_flag=True, help=f"Print only {what}.")(f)

    return wrap


def list_command(
    group: AliasedGroup, what: str, *example_lines: str, filtered: bool = False
) -> Callable[[Callable[..., Any]], click.Command]:
    """A group's ``ls`` (alias ``list``) command: :func:`list_options` for ``what``, the
    ``[FILTER]...`` argument when ``filtered``, the :class:`App`, and its examples.  The
    function below gets ``app, quiet, as_json`` (and ``where``)."""

    def wrap(f: Callable[..., Any]) -> click.Command:
        f = pass_app(examples(*example_lines)(f))
        if filtered:
            f = filter_argument(f)
        return group.command("ls", aliases=("list",))(list_options(what)(f))

    return wrap
