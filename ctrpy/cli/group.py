"""A click Group whose commands have ctr's aliases (``ls|list``, ``rm|remove|delete|del``),
and may be registered by where they live: imported when first named (``ctrpy images push``
loads neither the snapshot commands nor the archive formats; see DESIGN.md, "Start-up"),
and the one shape of the example block every command's help ends with (:func:`examples`)."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, TypeVar

import click

COMMAND_KEY = "ctrpy.command"
"""Where :meth:`AliasedGroup.resolve_command` leaves the command being run, in the
``meta`` every context of one invocation shares (the error hints read its options)."""


def running_command(ctx: click.Context) -> click.Command | None:
    """The innermost command this invocation resolved (``push`` for ``ctrpy images push``)."""
    cmd = ctx.meta.get(COMMAND_KEY)
    return cmd if isinstance(cmd, click.Command) else None


class AliasedGroup(click.Group):
    """Commands carry ``aliases``; help lists ``ls, list``; unknown names list the valid ones."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._aliases: dict[str, str] = {}
        self._lazy: dict[str, _Lazy] = {}
        self.on_load: Callable[[click.Command], None] | None = None  # given each command loaded

    def add_lazy(self, name: str, where: str, aliases: tuple[str, ...] = (),
                 more: Mapping[str, str] | None = None) -> None:
        """Register the command ``name`` as ``"module:attribute"``, with ``aliases``.  A group
        gets the commands ``more`` names (name -> ``"module:attribute"``) registered the same
        way when it loads, each imported when it is first named in turn."""
        self._lazy[name] = _Lazy(where, aliases, dict(more or {}))
        self._aliases.update(dict.fromkeys(aliases, name))

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self._lazy})

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        super().add_command(cmd, name)
        for alias in getattr(cmd, "aliases", ()):
            self._aliases[alias] = name or cmd.name or ""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        name = self._aliases.get(cmd_name, cmd_name)
        if name not in self.commands and name in self._lazy:
            self._load(name)
        return super().get_command(ctx, name)

    def _load(self, name: str) -> None:
        lazy = self._lazy.pop(name)
        cmd = _located(lazy.where)
        if cmd.name != name:
            raise RuntimeError(f"{lazy.where} is the command {cmd.name!r}, registered as {name!r}")
        cmd.aliases = lazy.aliases  # type: ignore[attr-defined]
        if lazy.more:
            if not isinstance(cmd, AliasedGroup):
                raise RuntimeError(f"{lazy.where} is not a group of commands, so it cannot take more")
            cmd.on_load = self.on_load
            for sub, where in lazy.more.items():
                cmd.add_lazy(sub, where)
        self.add_command(cmd)
        if self.on_load is not None:
            self.on_load(cmd)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            _name, cmd, rest = super().resolve_command(ctx, args)
        except click.UsageError as e:
            no_such = getattr(click.exceptions, "NoSuchCommand", None)  # click 8.4+: "Did you mean"
            if no_such is None or not isinstance(e, no_such):
                raise
            # click suggests from the commands loaded so far; the lazy ones count as well
            raise no_such(e.command_name, possibilities=self.list_commands(ctx), ctx=e.ctx) from None
        if cmd is not None:
            ctx.meta[COMMAND_KEY] = cmd  # the last one resolved is the command that runs
        return (cmd.name if cmd else None), cmd, rest


    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            cmd = self.get_command(ctx, name)
            if cmd is None or cmd.hidden:
                continue
            label = ", ".join([name, *getattr(cmd, "aliases", ())])
            rows.append((label, cmd.get_short_help_str(limit=90)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def _named(self, decorator: Callable[[Any], Any], aliases: tuple[str, ...]) -> Callable[[Any], Any]:
        """Wrap click's decorator: the made command carries ``aliases``, which resolve here."""

        def wrap(f: Any) -> Any:
            cmd = decorator(f)
            cmd.aliases = aliases
            self._aliases.update({a: cmd.name or "" for a in aliases})
            return cmd

        return wrap

    def command(  # type: ignore[override]
        self, *args: Any, aliases: tuple[str, ...] = (), **kwargs: Any
    ) -> Callable[[Callable[..., Any]], click.Command]:
        return self._named(super().command(*args, **kwargs), aliases)

    def group(  # type: ignore[override]
        self, *args: Any, aliases: tuple[str, ...] = (), **kwargs: Any
    ) -> Callable[[Callable[..., Any]], click.Group]:
        kwargs.setdefault("cls", AliasedGroup)
        return self._named(super().group(*args, **kwargs), aliases)


def aliased_group(name: str) -> Callable[[Callable[..., Any]], AliasedGroup]:
    """A top-level command group; its own aliases (``images``: ``image``, ``i``) are given
    where it is registered (:meth:`AliasedGroup.add_lazy`)."""
    return click.group(name, cls=AliasedGroup)  # type: ignore[return-value]


def plain_group(name: str, summary: str, *example_lines: str) -> AliasedGroup:
    """A top-level group that only holds commands (no options, nothing to run): its help
    is ``summary`` and its examples (:func:`example_block`)."""
    return AliasedGroup(name, help=f"{summary}\n\n{example_block(example_lines)}")


class _Lazy(NamedTuple):
    where: str
    aliases: tuple[str, ...]
    more: dict[str, str]


def _located(where: str) -> click.Command:
    """The command at ``"module:attribute"``."""
    module, _, attribute = where.partition(":")
    found = getattr(importlib.import_module(module), attribute)
    if not isinstance(found, click.Command):
        raise RuntimeError(f"{where} is not a command")
    return found


F = TypeVar("F", bound=Callable[..., Any])


def example_block(commands: tuple[str, ...]) -> str:
    """The block every command's help ends with: ``Example:`` (``Examples:`` for more
    than one) and the command lines, each after ``$``, kept as written (``\\b``)."""
    heading = "Example:" if len(commands) == 1 else "Examples:"
    return "\b\n" + heading + "".join(f"\n  $ {c}" for c in commands)


def examples(*commands: str) -> Callable[[F], F]:
    """Ends the help of the command defined below with :func:`example_block`; it goes
    right above the ``def``, under the ``command`` decorator that reads the help."""
    if not commands:
        raise ValueError("examples() needs at least one command line")

    def wrap(f: F) -> F:
        f.__doc__ = f"{inspect.cleandoc(f.__doc__ or '')}\n\n{example_block(commands)}"
        return f

    return wrap
