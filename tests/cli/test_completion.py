"""Shell completion: the scripts (printed, or written by `make completions`), and what completes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.shell_completion import get_completion_class
from click.testing import CliRunner

from ctrpy.cli import completion_gen
from ctrpy.cli.completion import COMPLETE_VAR, SHELLS, completion_source
from ctrpy.cli.main import cli
from tests.builders import file
from tests.helpers import Cli, host_image, named_archive

NAMES = ["docker.io/library/busybox:1.36", "docker.io/library/busybox:latest", "example.com/team/app:v1"]


def complete(args: list[str], incomplete: str = "") -> list[str]:
    """What click suggests for the word after ``ctrpy ARGS`` (the values, shell-neutral)."""
    comp_cls = get_completion_class("zsh")
    assert comp_cls is not None
    comp = comp_cls(cli, {}, "ctrpy", COMPLETE_VAR)
    return [item.value for item in comp.get_completions(args, incomplete)]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with three images in the default namespace, one in ``team``."""
    tmp = tmp_path_factory.mktemp("completion")
    run = Cli(tmp / "root", tmp)
    image = host_image([file("a", b"a")])
    run.ok("images", "import", "--no-unpack", run.write(named_archive((image, NAMES[0]), platform=True)))
    run.ok("images", "tag", NAMES[0], *NAMES[1:])
    run.ok("namespaces", "create", "team")
    other = named_archive((image, "example.com/other:latest"), platform=True)
    run.ok("-n", "team", "images", "import", "--no-unpack", run.write(other))
    return run.root


# --------------------------------------------------------------------------- the scripts
@pytest.mark.parametrize("shell", SHELLS)
def test_completion_prints_the_script_make_completions_writes(shell: str, tmp_path: Path) -> None:
    out = CliRunner().invoke(cli, ["completion", shell])
    assert out.exit_code == 0, out.stderr
    assert completion_gen.main([str(tmp_path)]) == 0
    assert out.stdout == (tmp_path / f"ctrpy.{shell}").read_text(encoding="utf-8")
    assert COMPLETE_VAR in out.stdout


