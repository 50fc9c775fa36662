"""A click Group whose commands have ctr's aliases (``ls|list``, ``rm|remove|delete|del``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click


class AliasedGroup(click.Group):
    """Commands carry ``aliases``; help lists ``ls, list``; unknown names list the valid ones."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._aliases: dict[str, str] = {}

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        super().add_command(cmd, name)
        for alias in getattr(cmd, "aliases", ()):
            self._aliases[alias] = name or cmd.name or ""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return super().get_command(ctx, self._aliases.get(cmd_name, cmd_name))

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        _name, cmd, rest = super().resolve_command(ctx, args)
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


def aliased_group(name: str, *aliases: str) -> Callable[[Callable[..., Any]], AliasedGroup]:
    """A top-level command group with ctr's aliases (``images``: ``image``, ``i``)."""

    def wrap(f: Callable[..., Any]) -> AliasedGroup:
        grp = click.group(name, cls=AliasedGroup)(f)
        grp.aliases = aliases  # type: ignore[attr-defined]
        return grp  # type: ignore[return-value]

    return wrap
