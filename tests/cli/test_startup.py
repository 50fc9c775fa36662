"""Start-up and exit: a command loads the code it runs, not the whole program (see
DESIGN.md, "Start-up"); ``images push`` needs neither the archive formats nor the
snapshotters; the program leaves without tearing the interpreter down, but after its
atexit handlers and with everything it wrote flushed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.builders import file
from tests.helpers import APP, CLEAN_ENV, Cli, host_image, named_archive
from tests.registry.distribution import DistributionRegistry

PROBE = """
import atexit, json, sys
atexit.register(lambda: open(sys.argv[1], "w").write(json.dumps(sorted(sys.modules))))
from ctrpy.cli.main import main
main(sys.argv[2:])
"""

# what only importing, exporting, unpacking, converting or collecting needs
STORE_WORK = {"ctrpy.formats", "ctrpy.snapshots", "ctrpy.unpack", "ctrpy.archive.apply", "ctrpy.convert",
              "ctrpy.layers", "zstandard", "isal"}
HTTP = {"urllib3", "ctrpy.remote.registry", "ctrpy.remote.transport"}


def loaded_by(tmp_path: Path, *args: str) -> set[str]:
    """The modules a ``ctrpy ARGS`` process held when it exited (it must succeed)."""
    out = tmp_path / "modules.json"
    env = {k: v for k, v in {**os.environ, **CLEAN_ENV}.items() if v is not None}
    proc = subprocess.run([sys.executable, "-c", PROBE, str(out), *args], capture_output=True, text=True, env=env,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    return set(json.loads(out.read_text()))


@pytest.mark.interop
@pytest.mark.usefixtures("no_user_credentials")
def test_a_push_loads_no_archive_format_snapshotter_or_unpacker(
    run: Cli, tmp_path: Path, plain_registry: DistributionRegistry, repo: str
) -> None:
    run.imported(host_image([file("a.txt", b"pushed")]).build())
    loaded = loaded_by(tmp_path, "--root", str(run.root), "images", "push", f"{plain_registry.host}/{repo}:v1", APP)
    assert "ctrpy.push" in loaded
    assert not STORE_WORK & loaded


def test_listing_images_loads_no_http_client_and_no_archive_format(tmp_path: Path) -> None:
    loaded = loaded_by(tmp_path, "--root", str(tmp_path / "root"), "images", "ls")
    assert not HTTP & loaded
    assert "ctrpy.formats" not in loaded


def test_the_version_loads_no_command_group_and_no_client(tmp_path: Path) -> None:
    loaded = loaded_by(tmp_path, "--version")
    assert not {"ctrpy.cli.images", "ctrpy.cli.snapshots", "ctrpy.client", *HTTP} & loaded


def test_an_import_loads_the_formats_it_reads_with(tmp_path: Path, run: Cli) -> None:
    archive = run.write(named_archive((host_image([file("a.txt", b"imported")]), APP)))
    loaded = loaded_by(tmp_path, "--root", str(run.root), "images", "import", "--no-unpack", archive)
    assert {"ctrpy.formats", "ctrpy.formats.oci"} <= loaded
    assert not HTTP & loaded


PROGRAM = """
import atexit, sys
atexit.register(lambda: print("atexit ran"))
from ctrpy.cli import run
run()
"""


def program(*args: str) -> subprocess.CompletedProcess[str]:
    """``ctrpy ARGS`` as the installed program runs it (``ctrpy.cli.run``), plus an atexit handler."""
    env = {k: v for k, v in {**os.environ, **CLEAN_ENV}.items() if v is not None}
    return subprocess.run([sys.executable, "-c", PROGRAM, *args], capture_output=True, text=True, env=env,
                          check=False)


def test_the_program_runs_its_atexit_handlers_after_the_command() -> None:
    import ctrpy

    r = program("--version")
    assert (r.returncode, r.stdout) == (0, f"ctrpy version {ctrpy.__version__}\natexit ran\n")


def test_the_program_flushes_all_it_wrote_before_it_exits() -> None:
    torn_down = subprocess.run([sys.executable, "-c", "from ctrpy.cli.main import main; main()", "--help"],
                               capture_output=True, text=True, check=False)  # the interpreter's own exit
    r = program("--help")
    assert r.returncode == torn_down.returncode == 0
    assert r.stdout == torn_down.stdout + "atexit ran\n"


def test_the_program_exits_with_a_usage_errors_code() -> None:
    r = program("images", "no-such-command")
    assert r.returncode == 2
    assert "No such command 'no-such-command'" in r.stderr


def test_the_program_exits_with_an_errors_code_and_its_one_line(tmp_path: Path) -> None:
    r = program("--root", str(tmp_path / "missing" / "root"), "images", "ls")
    assert r.returncode == 1
    assert r.stderr.startswith("ctrpy: error: ")
    assert len(r.stderr.splitlines()) == 1


def test_the_program_started_without_stderr_exits_with_the_commands_code() -> None:
    env = {k: v for k, v in {**os.environ, **CLEAN_ENV}.items() if v is not None}
    r = subprocess.run([sys.executable, "-c", PROGRAM, "--version"], stdout=subprocess.PIPE, text=True, env=env,
                       preexec_fn=lambda: os.close(2), check=False)  # `ctrpy --version 2>&-`
    assert r.returncode == 0
    assert r.stdout.startswith("ctrpy version ")


INTERRUPTED_WHILE_IMPORTING = """
import sys

class CtrlC:
    def find_spec(self, name, path=None, target=None):
        if name == "ctrpy.cli.main":
            raise KeyboardInterrupt  # what Ctrl-C is while Python imports the command line
        return None

sys.meta_path.insert(0, CtrlC())
from ctrpy.cli import run
run()
"""


def test_ctrl_c_while_the_program_imports_is_one_line_and_exit_130() -> None:
    env = {k: v for k, v in {**os.environ, **CLEAN_ENV}.items() if v is not None}
    r = subprocess.run([sys.executable, "-c", INTERRUPTED_WHILE_IMPORTING, "--version"], capture_output=True,
                       text=True, env=env, check=False)
    assert (r.returncode, r.stdout, r.stderr) == (130, "", "ctrpy: interrupted\n")
