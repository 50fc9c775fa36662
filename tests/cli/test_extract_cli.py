"""``ctrpy images extract``: the flattened root filesystem into a new or empty directory."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import APP, OTHER_ARCH, Cli, app_image, lying_image
from tests.treecmp import files


# --------------------------------------------------------------------------- extract
def test_extract_writes_the_merged_tree_into_a_new_directory(run: Cli, tmp_path: Path) -> None:
    run.imported(app_image(), APP, "--no-unpack")
    run.ok("images", "extract", APP, str(tmp_path / "rootfs"))
    assert files(tmp_path / "rootfs") == {
        "app": None,
        "app/bin": b"app\n",
        "etc": None,
        "etc/base": b"base\n",
    }
    assert (tmp_path / "rootfs" / "app" / "bin").stat().st_mode & 0o777 == 0o755


def test_extract_into_an_existing_empty_directory_works(run: Cli, tmp_path: Path) -> None:
    run.imported(app_image(), APP, "--no-unpack")
    (tmp_path / "empty").mkdir()
    run.ok("images", "extract", APP, str(tmp_path / "empty"))
    assert (tmp_path / "empty" / "etc" / "base").read_bytes() == b"base\n"


def test_extract_refuses_a_non_empty_directory_and_leaves_it_alone(run: Cli, tmp_path: Path) -> None:
    run.imported(app_image(), APP, "--no-unpack")
    dest = tmp_path / "busy"
    dest.mkdir()
    (dest / "mine").write_bytes(b"keep")
    run.fails("images", "extract", APP, str(dest), match="exists and is not an empty directory")
    assert files(dest) == {"mine": b"keep"}


def test_extract_needs_no_unpacked_snapshots(run: Cli, tmp_path: Path) -> None:
    run.imported(app_image(), APP, "--no-unpack")
    run.ok("images", "extract", APP, str(tmp_path / "rootfs"))
    assert run.snapshot_keys("native") == []


def test_extract_of_a_lying_image_fails(run: Cli, tmp_path: Path) -> None:
    run.imported(lying_image(), APP, "--no-unpack")
    run.fails("images", "extract", APP, str(tmp_path / "rootfs"), match="config says diffID")


def test_a_platform_the_image_lacks_is_hinted_with_the_flags_extract_takes(run: Cli, tmp_path: Path) -> None:
    run.imported(app_image())
    r = run.fails("images", "extract", "--platform", f"linux/{OTHER_ARCH}", APP, str(tmp_path / "out"),
                  match=f"linux/{OTHER_ARCH}")
    assert r.stderr.strip().endswith("(use --platform)"), r.stderr  # extract has no --all-platforms
    assert not (tmp_path / "out").exists()
