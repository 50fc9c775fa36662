"""Every tar entry type: how it lands in the root, and how it replaces what is there."""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from ctrpy.errors import InvalidArchive, UnpackError
from tests.builders import Entry, Tar, blockdev, chardev, pad, raw_header
from tests.helpers import GNU_SPARSE_FORMATS, apply_bytes, gnu_tar_create, raises_naming, sparse_tree

is_root = os.geteuid() == 0
needs_root = pytest.mark.skipif(not is_root, reason="needs root")


def inode(path: Path) -> tuple[int, int]:
    st = path.lstat()
    return st.st_dev, st.st_ino


# -- regular files ---------------------------------------------------------------------


def test_regular_file_content_is_written(rootfs: Path) -> None:
    apply_bytes(rootfs, Tar().file("hello.txt", b"hello world").build())
    assert (rootfs / "hello.txt").read_bytes() == b"hello world"


def test_empty_regular_file_is_created(rootfs: Path) -> None:
    apply_bytes(rootfs, Tar().file("empty").build())
    assert (rootfs / "empty").read_bytes() == b""


def test_large_file_spanning_many_chunks_is_written_exactly(rootfs: Path) -> None:
    data = os.urandom(1 << 16) * 50 + b"tail"
    apply_bytes(rootfs, Tar().file("big", data).build())
    assert (rootfs / "big").read_bytes() == data


def test_contiguous_file_type_is_a_regular_file(rootfs: Path) -> None:
    apply_bytes(rootfs, Tar().entry("c", tarfile.CONTTYPE, b"contiguous").build())
    assert (rootfs / "c").read_bytes() == b"contiguous"


def test_regular_file_replaces_an_existing_file_without_touching_its_other_links(rootfs: Path) -> None:
    (rootfs / "a").write_bytes(b"old")
    os.link(rootfs / "a", rootfs / "b")
    apply_bytes(rootfs, Tar().file("a", b"new").build())
    assert (rootfs / "a").read_bytes() == b"new"
    assert (rootfs / "b").read_bytes() == b"old"


def test_regular_file_replacing_a_directory_removes_the_whole_tree(rootfs: Path) -> None:
    (rootfs / "d" / "sub").mkdir(parents=True)
    (rootfs / "d" / "sub" / "f").write_bytes(b"x")
    (rootfs / "d" / "sub").chmod(0o500)
    apply_bytes(rootfs, Tar().file("d", b"file now").build())
    assert (rootfs / "d").read_bytes() == b"file now"


def test_missing_parent_directories_are_created(rootfs: Path) -> None:
    apply_bytes(rootfs, Tar().file("a/b/c/file", b"deep").build())
    assert (rootfs / "a" / "b" / "c" / "file").read_bytes() == b"deep"


# -- directories -----------------------------------------------------------------------


def test_directories_are_created_with_and_without_parents(rootfs: Path) -> None:
    # containerd TestApplyTar/DirectoryCreation
    (rootfs / "etc").mkdir()
    tar = (
        Tar()
        .dir("/etc/subdir")
        .dir("/etc/subdir2/")
        .dir("/etc/subdir2/more")
        .dir("/other/noparent-1/1")
        .dir("/other/noparent-2/2/")
        .build()
    )
    apply_bytes(rootfs, tar)
    for d in ["etc/subdir", "etc/subdir2/more", "other/noparent-1/1", "other/noparent-2/2"]:
        assert (rootfs / d).is_dir()


def test_directory_entry_merges_into_an_existing_directory(rootfs: Path) -> None:
    (rootfs / "d").mkdir(mode=0o700)
    (rootfs / "d" / "kept").write_bytes(b"lower")
    apply_bytes(rootfs, Tar().dir("d", mode=0o751).file("d/new", b"upper").build())
    assert sorted(p.name for p in (rootfs / "d").iterdir()) == ["kept", "new"]
    assert stat.S_IMODE((rootfs / "d").stat().st_mode) == 0o751


def test_directory_replaces_an_existing_file(rootfs: Path) -> None:
    (rootfs / "d").write_bytes(b"file")
    apply_bytes(rootfs, Tar().dir("d").build())
    assert (rootfs / "d").is_dir()


def test_directory_replaces_an_existing_symlink_to_a_directory(rootfs: Path) -> None:
    (rootfs / "real").mkdir()
    os.symlink("real", rootfs / "d")
    apply_bytes(rootfs, Tar().dir("d").file("d/x", b"x").build())
    assert not (rootfs / "d").is_symlink()
    assert not (rootfs / "real" / "x").exists()


