"""The options and commands several command groups share (``ctrpy.cli.options``)."""

from __future__ import annotations

import click
from click.testing import CliRunner

from ctrpy import filters
from ctrpy.cli.context import App
from ctrpy.cli.group import plain_group
from ctrpy.cli.options import list_command

APP = App(root=None, namespace="default")


def test_a_list_command_is_ls_and_list_with_quiet_json_and_its_examples() -> None:
    tools = plain_group("tools", "Manage tools.", "ctrpy tools ls")

    @list_command(tools, "the tool names", "ctrpy tools ls -q")
    def ls(app: App, quiet: bool, as_json: bool) -> None:
        """List tools: NAME."""
        click.echo(f"{type(app).__name__} quiet={quiet} json={as_json}")

    run = CliRunner().invoke
    assert run(tools, ["ls", "-q"], obj=APP).output == "App quiet=True json=False\n"
    assert run(tools, ["list", "--json"], obj=APP).output == "App quiet=False json=True\n"
    help_text = run(tools, ["ls", "--help"], obj=APP).output
    assert "Print only the tool names." in help_text
    assert "  Example:\n    $ ctrpy tools ls -q\n" in help_text
    assert "[FILTER]" not in help_text


def test_a_filtered_list_command_takes_filters_in_containerds_syntax() -> None:
    tools = plain_group("tools", "Manage tools.", "ctrpy tools ls")
    seen: list[tuple[filters.Filter, ...]] = []

    @list_command(tools, "the tool names", "ctrpy tools ls name==hammer", filtered=True)
    def ls(app: App, quiet: bool, as_json: bool, where: tuple[filters.Filter, ...]) -> None:
        """List tools: NAME."""
        seen.append(where)

    assert CliRunner().invoke(tools, ["ls", "name==hammer", "labels.a"], obj=APP).exit_code == 0
    assert seen == [(filters.parse("name==hammer"), filters.parse("labels.a"))]
    bad = CliRunner().invoke(tools, ["ls", "name=="], obj=APP)
    assert bad.exit_code == 2
    assert "FILTER" in bad.output
