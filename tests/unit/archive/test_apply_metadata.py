"""Modes, owners, times and xattrs of applied entries."""

from __future__ import annotations

import errno
import os
import stat
import tarfile
from pathlib import Path

import pytest

from ctrpy.errors import InvalidArchive
from tests.builders import DEFAULT_MTIME, Tar
from tests.helpers import apply_bytes, raises_naming

is_root = os.geteuid() == 0
needs_root = pytest.mark.skipif(not is_root, reason="needs root")
NS = 1_000_000_000


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def supports_user_xattrs(path: Path) -> bool:
    probe = path / ".xattr-probe"
    probe.write_bytes(b"")
    try:
        os.setxattr(probe, "user.probe", b"1")
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
            return False
        raise
    finally:
        probe.unlink()
    return True


# -- modes -----------------------------------------------------------------------------


@pytest.mark.parametrize("bits", [0o644, 0o600, 0o777, 0o000, 0o4755, 0o2711, 0o1777, 0o6555])
def test_file_mode_is_applied_exactly_ignoring_the_umask(rootfs: Path, bits: int) -> None:
    apply_bytes(rootfs, Tar().file("f", b"x", mode=bits).build())
    assert mode(rootfs / "f") == bits


@needs_root
def test_setuid_survives_a_change_of_owner(rootfs: Path) -> None:
    apply_bytes(rootfs, Tar().file("su", b"x", mode=0o4755, uid=1000, gid=1000).build())
    st = (rootfs / "su").stat()
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (1000, 0o4755)


@pytest.mark.parametrize("bits", [0o555, 0o644, 0o500, 0o000, 0o1777, 0o2755])
def test_directory_mode_is_applied_after_it_is_filled(rootfs: Path, bits: int) -> None:
    tar = Tar().dir("d", mode=bits).file("d/f", b"x").dir("d/sub", mode=bits).file("d/sub/g", b"y")
    apply_bytes(rootfs, tar.build())
    assert mode(rootfs / "d") == bits
    (rootfs / "d").chmod(0o700)  # so that a non-rootfs test can look inside
    assert mode(rootfs / "d" / "sub") == bits
    (rootfs / "d" / "sub").chmod(0o700)
    assert (rootfs / "d" / "sub" / "g").read_bytes() == b"y"


def test_directory_entry_updates_the_mode_of_an_existing_directory(rootfs: Path) -> None:
    (rootfs / "d").mkdir(mode=0o700)
    apply_bytes(rootfs, Tar().dir("d", mode=0o755).build())
    assert mode(rootfs / "d") == 0o755


def test_last_entry_for_a_directory_wins(rootfs: Path) -> None:
    apply_bytes(rootfs, Tar().dir("d", mode=0o700).dir("d", mode=0o751).build())
    assert mode(rootfs / "d") == 0o751


def test_root_directory_entry_updates_the_roots_metadata(rootfs: Path) -> None:
    apply_bytes(rootfs, Tar().dir("./", mode=0o751, mtime=DEFAULT_MTIME).file("f").build())
    assert mode(rootfs) == 0o751
    assert rootfs.stat().st_mtime_ns == DEFAULT_MTIME * NS


def test_implicit_parent_directories_are_searchable(rootfs: Path) -> None:
    apply_bytes(rootfs, Tar().file("a/b/f", b"x").build())
    assert mode(rootfs / "a") & 0o700 == 0o700


def test_symlink_mode_bits_are_not_applied_to_anything(rootfs: Path) -> None:
    (rootfs / "target").write_bytes(b"t")
    (rootfs / "target").chmod(0o600)
    apply_bytes(rootfs, Tar().symlink("link", "target", mode=0o777).build())
    assert mode(rootfs / "target") == 0o600


# -- times -----------------------------------------------------------------------------


def test_file_mtime_is_applied(rootfs: Path) -> None:
    apply_bytes(rootfs, Tar().file("f", b"x", mtime=DEFAULT_MTIME).build())
    assert (rootfs / "f").stat().st_mtime_ns == DEFAULT_MTIME * NS


def test_pax_fractional_mtime_is_applied_to_the_nanosecond(rootfs: Path) -> None:
    tar = Tar().file("f", b"x", pax={"mtime": "1600000000.123456789"}).build()
    apply_bytes(rootfs, tar)
    assert (rootfs / "f").stat().st_mtime_ns == 1_600_000_000_123_456_789


def test_pax_atime_is_applied(rootfs: Path) -> None:
    tar = Tar().file("f", b"x", pax={"atime": "1500000000.5"}).build()
    apply_bytes(rootfs, tar)
    assert (rootfs / "f").stat().st_atime_ns == 1_500_000_000_500_000_000


def test_negative_pax_mtime_is_applied(rootfs: Path) -> None:
    apply_bytes(rootfs, Tar().file("f", b"x", pax={"mtime": "-86400"}).build())
    assert (rootfs / "f").stat().st_mtime_ns == -86400 * NS


