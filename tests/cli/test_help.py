"""Every command and option explains itself, shows an example, and is in the README."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from ctrpy.cli.main import cli
from tests.helpers import COMMAND_IDS, COMMAND_TREE

README = Path(__file__).resolve().parents[2] / "README.md"


COMMANDS = COMMAND_TREE
IDS = COMMAND_IDS
OPTIONS = [
    (path, param)
    for path, cmd in COMMANDS
    for param in cmd.get_params(click.Context(cmd))
    if isinstance(param, click.Option)
]
OPTION_IDS = [f"{' '.join(path) or 'ctrpy'} {param.opts[-1]}" for path, param in OPTIONS]


def spellings(path: tuple[str, ...]) -> list[str]:
    """``images rm`` and every alias spelling of it: ``i rm``, ``images del``, ..."""
    out = [""]
    cmd: click.Command = cli
    for name in path:
        assert isinstance(cmd, click.Group)
        sub = cmd.get_command(click.Context(cmd), name)
        assert sub is not None
        names = [name, *getattr(sub, "aliases", ())]
        out = [f"{prefix} {n}".strip() for prefix in out for n in names]
        cmd = sub
    return out


def test_the_tree_is_walked() -> None:
    paths = {path for path, _cmd in COMMANDS}
    assert {(), ("images", "import"), ("snapshots", "tree"), ("completion",), ("namespaces", "rm")} <= paths


@pytest.mark.parametrize(("path", "cmd"), COMMANDS, ids=IDS)
def test_every_command_has_help_text(path: tuple[str, ...], cmd: click.Command) -> None:
    assert cmd.help and cmd.help.strip()
    assert cmd.get_short_help_str(limit=200).strip()


@pytest.mark.parametrize(("path", "cmd"), COMMANDS, ids=IDS)
def test_every_commands_help_ends_with_an_example(path: tuple[str, ...], cmd: click.Command) -> None:
    assert cmd.help
    last = cmd.help.strip().split("\n\n")[-1].strip().splitlines()
    assert last[0].strip() == "\b", "the example block is not rewrapped: it starts with \\b"
    assert last[1].strip() in ("Example:", "Examples:")
    examples = [line.strip() for line in last[2:]]
    assert examples and all(line.startswith("$ ") for line in examples)
    # one of them runs this very command (by any of its names)
    runs = [re.sub(r"\s+-\S+(\s+\S+)?", "", line) for line in examples]
    assert any(f"ctrpy {spelling}".strip() in line for line in runs for spelling in spellings(path)), examples


@pytest.mark.parametrize(("path", "cmd"), COMMANDS, ids=IDS)
def test_every_commands_help_shows_its_example(path: tuple[str, ...], cmd: click.Command) -> None:
    out = CliRunner().invoke(cli, [*path, "--help"])
    assert out.exit_code == 0, out.stderr
    assert "Example" in out.stdout
    assert "  $ ctrpy" in out.stdout or "| ctrpy" in out.stdout


@pytest.mark.parametrize(("path", "option"), OPTIONS, ids=OPTION_IDS)
def test_every_option_has_help_text(path: tuple[str, ...], option: click.Option) -> None:
    assert option.help and option.help.strip()


@pytest.mark.parametrize(("path", "cmd"), [c for c in COMMANDS if c[0]], ids=IDS[1:])
def test_every_command_is_in_the_readme(path: tuple[str, ...], cmd: click.Command) -> None:
    readme = README.read_text(encoding="utf-8")
    assert any(re.search(rf"\bctrpy (?:-\S+ (?:\S+ )?)*{re.escape(s)}\b", readme) for s in spellings(path)), (
        f"README.md shows no `ctrpy {' '.join(path)}`"
    )


@pytest.mark.parametrize("option", ["--root", "--namespace", "--debug", "--progress", "--quiet", "--version"])
def test_every_global_option_is_in_the_readme(option: str) -> None:
    assert f"`{option}" in README.read_text(encoding="utf-8") or f", {option}" in README.read_text(encoding="utf-8")


# --------------------------------------------------------------------------- ctrpy help COMMAND
@pytest.mark.parametrize(("path", "cmd"), COMMANDS, ids=IDS)
def test_help_command_prints_what_help_option_prints(path: tuple[str, ...], cmd: click.Command) -> None:
    runner = CliRunner()
    by_option = runner.invoke(cli, [*path, "--help"], prog_name="ctrpy")
    by_command = runner.invoke(cli, ["help", *path], prog_name="ctrpy")
    assert by_command.exit_code == 0, by_command.stderr
    assert by_command.stdout == by_option.stdout


def test_help_command_takes_aliases() -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["help", "i", "rm"]).stdout == runner.invoke(cli, ["images", "rm", "--help"]).stdout


def test_help_of_an_unknown_command_is_a_usage_error_naming_it() -> None:
    out = CliRunner().invoke(cli, ["help", "images", "nope"])
    assert out.exit_code == 2
    assert "'images nope'" in out.stderr