def test_gnu_dumpdir_is_a_directory(rootfs: Path) -> None:
    apply_bytes(rootfs, Tar().entry("dd", b"D", b"Yfile\0\0", mode=0o755).build())
    assert (rootfs / "dd").is_dir()


def test_old_style_regular_type_with_a_trailing_slash_is_a_directory(rootfs: Path) -> None:
    data = raw_header(b"olddir/", kind=b"\0", mode=b"0000755\0") + bytes(1024)
    apply_bytes(rootfs, data)
    assert (rootfs / "olddir").is_dir()


# -- symlinks --------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["/etc/passwd", "../../../x", "relative/target", "dangling", "a/../b"])
def test_symlink_target_is_kept_verbatim(rootfs: Path, target: str) -> None:
    apply_bytes(rootfs, Tar().symlink("link", target).build())
    assert os.readlink(rootfs / "link") == target


def test_symlink_replaces_an_existing_file(rootfs: Path) -> None:
    (rootfs / "s").write_bytes(b"file")
    apply_bytes(rootfs, Tar().symlink("s", "target").build())
    assert os.readlink(rootfs / "s") == "target"


def test_symlink_replaces_an_existing_directory_tree(rootfs: Path) -> None:
    (rootfs / "s" / "sub").mkdir(parents=True)
    apply_bytes(rootfs, Tar().symlink("s", "target").build())
    assert os.readlink(rootfs / "s") == "target"


def test_symlink_with_an_empty_target_is_invalid(rootfs: Path) -> None:
    with pytest.raises(InvalidArchive, match='"s"'):
        apply_bytes(rootfs, Tar().symlink("s", "").build())


# -- hardlinks -------------------------------------------------------------------------


def test_hardlink_shares_the_inode_of_its_target(rootfs: Path) -> None:
    apply_bytes(rootfs, Tar().file("a", b"data").hardlink("b", "a").build())
    assert inode(rootfs / "a") == inode(rootfs / "b")
    assert (rootfs / "b").read_bytes() == b"data"


def test_hardlink_to_a_symlink_links_the_symlink_itself(rootfs: Path) -> None:
    # umoci TestUnpackHardlink
    tar = (
        Tar()
        .file("regular", b"content")
        .hardlink("hard link", "/regular")
        .symlink("link", "../../../regular")
        .hardlink("hard link to symlink", "../../../link")
        .build()
    )
    apply_bytes(rootfs, tar)
    assert inode(rootfs / "hard link") == inode(rootfs / "regular")
    assert inode(rootfs / "hard link to symlink") == inode(rootfs / "link")
    assert os.readlink(rootfs / "hard link to symlink") == "../../../regular"


def test_hardlink_to_a_symlink_created_before_its_target(rootfs: Path) -> None:
    # containerd HardlinkSymlinkBeforeCreateTarget
    tar = (
        Tar()
        .dir("etc")
        .symlink("localpasswd", "/etc/passwd")
        .hardlink("localpasswd-dup", "localpasswd")
        .file("/etc/passwd", b"after")
        .build()
    )
    apply_bytes(rootfs, tar)
    assert inode(rootfs / "localpasswd-dup") == inode(rootfs / "localpasswd")
    assert (rootfs / "etc" / "passwd").read_bytes() == b"after"


@needs_root
def test_hardlink_header_owner_and_mode_are_not_applied(rootfs: Path) -> None:
    tar = (
        Tar()
        .file("regular", b"x", mode=0o640)
        .hardlink("hard", "regular", uid=1337, gid=2020, mode=0o777)
    )
    apply_bytes(rootfs, tar.build())
    st = (rootfs / "regular").stat()
    assert (st.st_uid, st.st_gid) == (os.getuid(), os.getgid())
    assert stat.S_IMODE(st.st_mode) == 0o640


def test_hardlink_to_a_missing_target_is_invalid(rootfs: Path) -> None:
    with raises_naming(InvalidArchive, '"b"', '"a"'):
        apply_bytes(rootfs, Tar().hardlink("b", "a").build())


def test_hardlink_to_itself_is_a_no_op(rootfs: Path) -> None:
    apply_bytes(rootfs, Tar().file("a", b"x").hardlink("a", "a").build())
    assert (rootfs / "a").read_bytes() == b"x"


