"""Whiteouts: ``.wh.NAME`` and ``.wh..wh..opq``, in delete mode and in overlay mode."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from ctrpy.errors import UnpackError
from tests.builders import Tar
from tests.helpers import apply_bytes, raises_naming

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mknod of whiteout devices needs root")
OPAQUE_XATTR = "trusted.overlay.opaque" if os.geteuid() == 0 else "user.overlay.opaque"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A root holding a 'lower layer' tree."""
    r = tmp_path / "root"
    (r / "etc").mkdir(parents=True)
    (r / "etc" / "passwd").write_bytes(b"all users")
    (r / "etc" / "hosts").write_bytes(b"localhost")
    (r / "dir" / "sub" / "deeper").mkdir(parents=True)
    (r / "dir" / "file1").write_bytes(b"1")
    (r / "dir" / "sub" / "file2").write_bytes(b"2")
    (r / "dir" / "sub" / "deeper" / "file3").write_bytes(b"3")
    (r / "dir" / ".hidden").write_bytes(b"h")
    return r


def names(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir())


# -- delete mode -----------------------------------------------------------------------


def test_whiteout_removes_a_lower_file(root: Path) -> None:
    apply_bytes(root, Tar().whiteout("etc/passwd").build())
    assert names(root / "etc") == ["hosts"]


def test_whiteout_removes_a_lower_directory_tree(root: Path) -> None:
    (root / "dir" / "sub").chmod(0o555)
    apply_bytes(root, Tar().whiteout("dir").build())
    assert not (root / "dir").exists()


def test_whiteout_of_a_hidden_file_removes_it(root: Path) -> None:
    apply_bytes(root, Tar().whiteout("dir/.hidden").build())
    assert not (root / "dir" / ".hidden").exists()


def test_whiteout_of_a_missing_file_is_fine(root: Path) -> None:
    result = apply_bytes(root, Tar().whiteout("etc/nothing-here").build())
    assert result.entries == 1
    assert names(root / "etc") == ["hosts", "passwd"]


def test_whiteout_files_are_never_written(root: Path) -> None:
    apply_bytes(root, Tar().whiteout("etc/passwd").opaque("dir").build())
    assert not list(root.rglob(".wh.*"))


def test_whiteout_keeps_the_parent_directory_times(root: Path) -> None:
    os.utime(root / "etc", ns=(789_000_000_111, 123_000_000_456))
    apply_bytes(root, Tar().whiteout("etc/passwd").build())
    st = (root / "etc").stat()
    assert (st.st_atime_ns, st.st_mtime_ns) == (789_000_000_111, 123_000_000_456)


def test_whiteout_entry_with_a_directory_type_is_still_a_whiteout(root: Path) -> None:
    apply_bytes(root, Tar().dir("etc/.wh.passwd").build())
    assert names(root / "etc") == ["hosts"]


def test_whiteout_does_not_remove_a_file_written_by_the_same_layer(root: Path) -> None:
    # OCI image spec: whiteouts only apply to lower layers.
    apply_bytes(root, Tar().file("etc/new", b"new").whiteout("etc/new").build())
    assert (root / "etc" / "new").read_bytes() == b"new"


def test_whiteout_of_a_directory_this_layer_wrote_into_removes_only_lower_children(root: Path) -> None:
    tar = Tar().dir("dir").file("dir/sub/added", b"a").whiteout("dir").build()
    apply_bytes(root, tar)
    assert names(root / "dir") == ["sub"]
    assert names(root / "dir" / "sub") == ["added"]


def test_whiteout_through_a_symlinked_parent_removes_in_the_target(root: Path) -> None:
    # containerd WhiteoutSymlinkPath
    os.symlink("/etc", root / "localetc")
    apply_bytes(root, Tar().whiteout("localetc/passwd").build())
    assert names(root / "etc") == ["hosts"]


def test_whiteout_below_a_dangling_symlink_removes_nothing(root: Path) -> None:
    # containerd WhiteoutDeadSymlinkParent
    os.symlink("/dne", root / "localetc")
    apply_bytes(root, Tar().whiteout("localetc/etc").build())
    assert (root / "etc" / "passwd").read_bytes() == b"all users"


def test_whiteout_path_is_cleaned_lexically(root: Path) -> None:
    # containerd WhiteoutRelativePath
    apply_bytes(root, Tar().file("dne/../.wh.etc").build())
    assert not (root / "etc").exists()


def test_directory_named_like_a_whiteout_is_ordinary_content(root: Path) -> None:
    # containerd WhiteoutDirectoryName
    apply_bytes(root, Tar().file(".wh.etc/somefile", b"non-empty").build())
    assert (root / "etc" / "passwd").read_bytes() == b"all users"
    assert (root / ".wh.etc" / "somefile").read_bytes() == b"non-empty"


def test_aufs_metadata_entries_are_skipped(root: Path) -> None:
    tar = (
        Tar()
        .dir(".wh..wh.plnk")
        .file(".wh..wh.plnk/1234.5678", b"x")
        .file(".wh..wh.aufs")
        .file("etc/.wh..wh.orph")
        .build()
    )
    result = apply_bytes(root, tar)
    assert result.entries == 4
    assert names(root) == ["dir", "etc"]
    assert names(root / "etc") == ["hosts", "passwd"]


def test_opaque_marker_removes_the_lower_children_and_keeps_the_directory(root: Path) -> None:
    os.utime(root / "dir", ns=(5_000_000_000, 6_000_000_000))
    apply_bytes(root, Tar().opaque("dir").build())
    assert (root / "dir").is_dir()
    assert names(root / "dir") == []
    assert (root / "dir").stat().st_mtime_ns == 6_000_000_000