def test_symlink_mtime_is_applied_to_the_link_itself(rootfs: Path) -> None:
    (rootfs / "target").write_bytes(b"t")
    os.utime(rootfs / "target", ns=(NS, NS))
    apply_bytes(rootfs, Tar().symlink("link", "target", mtime=DEFAULT_MTIME).build())
    assert (rootfs / "link").lstat().st_mtime_ns == DEFAULT_MTIME * NS
    assert (rootfs / "target").stat().st_mtime_ns == NS


def test_fifo_mtime_is_applied(rootfs: Path) -> None:
    apply_bytes(rootfs, Tar().fifo("p", mtime=DEFAULT_MTIME).build())
    assert (rootfs / "p").lstat().st_mtime_ns == DEFAULT_MTIME * NS


def test_directory_mtime_is_applied_after_its_children_are_written(rootfs: Path) -> None:
    tar = Tar().dir("d", mtime=DEFAULT_MTIME).file("d/a", b"a").dir("d/sub", mtime=DEFAULT_MTIME + 1).file("d/sub/b")
    apply_bytes(rootfs, tar.build())
    assert (rootfs / "d").stat().st_mtime_ns == DEFAULT_MTIME * NS
    assert (rootfs / "d" / "sub").stat().st_mtime_ns == (DEFAULT_MTIME + 1) * NS


# -- owners ----------------------------------------------------------------------------


@needs_root
def test_owners_are_applied_to_every_type(rootfs: Path) -> None:
    tar = (
        Tar()
        .dir("d", uid=11, gid=12)
        .file("d/f", b"x", uid=13, gid=14)
        .symlink("d/s", "f", uid=15, gid=16)
        .fifo("d/p", uid=17, gid=18)
        .chardev("d/c", 1, 3, uid=19, gid=20)
        .build()
    )
    apply_bytes(rootfs, tar)
    owners = {
        name: ((rootfs / "d" / name).lstat().st_uid, (rootfs / "d" / name).lstat().st_gid) for name in "fspc"
    }
    assert owners == {"f": (13, 14), "s": (15, 16), "p": (17, 18), "c": (19, 20)}
    assert ((rootfs / "d").stat().st_uid, (rootfs / "d").stat().st_gid) == (11, 12)


@needs_root
def test_symlink_owner_is_applied_to_the_link_not_its_target(rootfs: Path) -> None:
    (rootfs / "target").write_bytes(b"t")
    apply_bytes(rootfs, Tar().symlink("link", "target", uid=42, gid=43).build())
    assert (rootfs / "link").lstat().st_uid == 42
    assert (rootfs / "target").stat().st_uid == 0


@needs_root
def test_owners_are_not_applied_when_same_owner_is_off(rootfs: Path) -> None:
    apply_bytes(rootfs, Tar().file("f", b"x", uid=1234, gid=5678).build(), same_owner=False)
    st = (rootfs / "f").stat()
    assert (st.st_uid, st.st_gid) == (os.getuid(), os.getgid())


@needs_root
def test_file_in_a_setgid_directory_still_gets_the_headers_group(rootfs: Path) -> None:
    tar = Tar().dir("d", mode=0o2775, gid=50).file("d/f", b"x", gid=0).build()
    (rootfs / "d").mkdir()
    os.chown(rootfs / "d", 0, 50)
    (rootfs / "d").chmod(0o2775)
    apply_bytes(rootfs, tar)
    assert (rootfs / "d" / "f").stat().st_gid == 0


@pytest.mark.parametrize(("uid", "gid"), [(-1, 0), (0, -1), (1 << 31, 0), (0, 1 << 31), (1 << 40, 0)])
@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT], ids=["pax", "gnu"])
def test_owner_ids_out_of_range_are_invalid(rootfs: Path, fmt: int, uid: int, gid: int) -> None:
    with raises_naming(InvalidArchive, '"f"', "uid"):
        apply_bytes(rootfs, Tar(fmt).file("f", b"x", uid=uid, gid=gid).build())


def test_largest_valid_owner_ids_are_accepted(rootfs: Path) -> None:
    apply_bytes(
        rootfs, Tar().file("f", b"x", uid=(1 << 31) - 1, gid=(1 << 31) - 1).build(), same_owner=False
    )
    assert (rootfs / "f").exists()


# -- xattrs ----------------------------------------------------------------------------


def test_user_xattrs_are_applied_to_files_and_directories(rootfs: Path) -> None:
    if not supports_user_xattrs(rootfs):
        pytest.skip("no user xattrs here")
    tar = Tar().dir("d", xattrs={"user.dir": b"dv"}).file("d/f", b"x", xattrs={"user.key": b"value"})
    apply_bytes(rootfs, tar.build())
    assert os.getxattr(rootfs / "d", "user.dir") == b"dv"
    assert os.getxattr(rootfs / "d" / "f", "user.key") == b"value"


