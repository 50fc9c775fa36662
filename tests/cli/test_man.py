"""The man pages: generated from the click commands (``make man``), one per command,
committed in ``ctrpy/man/man1`` (a test fails when they are stale, as for completions),
valid roff, and installed by ``pip install .`` both inside the package and under
``share/man/man1`` (where ``man`` finds them from PATH)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import click
import pytest

from ctrpy.cli import generated, manpages
from tests.helpers import COMMAND_IDS, COMMAND_TREE, Cli
from tests.peers import Ctrpy

REPO = Path(__file__).resolve().parents[2]


def test_the_committed_man_pages_match_a_fresh_generation() -> None:
    assert generated.stale(manpages.pages(), REPO / "ctrpy" / "man" / "man1") == [], "run `make man`"


def test_the_pages_are_where_the_package_says() -> None:
    assert manpages.DIRECTORY == REPO / "ctrpy" / "man" / "man1"


@pytest.mark.parametrize(("path", "cmd"), COMMAND_TREE, ids=COMMAND_IDS)
def test_every_command_has_a_page_with_its_help_and_options(path: tuple[str, ...], cmd: click.Command) -> None:
    text = manpages.pages()[f"{'-'.join(['ctrpy', *path])}.1"]
    assert f".B {manpages.escape(' '.join(['ctrpy', *path]))}" in text
    assert manpages.escape(cmd.get_short_help_str(limit=200)) in text
    for param in cmd.params:
        if isinstance(param, click.Option):
            assert manpages.escape(param.opts[-1]) in text


def test_a_group_page_lists_its_commands_and_their_pages() -> None:
    text = manpages.pages()["ctrpy-images.1"]
    assert "\\fBls, list\\fR" in text
    assert "\\fBctrpy\\-images\\-ls\\fR(1)" in text


def test_the_root_page_says_the_exit_status() -> None:
    text = manpages.pages()["ctrpy.1"]
    assert ".SH EXIT STATUS" in text and "\\fB141\\fR" in text


def test_example_blocks_are_kept_line_for_line() -> None:
    text = manpages.pages()["ctrpy-images-import.1"]
    assert ".nf\nExamples:\n  $ ctrpy images import \\-\\-platform linux/amd64 busybox.tar\n" in text


def test_generating_twice_gives_the_same_pages() -> None:
    assert manpages.pages() == manpages.pages()


@pytest.mark.parametrize(("text", "roff"), [("a-b", "a\\-b"), ("c:\\x", "c:\\ex"), (".TH", "\\&.TH"), ("'x", "\\&'x")])
def test_escape_makes_text_literal_for_roff(text: str, roff: str) -> None:
    assert manpages.escape(text) == roff


@pytest.mark.skipif(shutil.which("man") is None, reason="man is not installed")
def test_every_page_formats_without_a_warning(tmp_path: Path) -> None:
    manpages.main([str(tmp_path)])
    for page in sorted(tmp_path.iterdir()):
        proc = subprocess.run(["man", "--warnings", "-l", str(page)], capture_output=True, text=True,
                              env={"MANWIDTH": "80", "PATH": "/usr/bin:/bin"}, check=False)
        assert (proc.returncode, proc.stderr) == (0, ""), page.name
        assert "NAME" in proc.stdout


def test_check_fails_on_a_stale_page_and_on_one_no_longer_generated(tmp_path: Path) -> None:
    assert manpages.main([str(tmp_path)]) == 0
    assert manpages.main(["--check", str(tmp_path)]) == 0
    (tmp_path / "ctrpy-gone.1").write_text("old\n")
    assert generated.stale(manpages.pages(), tmp_path) == ["ctrpy-gone.1"]
    assert manpages.main(["--check", str(tmp_path)]) == 1
    assert manpages.main([str(tmp_path)]) == 0
    assert not (tmp_path / "ctrpy-gone.1").exists()


def test_pip_installs_the_pages_in_the_package_and_in_share_man(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "ctrpy", src / "ctrpy", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path / "dist"), str(src)],
                   check=True, capture_output=True, timeout=600)
    (wheel,) = (tmp_path / "dist").glob("ctrpy-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    pages = set(manpages.pages())
    assert {f"ctrpy/man/man1/{p}" for p in pages} <= names
    assert {n.rsplit("/", 1)[-1] for n in names if "/data/share/man/man1/" in n} == pages


@pytest.mark.skipif(shutil.which("man") is None, reason="man is not installed")
def test_help_man_shows_the_installed_page_of_a_command(ctrpy: Ctrpy) -> None:
    out = ctrpy("help", "--man", "i", "import").stdout
    assert out.startswith("CTRPY-IMAGES-IMPORT(1)")


def test_help_man_without_man_says_where_the_page_is(run: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    run.fails("help", "--man", "images", "ls", match=("man is not installed", "ctrpy-images-ls.1"))