def test_opaque_marker_after_entries_keeps_the_entries_of_the_same_layer(root: Path) -> None:
    tar = Tar().dir("dir").file("dir/new", b"n").file("dir/file1", b"replaced").opaque("dir").build()
    apply_bytes(root, tar)
    assert names(root / "dir") == ["file1", "new"]
    assert (root / "dir" / "file1").read_bytes() == b"replaced"


def test_opaque_marker_before_entries_keeps_the_entries(root: Path) -> None:
    tar = Tar().dir("dir").opaque("dir").file("dir/new", b"n").build()
    apply_bytes(root, tar)
    assert names(root / "dir") == ["new"]


def test_opaque_marker_keeps_nested_entries_and_removes_their_lower_siblings(root: Path) -> None:
    tar = Tar().file("dir/sub/deeper/added", b"a").opaque("dir").build()
    apply_bytes(root, tar)
    assert names(root / "dir") == ["sub"]
    assert names(root / "dir" / "sub") == ["deeper"]
    assert names(root / "dir" / "sub" / "deeper") == ["added"]


def test_opaque_marker_on_a_missing_directory_creates_it(root: Path) -> None:
    apply_bytes(root, Tar().opaque("new/dir").build())
    assert names(root / "new" / "dir") == []


def test_opaque_marker_at_the_root_clears_the_lower_tree(root: Path) -> None:
    apply_bytes(root, Tar().file("kept", b"k").opaque("").build())
    assert names(root) == ["kept"]


def test_repeated_opaque_markers_are_harmless(root: Path) -> None:
    apply_bytes(root, Tar().opaque("dir").file("dir/x", b"x").opaque("dir").build())
    assert names(root / "dir") == ["x"]


# -- overlay mode ----------------------------------------------------------------------


@pytest.fixture
def upper(tmp_path: Path) -> Path:
    return tmp_path / "upper"


def is_whiteout_device(path: Path) -> bool:
    st = path.lstat()
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def opaque_value(path: Path) -> bytes:
    return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False)


@needs_root
def test_overlay_whiteout_becomes_a_0_0_character_device(upper: Path) -> None:
    apply_bytes(upper, Tar().whiteout("etc/passwd").build(), whiteouts="overlay")
    path = upper / "etc" / "passwd"
    assert is_whiteout_device(path)
    assert (path.lstat().st_uid, path.lstat().st_gid) == (os.getuid(), os.getgid())


@needs_root
def test_overlay_whiteout_device_is_owned_like_its_header(upper: Path) -> None:
    apply_bytes(upper, Tar().whiteout("gone", uid=1234, gid=5678).build(), whiteouts="overlay")
    st = (upper / "gone").lstat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1234, 5678, 0)


@pytest.mark.parametrize(
    "layer",
    [
        pytest.param(Tar().dir("d").file("d/x", b"x").opaque("d"), id="opaque-marker"),
        pytest.param(
            Tar().dir("d").file("d/x", b"x").whiteout("d"), id="whiteout-of-a-directory-of-the-same-layer"
        ),
        pytest.param(Tar().whiteout("d").dir("d").file("d/x", b"x"), id="whiteout-then-directory", marks=needs_root),
        pytest.param(Tar().whiteout("d").file("d/x", b"x"), id="whiteout-then-entry-below-it", marks=needs_root),
    ],
)
def test_overlay_directory_hidden_below_but_written_by_the_layer_is_opaque(upper: Path, layer: Tar) -> None:
    apply_bytes(upper, layer.build(), whiteouts="overlay")
    assert opaque_value(upper / "d") == b"y"
    assert names(upper / "d") == ["x"]
    assert (upper / "d" / "x").read_bytes() == b"x"


def test_overlay_opaque_marker_with_missing_parents_creates_them(upper: Path) -> None:
    apply_bytes(upper, Tar().opaque("a/b/c").build(), whiteouts="overlay")
    assert opaque_value(upper / "a" / "b" / "c") == b"y"


@needs_root
def test_overlay_whiteout_with_missing_parents_creates_them(upper: Path) -> None:
    apply_bytes(upper, Tar().whiteout("a/b/c").build(), whiteouts="overlay")
    assert is_whiteout_device(upper / "a" / "b" / "c")


def test_overlay_whiteout_of_a_file_of_the_same_layer_keeps_the_file(upper: Path) -> None:
    apply_bytes(upper, Tar().file("f", b"f").whiteout("f").build(), whiteouts="overlay")
    assert (upper / "f").read_bytes() == b"f"


def test_overlay_mode_never_writes_whiteout_files(upper: Path) -> None:
    apply_bytes(upper, Tar().opaque("d").build(), whiteouts="overlay")
    assert not list(upper.rglob(".wh.*"))


def test_overlay_mode_cannot_hardlink_to_a_file_of_a_lower_layer(upper: Path) -> None:
    with raises_naming(UnpackError, '"link"', "lower"):
        apply_bytes(upper, Tar().hardlink("link", "lower-file").build(), whiteouts="overlay")


def test_whiteouts_in_read_only_lower_directories_keep_their_modes(root: Path) -> None:
    (root / "dir" / "sub").chmod(0o555)
    (root / "etc").chmod(0o555)
    (root / "dir").chmod(0o500)
    apply_bytes(root, Tar().whiteout("etc/passwd").opaque("dir/sub").build())
    assert names(root / "etc") == ["hosts"]
    assert names(root / "dir" / "sub") == []
    assert [stat.S_IMODE((root / d).stat().st_mode) for d in ("etc", "dir", "dir/sub")] == [
        0o555,
        0o500,
        0o555,
    ]
