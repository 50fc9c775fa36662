"""Global options: --root / CTRPY_ROOT, -n / CTRPY_NAMESPACE / CONTAINERD_NAMESPACE, --debug,
--version; what happens with roots that cannot be used; usage errors."""

from __future__ import annotations

import gc
import hashlib
import os
import platform
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import ctrpy
from ctrpy import root as root_mod
from tests.builders import ANNOTATION_IMAGE_NAME, file
from tests.helpers import Cli, assert_error, host_image, oci_archive

BLOB = b"global options\n"
BLOB_DIGEST = "sha256:" + hashlib.sha256(BLOB).hexdigest()
ABSENT = "sha256:" + "0" * 64


def ingest(run: Cli, *global_args: str, env: dict[str, str | None] | None = None, root: bool = True) -> None:
    r = run.invoke([*global_args, "content", "ingest", "x"], input=BLOB, env=env, root=root)
    assert r.exit_code == 0, r.stderr


def visible_in(run: Cli, store_root: Path, namespace: str) -> bool:
    r = run.invoke(["--root", str(store_root), "-n", namespace, "content", "ls", "-q"], root=False)
    assert r.exit_code == 0, r.stderr
    return BLOB_DIGEST in r.stdout.split()


# --------------------------------------------------------------------------- --root, CTRPY_ROOT
def test_root_option_puts_the_store_there(run: Cli, root: Path) -> None:
    ingest(run)
    assert (root / "metadata.db").is_file()
    assert (root / "content" / "blobs" / "sha256" / BLOB_DIGEST.split(":")[1]).is_file()


def test_two_roots_are_independent(run: Cli, tmp_path: Path) -> None:
    ingest(run)
    other = tmp_path / "other-root"
    r = run.invoke(["--root", str(other), "content", "ls", "-q"], root=False)
    assert r.exit_code == 0
    assert r.stdout == ""


def test_ctrpy_root_is_used_without_root_option(run: Cli, tmp_path: Path) -> None:
    env_root = tmp_path / "env-root"
    ingest(run, env={"CTRPY_ROOT": str(env_root)}, root=False)
    assert visible_in(run, env_root, "default")


def test_root_option_wins_over_ctrpy_root(run: Cli, root: Path, tmp_path: Path) -> None:
    env_root = tmp_path / "env-root"
    ingest(run, env={"CTRPY_ROOT": str(env_root)})
    assert visible_in(run, root, "default")
    assert not env_root.exists()


