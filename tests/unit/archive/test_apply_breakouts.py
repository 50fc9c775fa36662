"""Layers that try to write outside the root (containerd TestBreakouts, umoci scoping tests).

Every test applies a tar into ``tmp/root`` with ``tmp/outside/sentinel`` next to it; after
each one, ``nothing_outside_the_root_changes`` checks that nothing outside the root changed,
whether the layer applied or was refused.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ctrpy.errors import InvalidArchive, UnpackError
from tests.builders import Tar, pad, raw_header
from tests.helpers import Sandbox, raises_naming


@pytest.fixture(autouse=True)
def nothing_outside_the_root_changes(box: Sandbox) -> Iterator[None]:
    yield
    box.assert_outside_unchanged()


def same_inode(a: Path, b: Path) -> bool:
    sa, sb = a.lstat(), b.lstat()
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def host_unique() -> str:
    """A name that must never appear at the host's /."""
    return f"ctrpy-breakout-{uuid.uuid4().hex}"


# -- names -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../escaped", "../../escaped", "a/../../../escaped", "/../escaped"])
def test_dotdot_names_are_clamped_to_the_root(box: Sandbox, name: str) -> None:
    box.apply(Tar().file(name, b"inside").build())
    assert (box.root / "escaped").read_bytes() == b"inside"


def test_dotdot_prefix_to_an_outside_file_writes_inside_the_root(box: Sandbox) -> None:
    box.apply(Tar().file("../outside/sentinel", b"pwned").build())
    assert (box.root / "outside" / "sentinel").read_bytes() == b"pwned"


def test_absolute_names_are_relative_to_the_root(box: Sandbox) -> None:
    box.apply(Tar().file(str(box.sentinel), b"pwned").file("/abs", b"x").build())
    assert (box.root / str(box.sentinel).lstrip("/")).read_bytes() == b"pwned"
    assert (box.root / "abs").read_bytes() == b"x"


# -- symlinked parents -----------------------------------------------------------------


def test_symlink_parent_pointing_to_slash_is_clamped_to_root(box: Sandbox) -> None:
    unique = host_unique()
    box.apply(Tar().symlink("rootlink", "/").file(f"rootlink/{unique}", b"x").build())
    assert (box.root / unique).read_bytes() == b"x"
    assert not Path("/", unique).exists()


@pytest.mark.parametrize("target", ["../..", "../../..", "../../../../../../../../.."])
def test_symlink_parent_pointing_above_the_root_is_clamped_to_root(box: Sandbox, target: str) -> None:
    box.apply(Tar().dir("d").symlink("d/up", target).file("d/up/outside/sentinel", b"pwned").build())
    assert (box.root / "outside" / "sentinel").read_bytes() == b"pwned"


def test_symlink_parent_pointing_to_a_host_directory_resolves_inside_the_root(box: Sandbox) -> None:
    box.apply(Tar().symlink("hostdir", str(box.outside)).file("hostdir/sentinel", b"pwned").build())
    assert (box.root / str(box.outside).lstrip("/") / "sentinel").read_bytes() == b"pwned"


@pytest.mark.parametrize(
    "target", ["/", "../../", "/../../..", "./../../.."], ids=["slash", "up", "slash-up", "dot-up"]
)
def test_umoci_symlink_scoping_prefixes_stay_inside(box: Sandbox, target: str) -> None:
    box.apply(Tar().symlink("link", target).file("link/file", b"container").build())
    assert (box.root / "file").read_bytes() == b"container"


@pytest.mark.parametrize(
    "links",
    [
        pytest.param(lambda t: t.symlink("localetc", "/etc"), id="symlink-to-absolute-etc"),
        pytest.param(lambda t: t.dir("dummy").symlink("localetc", "/dummy/../etc"), id="symlink-up-and-out"),
        pytest.param(
            lambda t: t.dir("dummy").symlink("/dummy/etc", "/etc").symlink("localetc", "/dummy/etc"),
            id="chained-symlinks-absolute",
        ),
        pytest.param(
            lambda t: t.dir("dummy").symlink("/dummy/etc", "/etc").symlink("localetc", "./dummy/etc"),
            id="chained-symlinks-relative",
        ),
    ],
)
def test_file_written_through_symlinks_to_etc_lands_in_the_roots_etc(
    box: Sandbox, links: Callable[[Tar], Tar]
) -> None:
    box.apply(links(Tar().dir("etc")).file("/localetc/unbroken", b"unbroken").build())
    assert (box.root / "etc" / "unbroken").read_bytes() == b"unbroken"