def test_hardlink_replaces_an_existing_file(rootfs: Path) -> None:
    (rootfs / "b").write_bytes(b"old")
    apply_bytes(rootfs, Tar().file("a", b"new").hardlink("b", "a").build())
    assert inode(rootfs / "a") == inode(rootfs / "b")


def test_hardlink_to_a_file_of_a_lower_layer(rootfs: Path) -> None:
    (rootfs / "lower").write_bytes(b"from below")
    apply_bytes(rootfs, Tar().hardlink("upper", "lower").build())
    assert inode(rootfs / "lower") == inode(rootfs / "upper")


# -- devices and fifos -----------------------------------------------------------------


@needs_root
@pytest.mark.parametrize(
    ("device", "is_type", "numbers", "mode"),
    [
        pytest.param(chardev("dev/null", 1, 3, mode=0o666), stat.S_ISCHR, (1, 3), 0o666, id="character"),
        pytest.param(blockdev("dev/loop9", 7, 9, mode=0o660), stat.S_ISBLK, (7, 9), 0o660, id="block"),
    ],
)
def test_device_is_created_with_its_numbers_and_mode(
    rootfs: Path, device: Entry, is_type: Callable[[int], bool], numbers: tuple[int, int], mode: int
) -> None:
    apply_bytes(rootfs, Tar().add(device).build())
    st = (rootfs / device.name).lstat()
    assert is_type(st.st_mode)
    assert (os.major(st.st_rdev), os.minor(st.st_rdev)) == numbers
    assert stat.S_IMODE(st.st_mode) == mode


def test_devices_are_skipped_with_a_warning_when_not_applying_owners(rootfs: Path) -> None:
    warnings: list[str] = []
    tar = Tar().chardev("null", 1, 3).blockdev("sda", 8, 0).file("after", b"ok").build()
    result = apply_bytes(rootfs, tar, same_owner=False, on_warning=warnings.append)
    assert not (rootfs / "null").exists() and not (rootfs / "sda").exists()
    assert (rootfs / "after").read_bytes() == b"ok"
    assert result.entries == 3
    assert len(warnings) == 2
    assert warnings[0].startswith('layer entry "null": character device skipped')


def test_devices_not_created_go_to_on_skipped_device_instead_of_a_warning_each(rootfs: Path) -> None:
    warnings: list[str] = []
    skipped: list[tuple[str, str]] = []
    tar = Tar().chardev("dev/null", 1, 3).blockdev("sda", 8, 0).fifo("pipe").build()
    apply_bytes(rootfs, tar, same_owner=False, on_warning=warnings.append,
                on_skipped_device=lambda entry, why: skipped.append((entry, why)))
    assert warnings == []
    assert skipped == [("dev/null", "not applying owners"), ("sda", "not applying owners")]
    assert (rootfs / "pipe").exists()


