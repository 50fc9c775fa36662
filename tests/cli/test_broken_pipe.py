"""When the reader of stdout goes away (``ctrpy images ls | head -1``), ctrpy exits quietly
with 141 (128 + SIGPIPE), as ``cat`` and ``ctr`` do: nothing on stderr, whatever was being
written (a table, names, blob bytes, an archive, help).  Run as real processes whose stdout
is a pipe closed before they start."""

from __future__ import annotations

import os
import select
import subprocess
import sys
from pathlib import Path

import pytest

from ctrpy.cli import main as cli_main
from tests.builders import file
from tests.helpers import host_image, named_archive
from tests.peers import Ctrpy

NAME = "docker.io/library/piped:v1"


def into_closed_pipe(ctrpy: Ctrpy, *args: str) -> subprocess.CompletedProcess[bytes]:
    """Run ctrpy with a stdout pipe nobody reads (its reading end closed already)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(ctrpy.command(*args), stdout=write_end, stderr=subprocess.PIPE,
                              env=ctrpy.env(), check=False, timeout=300)
    finally:
        os.close(write_end)


@pytest.fixture
def piped(ctrpy: Ctrpy, tmp_path: Path) -> Ctrpy:
    img = host_image([file("big", os.urandom(1 << 20))]).build()
    archive = tmp_path / "piped.tar"
    archive.write_bytes(named_archive((img, NAME)))
    ctrpy("images", "import", "--no-unpack", archive)
    return ctrpy


@pytest.mark.parametrize(
    "args",
    [
        ("images", "ls"),  # a table, buffered until the end
        ("images", "ls", "-q"),  # names, flushed line by line
        ("content", "ls"),
        ("images", "inspect", NAME),
        ("images", "export", "-", NAME),  # an archive streamed by the library
        ("images", "flatten", NAME, "-"),
        ("images", "ls", "--help"),  # help printed by a subcommand
        ("--help",),  # help printed by click itself, before any command
        ("version",),
    ],
    ids=" ".join,
)
def test_a_closed_stdout_exits_141_and_says_nothing(piped: Ctrpy, args: tuple[str, ...]) -> None:
    proc = into_closed_pipe(piped, *args)
    assert (proc.returncode, proc.stderr) == (cli_main.EXIT_BROKEN_PIPE, b"")


def test_content_get_into_a_closed_pipe_exits_141(piped: Ctrpy) -> None:
    digest = piped("content", "ls", "-q").stdout.split()[0]
    proc = into_closed_pipe(piped, "content", "get", digest)
    assert (proc.returncode, proc.stderr) == (141, b"")


def test_head_leaving_in_the_middle_of_an_export_ends_ctrpy_with_141(piped: Ctrpy) -> None:
    # the archive (over 1 MiB) cannot fit in the pipe: ctrpy is still writing when head exits
    export = " ".join(piped.command("images", "export", "-", NAME))
    shell = f"set -o pipefail; {export} | head -c 1 >/dev/null; echo ${{PIPESTATUS[0]}}"
    proc = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, env=piped.env(), check=False)
    assert (proc.stdout, proc.stderr) == ("141\n", "")


def test_the_reader_of_a_pipe_is_gone_when_it_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    read_end, write_end = os.pipe()
    with os.fdopen(write_end, "w") as w:
        monkeypatch.setattr(sys, "stdout", w)
        assert not cli_main._stdout_reader_gone()
        os.close(read_end)
        assert cli_main._stdout_reader_gone()
        monkeypatch.undo()


def test_a_regular_file_on_stdout_never_looks_like_a_closed_pipe(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with open(tmp_path / "out", "w") as f:
        monkeypatch.setattr(sys, "stdout", f)
        assert not cli_main._stdout_reader_gone()
        monkeypatch.undo()


def test_poll_reports_a_closed_pipe_as_an_error() -> None:
    """What _stdout_reader_gone relies on: the writing end polls POLLERR once the reader left."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    poller = select.poll()
    poller.register(write_end, 0)
    try:
        assert poller.poll(0)[0][1] & select.POLLERR
    finally:
        os.close(write_end)