def test_file_written_through_a_symlinked_parent_replaces_the_real_file(box: Sandbox) -> None:
    tar = (
        Tar()
        .dir("etc")
        .file("etc/emptied", b"notempty")
        .symlink("localetc", "/etc")
        .file("/localetc/emptied", b"")
        .build()
    )
    box.apply(tar)
    assert (box.root / "etc" / "emptied").read_bytes() == b""


def test_symlink_loop_in_a_parent_is_an_error_not_a_hang(box: Sandbox) -> None:
    tar = Tar().symlink("a", "b").symlink("b", "a").file("a/x", b"x").build()
    with pytest.raises(UnpackError, match='"a/x"'):
        box.apply(tar)


def test_regular_file_parent_is_an_error_naming_the_entry(box: Sandbox) -> None:
    with raises_naming(UnpackError, '"f/x"'):
        box.apply(Tar().file("f", b"x").file("f/x", b"y").build())


# -- CVE-2025-47290: a directory replaced by a symlink, then written through -------------


def test_directory_replaced_by_symlink_to_outside_then_written_through_stays_inside(
    box: Sandbox,
) -> None:
    tar = (
        Tar()
        .dir("a")
        .file("a/x", b"1")
        .file("a/y", b"2")  # the same parent twice: any cache is warm now
        .symlink("a", str(box.outside))
        .file("a/sentinel", b"pwned")
        .file("a/new", b"pwned")
        .build()
    )
    box.apply(tar)
    inside = box.root / str(box.outside).lstrip("/")
    assert (inside / "sentinel").read_bytes() == b"pwned"
    assert (inside / "new").read_bytes() == b"pwned"
    assert (box.root / "a").is_symlink()


def test_nested_directory_replaced_by_relative_escaping_symlink_stays_inside(box: Sandbox) -> None:
    tar = (
        Tar()
        .dir("a")
        .dir("a/b")
        .dir("a/b/c")
        .file("a/b/c/1", b"1")
        .file("a/b/c/2", b"2")
        .symlink("a/b", "../../../../outside")
        .file("a/b/c/evil", b"pwned")
        .file("a/b/sentinel", b"pwned")
        .build()
    )
    box.apply(tar)
    assert (box.root / "outside" / "c" / "evil").read_bytes() == b"pwned"
    assert (box.root / "outside" / "sentinel").read_bytes() == b"pwned"


def test_directory_replaced_by_a_file_is_seen_by_the_next_entry(box: Sandbox) -> None:
    tar = Tar().dir("a").file("a/x", b"1").file("a", b"now a file").file("a/y", b"2").build()
    with pytest.raises(UnpackError, match='"a/y"'):
        box.apply(tar)


def test_existing_symlink_replaced_by_a_directory_is_written_into(box: Sandbox) -> None:
    os.symlink(str(box.outside), box.root / "d")
    box.apply(Tar().dir("d", mode=0o700).file("d/sentinel", b"inside").build())
    assert not (box.root / "d").is_symlink()
    assert (box.root / "d" / "sentinel").read_bytes() == b"inside"


def test_hardlink_target_parent_replaced_by_a_symlink_is_resolved_again(box: Sandbox) -> None:
    tar = (
        Tar()
        .dir("a")
        .dir("a/b")
        .file("a/b/f", b"old")
        .dir("c")
        .file("c/f", b"new")
        .hardlink("first", "a/b/f")
        .symlink("a/b", "/c")
        .hardlink("second", "a/b/f")
        .build()
    )
    box.apply(tar)
    assert (box.root / "first").read_bytes() == b"old"
    assert same_inode(box.root / "second", box.root / "c" / "f")


# -- the final component is never followed ---------------------------------------------


def test_regular_file_over_a_symlink_to_outside_replaces_the_symlink(box: Sandbox) -> None:
    box.apply(Tar().symlink("f", str(box.sentinel)).file("f", b"pwned").build())
    assert not (box.root / "f").is_symlink()
    assert (box.root / "f").read_bytes() == b"pwned"


def test_regular_file_over_a_preexisting_dangling_symlink_does_not_create_its_target(
    box: Sandbox,
) -> None:
    os.symlink(str(box.outside / "created"), box.root / "f")
    box.apply(Tar().file("f", b"x").build())
    assert not (box.outside / "created").exists()


def test_symlink_entry_mode_is_never_applied_through_the_link(box: Sandbox) -> None:
    box.apply(Tar().symlink("s", str(box.sentinel), mode=0o777).build())
    assert (box.sentinel.stat().st_mode & 0o777) == 0o640


