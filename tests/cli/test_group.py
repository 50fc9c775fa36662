"""Command groups (``ctrpy.cli.group``): ctr's aliases, and commands registered by where they
live, imported when first named."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from ctrpy.cli.group import AliasedGroup, example_block, examples, plain_group

MODULE = """
import click

from ctrpy.cli.group import AliasedGroup


@click.command("hello")
def hello() -> None:
    click.echo("hello")


@click.group("tools", cls=AliasedGroup)
def tools() -> None:
    pass


@click.command("extra")
def extra() -> None:
    click.echo("extra")


PAIR = (extra,)
"""


@pytest.fixture
def module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The module ``lazy_cmds`` (not imported yet) with the commands ``hello``, ``tools``
    and ``extra``."""
    (tmp_path / "lazy_cmds.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("lazy_cmds", None)
    yield "lazy_cmds"
    sys.modules.pop("lazy_cmds", None)


def root() -> AliasedGroup:
    @click.group(cls=AliasedGroup)
    def cli() -> None:
        pass

    return cli  # type: ignore[return-value]


def test_a_lazy_command_is_imported_when_first_named_and_only_then(module: str) -> None:
    cli = root()
    cli.add_lazy("hello", "lazy_cmds:hello")
    assert module not in sys.modules
    r = CliRunner().invoke(cli, ["hello"])
    assert (r.exit_code, r.output) == (0, "hello\n")
    assert module in sys.modules


def test_a_lazy_command_answers_to_its_aliases(module: str) -> None:
    cli = root()
    cli.add_lazy("hello", "lazy_cmds:hello", aliases=("hi", "h"))
    assert CliRunner().invoke(cli, ["h"]).output == "hello\n"
    assert cli.get_command(click.Context(cli), "hi") is cli.commands["hello"]


def test_help_lists_a_lazy_command_with_its_aliases(module: str) -> None:
    cli = root()
    cli.add_lazy("hello", "lazy_cmds:hello", aliases=("hi",))
    assert "hello, hi" in CliRunner().invoke(cli, ["--help"]).output


def test_listing_the_commands_imports_nothing(module: str) -> None:
    cli = root()
    cli.add_lazy("hello", "lazy_cmds:hello")
    assert cli.list_commands(click.Context(cli)) == ["hello"]
    assert module not in sys.modules


def test_more_commands_join_a_lazy_group_when_it_loads(module: str) -> None:
    cli = root()
    cli.add_lazy("tools", "lazy_cmds:tools", more={"extra": "lazy_cmds:extra"})
    assert CliRunner().invoke(cli, ["tools", "extra"]).output == "extra\n"


def test_more_commands_are_loaded_by_the_group_as_they_are_named(module: str) -> None:
    cli = root()
    seen: list[str | None] = []
    cli.on_load = lambda cmd: seen.append(cmd.name)
    cli.add_lazy("tools", "lazy_cmds:tools", more={"extra": "lazy_cmds:extra"})
    tools = cli.get_command(click.Context(cli), "tools")
    assert isinstance(tools, AliasedGroup)
    assert tools.list_commands(click.Context(tools)) == ["extra"]
    assert "extra" not in tools.commands
    CliRunner().invoke(cli, ["tools", "extra"])
    assert seen == ["tools", "extra"]  # the group passes its on_load on


def test_more_commands_for_a_command_that_is_no_group_are_an_error(module: str) -> None:
    cli = root()
    cli.add_lazy("hello", "lazy_cmds:hello", more={"extra": "lazy_cmds:extra"})
    with pytest.raises(RuntimeError, match="lazy_cmds:hello is not a group of commands"):
        cli.get_command(click.Context(cli), "hello")


def test_a_lazy_name_that_is_no_command_is_an_error(module: str) -> None:
    cli = root()
    cli.add_lazy("pair", "lazy_cmds:PAIR")
    with pytest.raises(RuntimeError, match="lazy_cmds:PAIR is not a command"):
        cli.get_command(click.Context(cli), "pair")


def test_on_load_is_given_each_command_as_it_loads(module: str) -> None:
    cli = root()
    seen: list[str | None] = []
    cli.on_load = lambda cmd: seen.append(cmd.name)
    cli.add_lazy("hello", "lazy_cmds:hello")
    cli.add_lazy("tools", "lazy_cmds:tools")
    CliRunner().invoke(cli, ["hello"])
    CliRunner().invoke(cli, ["hello"])
    assert seen == ["hello"]


def test_a_lazy_command_registered_under_another_name_is_an_error(module: str) -> None:
    cli = root()
    cli.add_lazy("greet", "lazy_cmds:hello")
    with pytest.raises(RuntimeError, match=r"lazy_cmds:hello is the command 'hello', registered as 'greet'"):
        cli.get_command(click.Context(cli), "greet")


def test_an_unknown_name_suggests_the_lazy_commands_close_to_it(module: str) -> None:
    if not hasattr(click.exceptions, "NoSuchCommand"):
        pytest.skip("click before 8.4 suggests no command")
    cli = root()
    cli.add_lazy("hello", "lazy_cmds:hello")
    r = CliRunner().invoke(cli, ["helo"])
    assert r.exit_code == 2
    assert "Did you mean 'hello'?" in r.output
    assert module not in sys.modules  # suggesting loads nothing


def test_an_example_block_is_named_for_how_many_lines_it_has() -> None:
    assert example_block(("ctrpy images ls",)) == "\b\nExample:\n  $ ctrpy images ls"
    assert example_block(("ctrpy a", "ctrpy b")) == "\b\nExamples:\n  $ ctrpy a\n  $ ctrpy b"


def test_examples_end_the_help_of_the_command_below_them() -> None:
    @click.command("demo")
    @examples("ctrpy demo --now")
    def demo() -> None:
        """Do a thing.

        More about it."""

    assert demo.help == "Do a thing.\n\nMore about it.\n\n\b\nExample:\n  $ ctrpy demo --now"


def test_examples_without_a_command_line_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        examples()


def test_a_plain_group_shows_its_summary_and_examples_and_lists_its_commands() -> None:
    tools = plain_group("tools", "Manage tools.", "ctrpy tools ls")

    @tools.command("ls", aliases=("list",))
    def ls() -> None:
        click.echo("a hammer")

    help_text = CliRunner().invoke(tools, ["--help"]).output
    assert "Manage tools." in help_text
    assert "  Example:\n    $ ctrpy tools ls\n" in help_text
    assert "ls, list" in help_text
    assert CliRunner().invoke(tools, ["list"]).output == "a hammer\n"