def test_fifo_is_created_even_when_not_applying_owners(rootfs: Path) -> None:
    apply_bytes(rootfs, Tar().fifo("pipe", mode=0o620).build(), same_owner=False)
    st = (rootfs / "pipe").lstat()
    assert stat.S_ISFIFO(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o620


@needs_root
def test_device_replaces_an_existing_file(rootfs: Path) -> None:
    (rootfs / "n").write_bytes(b"file")
    apply_bytes(rootfs, Tar().chardev("n", 1, 3).build())
    assert stat.S_ISCHR((rootfs / "n").lstat().st_mode)


@pytest.mark.parametrize(("major", "minor"), [(1 << 12, 0), (0, 1 << 20), (1 << 40, 1)])
def test_device_numbers_out_of_range_are_invalid(rootfs: Path, major: int, minor: int) -> None:
    tar = Tar(tarfile.GNU_FORMAT).chardev("bad", major, minor).build()
    with raises_naming(InvalidArchive, '"bad"', "device"):
        apply_bytes(rootfs, tar)


def test_negative_device_numbers_are_invalid(rootfs: Path) -> None:
    tar = Tar(tarfile.GNU_FORMAT).chardev("bad", -1, 0).build()
    with pytest.raises(InvalidArchive, match="device number"):
        apply_bytes(rootfs, tar)


# -- names -----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT], ids=["pax", "gnu"])
def test_long_names_and_link_targets_are_kept(rootfs: Path, fmt: int) -> None:
    deep = "/".join(["component-" + "x" * 40] * 8)  # > 255 bytes in total
    long_target = "t" * 300
    tar = (
        Tar(fmt).file(deep + "/file", b"deep").symlink("sym", long_target).hardlink("hl", deep + "/file")
    )
    apply_bytes(rootfs, tar.build())
    assert (rootfs / deep / "file").read_bytes() == b"deep"
    assert os.readlink(rootfs / "sym") == long_target
    assert inode(rootfs / "hl") == inode(rootfs / deep / "file")


def test_ustar_prefix_field_is_joined_to_the_name(rootfs: Path) -> None:
    name = "p" * 120 + "/" + "n" * 80
    apply_bytes(rootfs, Tar(tarfile.USTAR_FORMAT).file(name, b"x").build())
    assert (rootfs / name).read_bytes() == b"x"


def test_component_of_exactly_name_max_bytes_is_fine(rootfs: Path) -> None:
    apply_bytes(rootfs, Tar().file("n" * 255, b"x").build())
    assert (rootfs / ("n" * 255)).read_bytes() == b"x"


def test_component_longer_than_name_max_fails_naming_the_entry(rootfs: Path) -> None:
    with raises_naming(UnpackError, "n" * 256):
        apply_bytes(rootfs, Tar().file("n" * 256, b"x").build())


def test_non_ascii_names_are_kept(rootfs: Path) -> None:
    apply_bytes(
        rootfs, Tar().dir("données").file("données/日本語.txt", b"x").symlink("ü", "日本語").build()
    )
    assert (rootfs / "données" / "日本語.txt").read_bytes() == b"x"
    assert os.readlink(rootfs / "ü") == "日本語"


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT], ids=["pax", "gnu"])
def test_names_that_are_not_utf8_are_kept_byte_for_byte(rootfs: Path, fmt: int) -> None:
    name = os.fsdecode(b"latin1-\xe9t\xe9")
    apply_bytes(rootfs, Tar(fmt).file(name, b"x").build())
    assert os.listdir(bytes(rootfs)) == [b"latin1-\xe9t\xe9"]


def test_nul_byte_in_a_pax_path_is_invalid(rootfs: Path) -> None:
    with pytest.raises(InvalidArchive, match="NUL"):
        apply_bytes(rootfs, Tar().file("x", b"", pax={"path": "a\0b"}).build())


# -- other types -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", [b"V", b"M", b"Z"])
def test_unknown_entry_types_are_skipped_with_a_warning(rootfs: Path, kind: bytes) -> None:
    warnings: list[str] = []
    tar = Tar().entry("odd", kind, b"some data to skip").file("after", b"ok").build()
    result = apply_bytes(rootfs, tar, on_warning=warnings.append)
    assert (rootfs / "after").read_bytes() == b"ok"
    assert not (rootfs / "odd").exists()
    assert result.entries == 2
    assert len(warnings) == 1 and warnings[0].startswith('layer entry "odd": skipped')


def test_global_pax_headers_are_not_applied(rootfs: Path) -> None:
    import io

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT, pax_headers={"comment": "git"}) as tf:
        info = tarfile.TarInfo("f")
        info.size = 1
        tf.addfile(info, io.BytesIO(b"x"))
    result = apply_bytes(rootfs, buf.getvalue())
    assert result.entries == 1
    assert (rootfs / "f").read_bytes() == b"x"


def test_raw_header_data_after_an_unknown_entry_is_resynchronised(rootfs: Path) -> None:
    data = pad(raw_header(b"weird", kind=b"Q", size=700) + b"q" * 700)
    data += pad(raw_header(b"f", size=3) + b"abc") + bytes(1024)
    apply_bytes(rootfs, data, on_warning=lambda _m: None)
    assert (rootfs / "f").read_bytes() == b"abc"


# -- sparse files (written by GNU tar) -------------------------------------------------

needs_gnu_tar = pytest.mark.skipif(shutil.which("tar") is None, reason="GNU tar not installed")


@needs_gnu_tar
@pytest.mark.parametrize("args", GNU_SPARSE_FORMATS)
def test_sparse_files_from_gnu_tar_are_written_with_their_holes(tmp_path: Path, args: list[str]) -> None:
    src = sparse_tree(tmp_path / "src")
    rootfs = tmp_path / "root"
    apply_bytes(rootfs, gnu_tar_create(src, "--sparse", *args, names=("sparse", "plain")))
    assert (rootfs / "sparse").read_bytes() == (src / "sparse").read_bytes()
    assert (rootfs / "plain").read_bytes() == b"after the sparse file"