def test_hardlink_to_a_symlink_to_outside_does_not_chmod_the_outside_file(box: Sandbox) -> None:
    # containerd HardlinkSymlinkChmod
    tar = (
        Tar()
        .symlink(str(box.outside / "also-outside"), str(box.sentinel))
        .hardlink("sketchylink", str(box.outside / "also-outside"), mode=0o777)
        .build()
    )
    box.apply(tar)
    assert (box.root / "sketchylink").is_symlink()
    assert (box.sentinel.stat().st_mode & 0o777) == 0o640


def test_directory_over_a_symlink_to_outside_does_not_touch_the_outside_directory(
    box: Sandbox,
) -> None:
    box.apply(Tar().symlink("d", str(box.outside / "subdir")).dir("d", mode=0o777).build())
    assert (box.root / "d").is_dir() and not (box.root / "d").is_symlink()
    assert ((box.outside / "subdir").stat().st_mode & 0o777) == 0o750


def test_device_over_a_symlink_to_outside_does_not_follow_it(box: Sandbox) -> None:
    box.apply(Tar().symlink("n", str(box.sentinel)).fifo("n", mode=0o666).build())
    assert (box.root / "n").is_fifo()


# -- hardlinks -------------------------------------------------------------------------


def _passwd_base() -> Tar:
    return Tar().dir("etc", mode=0o770).file("/etc/passwd", b"inside")


@pytest.mark.parametrize(
    ("extra", "link"),
    [
        pytest.param(
            lambda t: t.dir("breakouts").symlink("breakouts/d1", "../../etc"),
            ("breakouts/mypasswd", "/breakouts/d1/passwd"),
            id="relative",
        ),
        pytest.param(
            lambda t: t.dir("breakouts").dir("downandout").symlink("breakouts/d1", "../downandout/../../etc"),
            ("breakouts/mypasswd", "/breakouts/d1/passwd"),
            id="down-and-out",
        ),
        pytest.param(
            lambda t: t.symlink("localetc", "/etc"), ("localpasswd", "/localetc/passwd"), id="absolute"
        ),
        pytest.param(
            lambda t: t.symlink("localetc", "../../../../../../../etc"),
            ("localpasswd", "/localetc/passwd"),
            id="relative-long",
        ),
        pytest.param(
            lambda t: t.symlink("localetc", "upandout/../../../etc"),
            ("localpasswd", "/localetc/passwd"),
            id="relative-up-and-out",
        ),
        pytest.param(lambda t: t, ("localpasswd", "../../../../../etc/passwd"), id="direct-relative"),
        pytest.param(lambda t: t, ("localpasswd", "/etc/passwd"), id="direct-absolute"),
    ],
)
def test_hardlink_target_is_resolved_inside_the_root(box: Sandbox, extra, link) -> None:  # type: ignore[no-untyped-def]
    name, target = link
    box.apply(extra(_passwd_base()).hardlink(name, target).build())
    assert same_inode(box.root / name, box.root / "etc" / "passwd")


def test_hardlink_to_a_host_file_is_rejected_as_a_missing_target(box: Sandbox) -> None:
    with raises_naming(InvalidArchive, '"stolen"', str(box.sentinel)):
        box.apply(Tar().hardlink("stolen", str(box.sentinel)).build())


def test_hardlink_to_a_host_file_through_a_symlink_is_rejected(box: Sandbox) -> None:
    tar = Tar().symlink("h", str(box.outside)).hardlink("stolen", "h/sentinel").build()
    with raises_naming(InvalidArchive, '"stolen"', "h/sentinel"):
        box.apply(tar)


def test_hardlink_to_a_host_file_through_dotdot_is_rejected(box: Sandbox) -> None:
    with raises_naming(InvalidArchive, '"stolen"', "../outside/sentinel"):
        box.apply(Tar().hardlink("stolen", "../outside/sentinel").build())


def test_hardlink_replacing_a_symlinked_directory_lands_in_a_real_directory(box: Sandbox) -> None:
    # containerd DirectoryOverrideSymlink
    (box.root / "etc").mkdir()
    (box.root / "etc" / "passwd").write_bytes(b"inside")
    os.symlink("/etc", box.root / "localetc")
    box.apply(Tar().dir("/localetc/").hardlink("/localetc/localpasswd", "/etc/passwd").build())
    assert not (box.root / "localetc").is_symlink()
    assert same_inode(box.root / "localetc" / "localpasswd", box.root / "etc" / "passwd")


def test_symlink_replacing_a_directory_redirects_later_hardlinks(box: Sandbox) -> None:
    # containerd SymlinkOverrideDirectory
    (box.root / "etc").mkdir()
    (box.root / "etc" / "passwd").write_bytes(b"inside")
    (box.root / "localetc").mkdir()
    box.apply(
        Tar().symlink("localetc", "../../etc").hardlink("/localetc/localpasswd", "/etc/passwd").build()
    )
    assert same_inode(box.root / "etc" / "localpasswd", box.root / "etc" / "passwd")


