"""The CLI in a real terminal (a pseudo-terminal) and out of one, as separate processes.

On a terminal, progress bars appear on stderr; stdout still carries only data, so when it is
a pipe or a file it gets the same bytes as without a terminal.  Without a terminal there is
not a single escape code.  NO_COLOR, FORCE_COLOR, TERM=dumb, --progress and -q are honoured.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pty
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from ctrpy.oci import Platform
from tests.builders import OCILayout, big_image
from tests.peers import Ctrpy

pexpect = pytest.importorskip("pexpect")

HOST = Platform.host()
NAME = "example.com/big/app:v1"
ESC = b"\x1b["
BAR = "\u2501"  # rich's bar character
# SGR parameters that set a colour: foreground, background, 256/truecolor, bright variants
_COLOUR_PARAMS = {*range(30, 39), *range(40, 49), *range(90, 98), *range(100, 108)}


def colour_codes(text: str) -> list[str]:
    """The SGR escape sequences in ``text`` that set a colour (bold or dim are not colours)."""
    found = []
    for m in re.finditer(r"\x1b\[([0-9;]*)m", text):
        params = [int(p) for p in m.group(1).split(";") if p]
        if any(p in _COLOUR_PARAMS for p in params):
            found.append(m.group(0))
    return found


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An OCI archive of a few MB of random data in two layers, for the host platform."""
    work = tmp_path_factory.mktemp("terminal")
    image = dataclasses.replace(
        big_image(3 << 20, 12, seed=6, layers=2, workdir=work),
        architecture=HOST.architecture, variant=HOST.variant or None,
    )
    layout = OCILayout()
    layout.add_manifest(image, {"io.containerd.image.name": NAME}, platform=True)
    path = work / "big.tar"
    layout.write_tar(path)
    return path


def environment(**extra: str) -> dict[str, str]:
    """A terminal-ish environment without the variables that change the output."""
    env = Ctrpy.env()  # the environment less CTRPY_*/CONTAINERD_*
    for key in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLUMNS", "LINES"):
        env.pop(key, None)
    env.update(TERM="xterm-256color", LANG="C.UTF-8", PYTHONIOENCODING="utf-8")
    env.update(extra)
    return env


def ctrpy_argv(root: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "ctrpy", "--root", str(root), *args]


def import_args(archive: Path, *global_opts: str) -> list[str]:
    return [*global_opts, "images", "import", "--snapshotter", "native", str(archive)]