def test_completion_gen_writes_the_three_scripts(tmp_path: Path) -> None:
    assert completion_gen.main([str(tmp_path / "out")]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["ctrpy.bash", "ctrpy.fish", "ctrpy.zsh"]


def test_completion_gen_check_fails_when_a_script_is_stale(tmp_path: Path) -> None:
    assert completion_gen.main([str(tmp_path)]) == 0
    assert completion_gen.main(["--check", str(tmp_path)]) == 0
    with (tmp_path / "ctrpy.zsh").open("a") as f:
        f.write("# edited by hand\n")
    assert completion_gen.main(["--check", str(tmp_path)]) == 1


def test_an_unknown_shell_is_a_usage_error() -> None:
    out = CliRunner().invoke(cli, ["completion", "tcsh"])
    assert out.exit_code == 2
    assert "'tcsh' is not one of 'bash', 'zsh', 'fish'" in out.stderr


def test_the_script_calls_ctrpy_back_through_its_completion_variable() -> None:
    env = {**os.environ, COMPLETE_VAR: "zsh_complete", "COMP_WORDS": "ctrpy ima", "COMP_CWORD": "1"}
    out = subprocess.run([sys.executable, "-m", "ctrpy"], env=env, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert "plain\nimages\n" in out.stdout


# --------------------------------------------------------------------------- what completes
@pytest.mark.parametrize("command", [
    ["images", "rm"],
    ["images", "inspect"],
    ["images", "label"],
    ["images", "tag"],
    ["images", "export", "out.tar"],
    ["images", "unpack"],
    ["images", "extract"],
    ["images", "flatten"],
    ["images", "mount"],
    ["images", "usage"],
])
def test_image_arguments_complete_the_image_names_in_the_store(root: Path, command: list[str]) -> None:
    assert complete(["--root", str(root), *command]) == NAMES


def test_image_names_complete_from_what_is_typed(root: Path) -> None:
    assert complete(["--root", str(root), "images", "rm"], "docker.io/library/busybox:l") == [NAMES[1]]


def test_familiar_names_complete_when_no_full_name_matches(root: Path) -> None:
    assert complete(["--root", str(root), "images", "rm"], "busy") == ["busybox:1.36", "busybox:latest"]


def test_image_names_complete_in_the_namespace_given_with_n(root: Path) -> None:
    assert complete(["--root", str(root), "-n", "team", "images", "rm"]) == ["example.com/other:latest"]


def test_the_root_comes_from_the_environment_as_well(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CTRPY_ROOT", str(root))
    assert complete(["images", "rm"]) == NAMES


def test_the_namespace_option_completes_the_namespaces_in_the_store(root: Path) -> None:
    assert complete(["--root", str(root), "-n"]) == ["default", "team"]
    assert complete(["--root", str(root), "--namespace"], "t") == ["team"]


@pytest.mark.parametrize("command", [
    ["images", "import"], ["images", "unpack"], ["images", "mount"], ["images", "unmount"],
    ["images", "check"], ["images", "usage"],
])
def test_snapshotter_options_complete_the_snapshotters(command: list[str]) -> None:
    assert complete([*command, "--snapshotter"]) == ["native", "overlayfs"]


def test_the_format_option_completes_the_import_formats() -> None:
    assert complete(["images", "import", "--format"]) == ["auto", "docker.v1.1", "docker.v1.2", "oci.v1"]


def test_the_progress_option_completes_its_modes() -> None:
    assert complete(["--progress"]) == ["auto", "plain", "none"]


def test_completing_against_a_root_that_does_not_exist_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    assert complete(["--root", str(missing), "images", "rm"]) == []
    assert complete(["--root", str(missing), "-n"]) == ["default"]
    assert not missing.exists()


def test_completing_against_an_empty_root_directory_creates_no_database(tmp_path: Path) -> None:
    assert complete(["--root", str(tmp_path), "images", "rm"]) == []
    assert list(tmp_path.iterdir()) == []


def test_completing_against_a_broken_store_suggests_nothing(tmp_path: Path) -> None:
    (tmp_path / "metadata.db").write_bytes(b"this is not sqlite" * 100)
    assert complete(["--root", str(tmp_path), "images", "rm"]) == []
    assert complete(["--root", str(tmp_path), "-n"]) == ["default"]


def test_completing_with_an_invalid_namespace_suggests_nothing(root: Path) -> None:
    assert complete(["--root", str(root), "-n", "no/such", "images", "rm"]) == []


# --------------------------------------------------------------------------- in bash itself
BASH_COMPLETE = r"""
source "$SCRIPT"
COMP_LINE="$LINE"; COMP_POINT=${#COMP_LINE}
read -ra COMP_WORDS <<< "$COMP_LINE"; COMP_CWORD=${#COMP_WORDS[@]}
[[ "$COMP_LINE" == *" " ]] || COMP_CWORD=$((COMP_CWORD - 1))
_ctrpy_completion ctrpy
printf '%s\n' "${COMPREPLY[@]}"
"""


def bash_complete(root: Path, line: str) -> list[str]:
    script = root.parent / "ctrpy.bash"
    script.write_text(completion_source("bash", cli), encoding="utf-8")
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "SCRIPT": str(script),
        "LINE": line,
        "CTRPY_ROOT": str(root),
    }
    out = subprocess.run(["bash", "--norc", "-c", BASH_COMPLETE], env=env, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


@pytest.mark.skipif(shutil.which("bash") is None or shutil.which("ctrpy", path=str(Path(sys.executable).parent)) is None,
                    reason="needs bash and the ctrpy command")
def test_bash_completes_an_image_name_past_its_colon(root: Path) -> None:
    # bash splits words at ':' and replaces only what follows it: the tags are the replies
    assert bash_complete(root, "ctrpy images rm docker.io/library/busybox:") == ["1.36", "latest"]
    assert bash_complete(root, "ctrpy images rm docker.io/library/busybox:l") == ["latest"]


@pytest.mark.skipif(shutil.which("bash") is None or shutil.which("ctrpy", path=str(Path(sys.executable).parent)) is None,
                    reason="needs bash and the ctrpy command")
def test_bash_completes_whole_image_names_before_a_colon(root: Path) -> None:
    assert bash_complete(root, "ctrpy images rm example") == ["example.com/team/app:v1"]
    assert bash_complete(root, "ctrpy i") == ["images"]