def test_file_replacing_a_hardlink_breaks_the_link(box: Sandbox) -> None:
    # containerd DirectoryOverrideSymlinkAndHardlink
    (box.root / "etc").mkdir()
    (box.root / "etc" / "passwd").write_bytes(b"inside")
    os.symlink("etc", box.root / "localetc")
    os.link(box.root / "etc" / "passwd", box.root / "etc" / "localpasswd")
    box.apply(Tar().dir("/localetc/").file("/localetc/localpasswd", b"different").build())
    assert (box.root / "etc" / "passwd").read_bytes() == b"inside"
    assert (box.root / "localetc" / "localpasswd").read_bytes() == b"different"


def test_symlink_named_through_a_dotdot_component_is_cleaned_first(box: Sandbox) -> None:
    # containerd SymlinkParentRelative: "localetc/sub/.." is "localetc"
    tar = (
        _passwd_base()
        .symlink("localetc/sub/..", "/etc/")
        .hardlink("/localetc/localpasswd", "/etc/passwd")
        .build()
    )
    box.apply(tar)
    assert (box.root / "localetc").is_symlink()
    assert same_inode(box.root / "etc" / "localpasswd", box.root / "etc" / "passwd")


# -- the root itself -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["..", "", ".", "/", "a/.."])
def test_symlink_entry_for_the_root_is_rejected(box: Sandbox, name: str) -> None:
    # umoci CVE-2021-29136 (containerd's SymlinkParentDirectory / SymlinkEmptyFilename
    # silently skip these; we refuse the archive).
    with pytest.raises(InvalidArchive, match="root directory"):
        box.apply(_passwd_base().symlink(name, "/etc/").build())
    assert box.root.is_dir() and not box.root.is_symlink()


@pytest.mark.parametrize("name", ["./", "/"])
def test_regular_file_entry_for_the_root_is_rejected(box: Sandbox, name: str) -> None:
    data = raw_header(name.encode(), size=0) + bytes(1024)
    with pytest.raises(InvalidArchive, match="not a directory"):
        box.apply(pad(data))
    assert box.root.is_dir()


def test_hardlink_to_the_root_is_rejected(box: Sandbox) -> None:
    with pytest.raises(InvalidArchive):
        box.apply(Tar().hardlink("x", "/").build())


def test_hardlink_to_a_directory_is_rejected(box: Sandbox) -> None:
    with pytest.raises(InvalidArchive, match="is a directory"):
        box.apply(Tar().dir("d").hardlink("x", "d").build())


# -- whiteouts -------------------------------------------------------------------------


@pytest.mark.parametrize("name", [".wh...", "etc/.wh...", ".wh..", "etc/.wh..", ".wh."])
def test_whiteout_of_dot_or_dotdot_is_an_invalid_archive(box: Sandbox, name: str) -> None:
    (box.root / "etc").mkdir()
    (box.root / "etc" / "passwd").write_bytes(b"inside")
    with raises_naming(InvalidArchive, f'"{name}"', "whiteout"):
        box.apply(Tar().file(name).build())
    assert (box.root / "etc" / "passwd").read_bytes() == b"inside"


def test_whiteout_with_a_dotdot_prefix_removes_inside_the_root_only(box: Sandbox) -> None:
    (box.root / "outside").mkdir()
    box.apply(Tar().file("../.wh.outside").build())
    assert not (box.root / "outside").exists()


def test_whiteout_through_an_escaping_symlink_parent_removes_inside_the_root_only(box: Sandbox) -> None:
    (box.root / "outside").mkdir()
    (box.root / "outside" / "sentinel").write_bytes(b"inside")
    os.symlink("../..", box.root / "up")
    box.apply(Tar().file("up/outside/.wh.sentinel").build())
    assert not (box.root / "outside" / "sentinel").exists()


def test_opaque_whiteout_through_a_symlink_to_outside_clears_inside_the_root_only(box: Sandbox) -> None:
    os.symlink(str(box.outside), box.root / "o")
    box.apply(Tar().opaque("o").build())


def test_whiteout_of_a_symlink_removes_the_link_not_its_target(box: Sandbox) -> None:
    # containerd WhiteoutSymlink
    (box.root / "etc").mkdir()
    (box.root / "etc" / "passwd").write_bytes(b"all users")
    os.symlink("/etc", box.root / "localetc")
    box.apply(Tar().whiteout("localetc").build())
    assert not (box.root / "localetc").exists() and not (box.root / "localetc").is_symlink()
    assert (box.root / "etc" / "passwd").read_bytes() == b"all users"