def on_terminal(argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run with stdin, stdout and stderr on one pseudo-terminal; (exit code, what it showed)."""
    child = pexpect.spawn(argv[0], argv[1:], env=env, dimensions=(40, 120), encoding="utf-8", timeout=120)
    output = child.read()  # to EOF
    child.close()
    return child.exitstatus, output


@dataclasses.dataclass
class Split:
    code: int
    stdout: bytes
    terminal: str


def stderr_on_terminal(argv: list[str], env: dict[str, str], stdin: bytes | None = None) -> Split:
    """Run with only stderr on a pseudo-terminal; stdout (and stdin) are pipes."""
    master, slave = pty.openpty()
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every writer has closed the terminal
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain)
    reader.start()
    try:
        proc = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=slave)
        os.close(slave)
        stdout, _ = proc.communicate(stdin, timeout=120)
    finally:
        reader.join(timeout=120)
        os.close(master)
    return Split(proc.returncode, stdout, b"".join(chunks).decode("utf-8", "replace"))


def run_piped(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(argv, env=env, capture_output=True, timeout=120, check=False)


def unpacking_line(root: Path) -> bytes:
    out = run_piped(ctrpy_argv(root, "images", "ls", "-q"), environment())
    assert out.stdout.decode().split() == [NAME]
    ls = run_piped(ctrpy_argv(root, "images", "ls", "--json"), environment())
    digest = json.loads(ls.stdout)["items"][0]["target"]["digest"]
    return f"unpacking {NAME} ({digest})...done\n".encode()


# --------------------------------------------------------------------------- on a terminal
def test_import_on_a_terminal_draws_progress_bars(tmp_path: Path, archive: Path) -> None:
    code, shown = on_terminal(ctrpy_argv(tmp_path / "root", *import_args(archive)), environment())
    assert code == 0, shown
    assert BAR in shown and "100%" in shown
    assert "archive" in shown and f"1/2 {NAME}" in shown and f"2/2 {NAME}" in shown
    assert "entries" in shown
    assert colour_codes(shown)
    assert f"unpacking {NAME} (sha256:" in shown


def test_import_on_a_terminal_still_writes_only_data_to_a_piped_stdout(tmp_path: Path, archive: Path) -> None:
    root = tmp_path / "root"
    out = stderr_on_terminal(ctrpy_argv(root, *import_args(archive)), environment())
    assert out.code == 0, out.terminal
    assert BAR in out.terminal and "100%" in out.terminal
    assert out.stdout == unpacking_line(root)


def test_import_from_a_pipe_shows_the_bytes_read_on_the_terminal(tmp_path: Path, archive: Path) -> None:
    argv = ctrpy_argv(tmp_path / "root", "images", "import", "--snapshotter", "native", "-")
    out = stderr_on_terminal(argv, environment(), stdin=archive.read_bytes())
    assert out.code == 0, out.terminal
    assert "archive" in out.terminal and "MiB" in out.terminal
    assert out.stdout == unpacking_line(tmp_path / "root")


def test_export_to_a_pipe_shows_bytes_written_on_the_terminal(tmp_path: Path, archive: Path) -> None:
    root = tmp_path / "root"
    assert run_piped(ctrpy_argv(root, "images", "import", "--no-unpack", str(archive)), environment()).returncode == 0
    assert run_piped(ctrpy_argv(root, "images", "export", str(tmp_path / "out.tar"), NAME), environment()).returncode == 0
    out = stderr_on_terminal(ctrpy_argv(root, "images", "export", "-", NAME), environment())
    assert out.code == 0, out.terminal
    assert "writing archive" in out.terminal and "100%" in out.terminal
    assert out.stdout == (tmp_path / "out.tar").read_bytes()


def test_no_color_draws_the_bars_without_colours(tmp_path: Path, archive: Path) -> None:
    code, shown = on_terminal(ctrpy_argv(tmp_path / "root", *import_args(archive)), environment(NO_COLOR="1"))
    assert code == 0, shown
    assert BAR in shown and "100%" in shown
    assert colour_codes(shown) == []


def test_progress_none_on_a_terminal_prints_nothing_but_the_names(tmp_path: Path, archive: Path) -> None:
    code, shown = on_terminal(ctrpy_argv(tmp_path / "root", *import_args(archive, "--progress", "none")), environment())
    assert code == 0, shown
    assert shown == f"{NAME}\r\n"


def test_quiet_on_a_terminal_prints_only_the_names(tmp_path: Path, archive: Path) -> None:
    code, shown = on_terminal(ctrpy_argv(tmp_path / "root", *import_args(archive, "-q")), environment())
    assert code == 0, shown
    assert shown == f"{NAME}\r\n"


def test_progress_plain_on_a_terminal_prints_ctrs_lines_without_escape_codes(tmp_path: Path, archive: Path) -> None:
    root = tmp_path / "root"
    code, shown = on_terminal(ctrpy_argv(root, *import_args(archive, "--progress", "plain")), environment())
    assert code == 0, shown
    assert shown.replace("\r\n", "\n").encode() == unpacking_line(root)


def test_a_dumb_terminal_gets_the_plain_lines(tmp_path: Path, archive: Path) -> None:
    root = tmp_path / "root"
    code, shown = on_terminal(ctrpy_argv(root, *import_args(archive)), environment(TERM="dumb"))
    assert code == 0, shown
    assert shown.replace("\r\n", "\n").encode() == unpacking_line(root)


def test_an_error_on_a_terminal_is_one_line_below_the_bars(tmp_path: Path, archive: Path) -> None:
    truncated = tmp_path / "truncated.tar"
    truncated.write_bytes(archive.read_bytes()[: 2 << 20])
    code, shown = on_terminal(ctrpy_argv(tmp_path / "root", *import_args(truncated)), environment())
    assert code == 1
    assert BAR in shown
    last = shown.rstrip("\r\n").rsplit("\n", 1)[-1]
    assert re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", last).startswith("ctrpy: error: ")


# --------------------------------------------------------------------------- without a terminal
@pytest.mark.parametrize("opts", [(), ("--progress", "auto"), ("--progress", "plain")])
def test_without_a_terminal_there_are_no_escape_codes(tmp_path: Path, archive: Path, opts: tuple[str, ...]) -> None:
    root = tmp_path / "root"
    out = run_piped(ctrpy_argv(root, *import_args(archive, *opts)), environment())
    assert out.returncode == 0, out.stderr
    assert ESC not in out.stdout and ESC not in out.stderr
    assert out.stdout == unpacking_line(root)
    assert out.stderr == b""


@pytest.mark.parametrize("command", [
    ("images", "unpack", "--snapshotter", "native", NAME),
    ("images", "extract", NAME, "{tmp}/rootfs"),
    ("images", "flatten", NAME, "{tmp}/rootfs.tar"),
    ("images", "export", "{tmp}/out.tar", NAME),
])
def test_other_commands_without_a_terminal_have_no_escape_codes(
    tmp_path: Path, archive: Path, command: tuple[str, ...]
) -> None:
    root = tmp_path / "root"
    assert run_piped(ctrpy_argv(root, "images", "import", "--no-unpack", str(archive)), environment()).returncode == 0
    argv = ctrpy_argv(root, *(a.replace("{tmp}", str(tmp_path)) for a in command))
    out = run_piped(argv, environment())
    assert out.returncode == 0, out.stderr
    assert ESC not in out.stdout and ESC not in out.stderr


def test_force_color_draws_bars_on_stderr_without_a_terminal(tmp_path: Path, archive: Path) -> None:
    root = tmp_path / "root"
    out = run_piped(ctrpy_argv(root, *import_args(archive)), environment(FORCE_COLOR="1"))
    assert out.returncode == 0, out.stderr
    assert ESC in out.stderr and "100%" in out.stderr.decode()
    assert out.stdout == unpacking_line(root)