def test_default_root_for_a_non_root_user_is_under_xdg_data_home(
    run: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    xdg = tmp_path / "xdg"
    xdg.mkdir()
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_DATA_HOME", str(xdg))
    monkeypatch.delenv("CTRPY_ROOT", raising=False)
    assert root_mod.default_root() == xdg / "ctrpy"  # never touch /var/lib/ctrpy from a test
    ingest(run, root=False)
    assert visible_in(run, xdg / "ctrpy", "default")


def test_a_root_whose_parent_does_not_exist_is_one_error_line(run: Cli, tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "root"
    r = run.invoke(["--root", str(missing), "content", "ingest", "x"], input=BLOB, root=False)
    assert_error(r, ("cannot create root", str(missing.parent), "does not exist"), stdout="")
    assert not (tmp_path / "no").exists()


def test_listing_with_a_root_whose_parent_does_not_exist_fails_too(run: Cli, tmp_path: Path) -> None:
    missing = tmp_path / "no" / "root"
    r = run.invoke(["--root", str(missing), "images", "ls"], root=False)
    assert_error(r, "does not exist")
    assert not (tmp_path / "no").exists()


def test_a_root_that_is_a_file_is_one_error_line(run: Cli, tmp_path: Path) -> None:
    f = tmp_path / "a-file"
    f.write_bytes(b"not a directory")
    r = run.invoke(["--root", str(f), "content", "ls"], root=False)
    assert_error(r, ("root", str(f), "is not a directory"))
    assert f.read_bytes() == b"not a directory"


# --------------------------------------------------------------------------- read-only root
@pytest.fixture
def read_only_root(run: Cli, root: Path) -> Iterator[Path]:
    """The root, populated with one image, then made read-only with a read-only bind mount."""
    img = host_image([file("ro.txt", b"read only")]).build()
    run.ok("images", "import", "--no-unpack", run.write(oci_archive((img, {ANNOTATION_IMAGE_NAME: "ro/img:1"}))))
    bind = subprocess.run(["mount", "--bind", str(root), str(root)], capture_output=True, check=False)
    if bind.returncode != 0:
        pytest.skip(f"mount --bind not permitted: {bind.stderr.decode().strip()}")
    try:
        remount = subprocess.run(
            ["mount", "-o", "remount,ro,bind", str(root), str(root)], capture_output=True, check=False
        )
        if remount.returncode != 0:
            pytest.skip(f"read-only remount not permitted: {remount.stderr.decode().strip()}")
        probe = root / ".probe"
        try:
            probe.write_bytes(b"")
        except OSError:
            pass
        else:
            probe.unlink()
            pytest.skip("the read-only mount is writable for this user")
        yield root
    finally:
        unmount(root)


def unmount(path: Path) -> None:
    # a failed command's exception (kept by click's Result) may still hold the database
    # open through its traceback until the cycle collector runs: collect, then unmount
    gc.collect()
    if subprocess.run(["umount", str(path)], capture_output=True, check=False).returncode != 0:
        subprocess.run(["umount", "-l", str(path)], check=True)


def test_import_into_a_read_only_root_is_one_error_line_and_changes_nothing(
    run: Cli, read_only_root: Path
) -> None:
    img = host_image([file("new.txt", b"new")]).build()
    path = run.write(oci_archive((img, {ANNOTATION_IMAGE_NAME: "new/img:1"})))
    r = run("images", "import", "--no-unpack", path)
    assert_error(r, str(read_only_root))
    assert "read-only" in r.stderr.lower()
    del r
    unmount(read_only_root)
    subprocess.run(["mount", "--bind", str(read_only_root), str(read_only_root)], check=True)
    assert run.names() == ["ro/img:1"]
    assert not (read_only_root / "content" / "blobs" / "sha256" / img.manifest.hex).exists()


def test_ingest_into_a_read_only_root_is_one_error_line(run: Cli, read_only_root: Path) -> None:
    r = run("content", "ingest", "x", input=BLOB)
    assert_error(r, str(read_only_root))
    assert "read-only" in r.stderr.lower()


def test_tag_in_a_read_only_root_is_one_error_line(run: Cli, read_only_root: Path) -> None:
    r = run("images", "tag", "ro/img:1", "ro/img:2")
    assert_error(r, (str(read_only_root), "read-only"))


# --------------------------------------------------------------------------- namespaces
def test_namespace_option_selects_the_namespace(run: Cli, root: Path) -> None:
    ingest(run, "-n", "team-a")
    assert visible_in(run, root, "team-a")
    assert not visible_in(run, root, "default")


def test_long_namespace_option(run: Cli, root: Path) -> None:
    ingest(run, "--namespace", "team-a")
    assert visible_in(run, root, "team-a")


def test_ctrpy_namespace_env_selects_the_namespace(run: Cli, root: Path) -> None:
    ingest(run, env={"CTRPY_NAMESPACE": "from-ctrpy"})
    assert visible_in(run, root, "from-ctrpy")


def test_containerd_namespace_env_is_used_when_ctrpy_namespace_is_unset(run: Cli, root: Path) -> None:
    ingest(run, env={"CONTAINERD_NAMESPACE": "from-containerd"})
    assert visible_in(run, root, "from-containerd")


def test_ctrpy_namespace_wins_over_containerd_namespace(run: Cli, root: Path) -> None:
    ingest(run, env={"CTRPY_NAMESPACE": "from-ctrpy", "CONTAINERD_NAMESPACE": "from-containerd"})
    assert visible_in(run, root, "from-ctrpy")
    assert not visible_in(run, root, "from-containerd")


def test_namespace_option_wins_over_both_variables(run: Cli, root: Path) -> None:
    ingest(run, "-n", "opt", env={"CTRPY_NAMESPACE": "a", "CONTAINERD_NAMESPACE": "b"})
    assert visible_in(run, root, "opt")
    assert not visible_in(run, root, "a")
    assert not visible_in(run, root, "b")


def test_default_namespace_is_default(run: Cli, root: Path) -> None:
    ingest(run)
    assert run.ok("ns", "ls", "-q").stdout == "default\n"


@pytest.mark.parametrize("bad", ["bad ns", "-x", "a..b", "x" * 77, "a/b", "../../etc"])
def test_invalid_namespace_option_is_one_error_line_and_creates_nothing(run: Cli, root: Path, bad: str) -> None:
    run.fails(f"--namespace={bad}", "content", "ingest", "x", input=BLOB, match="invalid namespace")
    assert not root.exists()


@pytest.mark.parametrize("var", ["CTRPY_NAMESPACE", "CONTAINERD_NAMESPACE"])
def test_invalid_namespace_from_the_environment_is_one_error_line(run: Cli, root: Path, var: str) -> None:
    run.fails("content", "ls", env={var: "not valid"}, match="invalid namespace")
    assert not root.exists()


# --------------------------------------------------------------------------- version
def test_version_option_prints_the_version(run: Cli) -> None:
    for flag in ("--version", "-v"):
        r = run.invoke([flag], root=False)
        assert r.exit_code == 0
        assert r.stdout == f"ctrpy version {ctrpy.__version__}\n"


def test_version_command_prints_version_python_and_platform(run: Cli) -> None:
    lines = run.ok("version").stdout.splitlines()
    assert lines[0] == "ctrpy:"
    assert lines[1].split() == ["Version:", ctrpy.__version__]
    assert lines[2].split() == ["Python:", platform.python_version()]
    assert lines[3].split()[0] == "Platform:"


def test_version_matches_the_package_metadata() -> None:
    from importlib.metadata import version

    assert version("ctrpy") == ctrpy.__version__


# --------------------------------------------------------------------------- --debug
def test_errors_carry_no_traceback_without_debug(run: Cli) -> None:
    r = run.fails("content", "get", ABSENT, match="not found")
    assert "Traceback" not in r.stderr


def test_debug_shows_a_traceback_then_the_error_line(run: Cli) -> None:
    r = run("--debug", "content", "get", ABSENT)
    assert r.exit_code == 1
    assert r.stderr.startswith("Traceback (most recent call last):")
    assert "ctrpy.errors.ContentNotFound" in r.stderr
    assert r.stderr.splitlines()[-1] == f"ctrpy: error: content {ABSENT} not found"


def test_ctrpy_debug_env_is_as_debug(run: Cli) -> None:
    r = run("content", "get", ABSENT, env={"CTRPY_DEBUG": "1"})
    assert r.exit_code == 1
    assert "Traceback" in r.stderr


def test_ctrpy_debug_env_with_any_value_is_as_debug(run: Cli) -> None:
    r = run("content", "get", ABSENT, env={"CTRPY_DEBUG": "please"})
    assert r.exit_code == 1
    assert "Traceback" in r.stderr


def test_debug_does_not_change_a_successful_command(run: Cli) -> None:
    ingest(run, "--debug")
    assert run.ok("--debug", "content", "ls", "-q").stdout == BLOB_DIGEST + "\n"


# --------------------------------------------------------------------------- usage errors
def test_unknown_command_is_a_usage_error(run: Cli) -> None:
    r = run.usage_error("nosuchcommand")
    assert "No such command" in r.stderr


def test_unknown_option_is_a_usage_error(run: Cli) -> None:
    run.usage_error("images", "ls", "--nosuchoption")


def test_unknown_global_option_is_a_usage_error(run: Cli) -> None:
    run.usage_error("--nosuchoption", "images", "ls")


def test_missing_argument_is_a_usage_error(run: Cli) -> None:
    run.usage_error("content", "get")


def test_help_lists_the_command_groups(run: Cli) -> None:
    r = run.invoke(["--help"], root=False)
    assert r.exit_code == 0
    for group in ("images", "content", "namespaces", "version"):
        assert group in r.stdout


# --------------------------------------------------------------------------- a global option after the command
@pytest.mark.parametrize(
    ("args", "option", "example"),
    [
        (("images", "ls", "-n", "x"), "-n", "ctrpy -n NAMESPACE images ls"),
        (("images", "ls", "--namespace=x"), "--namespace", "ctrpy --namespace NAMESPACE images ls"),
        (("content", "ls", "--root", "/tmp"), "--root", "ctrpy --root ROOT content ls"),
        (("images", "import", "--debug", "x.tar"), "--debug", "ctrpy --debug images import"),
        (("ns", "ls", "--progress", "none"), "--progress", "ctrpy --progress PROGRESS namespaces ls"),
    ],
)
def test_a_global_option_after_the_command_says_to_put_it_before(
    run: Cli, args: tuple[str, ...], option: str, example: str
) -> None:
    r = run.usage_error(*args)
    assert f"put {option} before the command" in r.stderr
    assert f" {example.split(' ', 1)[1]}`" in r.stderr  # after the program's name (``cli`` in-process)


def test_an_unknown_option_that_is_not_global_keeps_clicks_message(run: Cli) -> None:
    r = run.usage_error("images", "ls", "--jso")
    assert "before the command" not in r.stderr
    assert "--json" in r.stderr  # click's "did you mean"