def test_binary_xattr_values_are_applied_byte_for_byte(rootfs: Path) -> None:
    if not supports_user_xattrs(rootfs):
        pytest.skip("no user xattrs here")
    value = bytes(range(256))
    apply_bytes(rootfs, Tar().file("f", b"x", xattrs={"user.bin": value}).build())
    assert os.getxattr(rootfs / "f", "user.bin") == value


def test_empty_xattr_value_is_applied(rootfs: Path) -> None:
    if not supports_user_xattrs(rootfs):
        pytest.skip("no user xattrs here")
    apply_bytes(rootfs, Tar().file("f", b"x", xattrs={"user.empty": b""}).build())
    assert os.getxattr(rootfs / "f", "user.empty") == b""


@needs_root
def test_trusted_and_security_xattrs_are_applied_as_root(rootfs: Path) -> None:
    capability = bytes.fromhex("0100000200200000000000000000000000000000")
    tar = Tar().file("f", b"x", xattrs={"trusted.t": b"1", "security.capability": capability})
    apply_bytes(rootfs, tar.build())
    assert os.getxattr(rootfs / "f", "trusted.t") == b"1"
    assert os.getxattr(rootfs / "f", "security.capability") == capability


def test_user_xattrs_on_a_symlink_are_skipped_with_a_warning(rootfs: Path) -> None:
    warnings: list[str] = []
    apply_bytes(
        rootfs, Tar().symlink("s", "t", xattrs={"user.k": b"v"}).build(), on_warning=warnings.append
    )
    assert os.path.islink(rootfs / "s")
    assert warnings == ['layer entry "s": xattr user.k ignored (Linux refuses user.* xattrs on a symlink)']


@needs_root
def test_trusted_xattrs_on_a_symlink_are_applied_to_the_link(rootfs: Path) -> None:
    (rootfs / "t").write_bytes(b"")
    apply_bytes(rootfs, Tar().symlink("s", "t", xattrs={"trusted.k": b"v"}).build())
    assert os.getxattr(rootfs / "s", "trusted.k", follow_symlinks=False) == b"v"
    with pytest.raises(OSError):
        os.getxattr(rootfs / "t", "trusted.k")


@needs_root
def test_xattrs_on_a_fifo_are_applied_without_opening_it(rootfs: Path) -> None:
    apply_bytes(rootfs, Tar().fifo("p", xattrs={"trusted.k": b"v"}).build())
    assert os.getxattr(rootfs / "p", "trusted.k", follow_symlinks=False) == b"v"


def _default_acl_owner_only() -> bytes:
    """A binary POSIX default ACL ``u::rwx,g::---,o::---`` (system.posix_acl_default)."""
    undefined = 0xFFFFFFFF
    entries = [(0x01, 7), (0x04, 0), (0x20, 0)]  # USER_OBJ, GROUP_OBJ, OTHER
    blob = (2).to_bytes(4, "little")
    for tag, perm in entries:
        blob += tag.to_bytes(2, "little") + perm.to_bytes(2, "little") + undefined.to_bytes(4, "little")
    return blob


def test_file_mode_is_exact_in_a_directory_with_a_default_acl(rootfs: Path) -> None:
    (rootfs / "d").mkdir()
    try:
        os.setxattr(rootfs / "d", "system.posix_acl_default", _default_acl_owner_only())
    except OSError:
        pytest.skip("no POSIX ACLs here")
    (rootfs / "d" / "probe").write_bytes(b"")
    assert mode(rootfs / "d" / "probe") == 0o600  # the ACL, not the umask, decides
    apply_bytes(rootfs, Tar().file("d/f", b"x", mode=0o644).build())
    assert mode(rootfs / "d" / "f") == 0o644


def test_files_can_be_added_to_a_read_only_lower_directory_which_stays_read_only(rootfs: Path) -> None:
    (rootfs / "ro").mkdir()
    (rootfs / "ro" / "old").write_bytes(b"old")
    (rootfs / "ro").chmod(0o555)
    apply_bytes(rootfs, Tar().file("ro/new", b"new").file("ro/old", b"replaced").build())
    assert mode(rootfs / "ro") == 0o555
    assert (rootfs / "ro" / "new").read_bytes() == b"new"
    assert (rootfs / "ro" / "old").read_bytes() == b"replaced"


def test_file_in_a_read_only_lower_directory_can_be_replaced(rootfs: Path) -> None:
    (rootfs / "ro").mkdir()
    (rootfs / "ro" / "old").write_bytes(b"old")
    (rootfs / "ro").chmod(0o555)
    apply_bytes(rootfs, Tar().file("ro/old", b"replaced").build())
    assert mode(rootfs / "ro") == 0o555
    assert (rootfs / "ro" / "old").read_bytes() == b"replaced"
