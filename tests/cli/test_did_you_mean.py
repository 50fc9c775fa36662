"""A name that is not found gets "did you mean" with the closest existing names, from every
command that names an image (the library's ``ImageNotFound.suggestions``, worded by
``ctrpy.cli.main.hint``); a tag-less name is tried with ``:latest`` first."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.builders import file
from tests.helpers import Cli, host_image, named_archive, needs_root

DEBIAN = "docker.io/library/debian:bookworm"


@pytest.fixture
def debian(run: Cli) -> Cli:
    img = host_image([file("etc/debian_version", b"12\n")]).build()
    run.ok("images", "import", "--no-unpack", run.write(named_archive((img, DEBIAN))))
    (run.workdir / "mnt").mkdir()
    return run


def commands(workdir: Path, name: str) -> dict[str, list[str]]:
    """Every command that looks an image up, naming ``name``."""
    return {
        "tag": ["images", "tag", name, "copy:1"],
        "label": ["images", "label", name, "k=v"],
        "inspect": ["images", "inspect", name],
        "export": ["images", "export", str(workdir / "out.tar"), name],
        "unpack": ["images", "unpack", "--snapshotter", "native", name],
        "extract": ["images", "extract", name, str(workdir / "rootfs")],
        "flatten": ["images", "flatten", name, str(workdir / "rootfs.tar")],
        "usage": ["images", "usage", "--snapshotter", "native", name],
        "mount": ["images", "mount", "--snapshotter", "native", name, str(workdir / "mnt")],
    }


COMMANDS = [pytest.param(c, marks=needs_root) if c == "mount" else c for c in sorted(commands(Path(), "x"))]


@pytest.mark.parametrize("command", COMMANDS)
def test_a_mistyped_name_suggests_the_image_it_means(debian: Cli, command: str) -> None:
    args = commands(debian.workdir, "debain")[command]
    debian.fails(*args, match=("'debain' not found", f"did you mean {DEBIAN!r}?"))


@pytest.mark.parametrize("command", COMMANDS)
def test_a_name_like_nothing_suggests_nothing(debian: Cli, command: str) -> None:
    r = debian.fails(*commands(debian.workdir, "zzz")[command], match="'zzz' not found")
    assert "did you mean" not in r.stderr


def test_rm_of_a_mistyped_name_warns_with_the_suggestion_and_exits_0(debian: Cli) -> None:
    r = debian.ok("images", "rm", "debain")
    assert r.stderr.splitlines()[0] == f"ctrpy: warning: image 'debain' not found (did you mean {DEBIAN!r}?)"
    assert debian.names() == [DEBIAN]


def test_a_tagless_name_is_tried_with_latest_before_suggesting(run: Cli) -> None:
    img = host_image([file("x", b"x")]).build()
    run.ok("images", "import", "--no-unpack", run.write(named_archive((img, "docker.io/library/tool:latest"))))
    assert run.ok("images", "inspect", "tool").stdout


def test_another_tag_of_the_same_repository_is_suggested(run: Cli) -> None:
    img = host_image([file("x", b"x")]).build()
    run.ok("images", "import", "--no-unpack", run.write(named_archive((img, "docker.io/library/tool:1.36"))))
    run.fails("images", "inspect", "tool", match="did you mean 'docker.io/library/tool:1.36'?")


def test_several_suggestions_are_joined_with_or(run: Cli) -> None:
    one = host_image([file("x", b"1")]).build()
    two = host_image([file("x", b"2")]).build()
    archive = named_archive((one, "docker.io/library/tool:1"), (two, "docker.io/library/tool:2"))
    run.ok("images", "import", "--no-unpack", run.write(archive))
    run.fails("images", "inspect", "tool:3",
              match="did you mean 'docker.io/library/tool:1' or 'docker.io/library/tool:2'?")
