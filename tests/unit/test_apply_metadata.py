"""Modes, owners, times and xattrs of applied entries."""

from __future__ import annotations

import errno
import os
import stat
import tarfile
from pathlib import Path

import pytest

from ctrpy.errors import InvalidArchive
from tests.unit._tarmaker import MTIME, TarMaker, apply_bytes

is_root = os.geteuid() == 0
needs_root = pytest.mark.skipif(not is_root, reason="needs root")
NS = 1_000_000_000


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    r.mkdir()
    return r


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
def test_file_mode_is_applied_exactly_ignoring_the_umask(root: Path, bits: int) -> None:
    apply_bytes(root, TarMaker().file("f", b"x", mode=bits).build())
    assert mode(root / "f") == bits


@needs_root
def test_setuid_survives_a_change_of_owner(root: Path) -> None:
    apply_bytes(root, TarMaker().file("su", b"x", mode=0o4755, uid=1000, gid=1000).build())
    st = (root / "su").stat()
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (1000, 0o4755)


@pytest.mark.parametrize("bits", [0o555, 0o644, 0o500, 0o000, 0o1777, 0o2755])
def test_directory_mode_is_applied_after_it_is_filled(root: Path, bits: int) -> None:
    tar = TarMaker().dir("d", mode=bits).file("d/f", b"x").dir("d/sub", mode=bits).file("d/sub/g", b"y")
    apply_bytes(root, tar.build())
    assert mode(root / "d") == bits
    (root / "d").chmod(0o700)  # so that a non-root test can look inside
    assert mode(root / "d" / "sub") == bits
    (root / "d" / "sub").chmod(0o700)
    assert (root / "d" / "sub" / "g").read_bytes() == b"y"


def test_directory_entry_updates_the_mode_of_an_existing_directory(root: Path) -> None:
    (root / "d").mkdir(mode=0o700)
    apply_bytes(root, TarMaker().dir("d", mode=0o755).build())
    assert mode(root / "d") == 0o755


def test_last_entry_for_a_directory_wins(root: Path) -> None:
    apply_bytes(root, TarMaker().dir("d", mode=0o700).dir("d", mode=0o751).build())
    assert mode(root / "d") == 0o751


def test_root_directory_entry_updates_the_roots_metadata(root: Path) -> None:
    apply_bytes(root, TarMaker().dir("./", mode=0o751, mtime=MTIME).file("f").build())
    assert mode(root) == 0o751
    assert root.stat().st_mtime_ns == MTIME * NS


def test_implicit_parent_directories_are_searchable(root: Path) -> None:
    apply_bytes(root, TarMaker().file("a/b/f", b"x").build())
    assert mode(root / "a") & 0o700 == 0o700


def test_symlink_mode_bits_are_not_applied_to_anything(root: Path) -> None:
    (root / "target").write_bytes(b"t")
    (root / "target").chmod(0o600)
    apply_bytes(root, TarMaker().symlink("link", "target", mode=0o777).build())
    assert mode(root / "target") == 0o600


# -- times -----------------------------------------------------------------------------


def test_file_mtime_is_applied(root: Path) -> None:
    apply_bytes(root, TarMaker().file("f", b"x", mtime=MTIME).build())
    assert (root / "f").stat().st_mtime_ns == MTIME * NS


def test_pax_fractional_mtime_is_applied_to_the_nanosecond(root: Path) -> None:
    tar = TarMaker().file("f", b"x", pax={"mtime": "1600000000.123456789"}).build()
    apply_bytes(root, tar)
    assert (root / "f").stat().st_mtime_ns == 1_600_000_000_123_456_789


def test_pax_atime_is_applied(root: Path) -> None:
    tar = TarMaker().file("f", b"x", pax={"atime": "1500000000.5"}).build()
    apply_bytes(root, tar)
    assert (root / "f").stat().st_atime_ns == 1_500_000_000_500_000_000


def test_negative_pax_mtime_is_applied(root: Path) -> None:
    apply_bytes(root, TarMaker().file("f", b"x", pax={"mtime": "-86400"}).build())
    assert (root / "f").stat().st_mtime_ns == -86400 * NS


def test_symlink_mtime_is_applied_to_the_link_itself(root: Path) -> None:
    (root / "target").write_bytes(b"t")
    os.utime(root / "target", ns=(NS, NS))
    apply_bytes(root, TarMaker().symlink("link", "target", mtime=MTIME).build())
    assert (root / "link").lstat().st_mtime_ns == MTIME * NS
    assert (root / "target").stat().st_mtime_ns == NS


def test_fifo_mtime_is_applied(root: Path) -> None:
    apply_bytes(root, TarMaker().fifo("p", mtime=MTIME).build())
    assert (root / "p").lstat().st_mtime_ns == MTIME * NS


def test_directory_mtime_is_applied_after_its_children_are_written(root: Path) -> None:
    tar = TarMaker().dir("d", mtime=MTIME).file("d/a", b"a").dir("d/sub", mtime=MTIME + 1).file("d/sub/b")
    apply_bytes(root, tar.build())
    assert (root / "d").stat().st_mtime_ns == MTIME * NS
    assert (root / "d" / "sub").stat().st_mtime_ns == (MTIME + 1) * NS


# -- owners ----------------------------------------------------------------------------


@needs_root
def test_owners_are_applied_to_every_type(root: Path) -> None:
    tar = (
        TarMaker()
        .dir("d", uid=11, gid=12)
        .file("d/f", b"x", uid=13, gid=14)
        .symlink("d/s", "f", uid=15, gid=16)
        .fifo("d/p", uid=17, gid=18)
        .chardev("d/c", 1, 3, uid=19, gid=20)
        .build()
    )
    apply_bytes(root, tar)
    owners = {
        name: ((root / "d" / name).lstat().st_uid, (root / "d" / name).lstat().st_gid) for name in "fspc"
    }
    assert owners == {"f": (13, 14), "s": (15, 16), "p": (17, 18), "c": (19, 20)}
    assert ((root / "d").stat().st_uid, (root / "d").stat().st_gid) == (11, 12)


@needs_root
def test_symlink_owner_is_applied_to_the_link_not_its_target(root: Path) -> None:
    (root / "target").write_bytes(b"t")
    apply_bytes(root, TarMaker().symlink("link", "target", uid=42, gid=43).build())
    assert (root / "link").lstat().st_uid == 42
    assert (root / "target").stat().st_uid == 0


@needs_root
def test_owners_are_not_applied_when_same_owner_is_off(root: Path) -> None:
    apply_bytes(root, TarMaker().file("f", b"x", uid=1234, gid=5678).build(), same_owner=False)
    st = (root / "f").stat()
    assert (st.st_uid, st.st_gid) == (os.getuid(), os.getgid())


@needs_root
def test_file_in_a_setgid_directory_still_gets_the_headers_group(root: Path) -> None:
    tar = TarMaker().dir("d", mode=0o2775, gid=50).file("d/f", b"x", gid=0).build()
    (root / "d").mkdir()
    os.chown(root / "d", 0, 50)
    (root / "d").chmod(0o2775)
    apply_bytes(root, tar)
    assert (root / "d" / "f").stat().st_gid == 0


@pytest.mark.parametrize(("uid", "gid"), [(-1, 0), (0, -1), (1 << 31, 0), (0, 1 << 31), (1 << 40, 0)])
@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT], ids=["pax", "gnu"])
def test_owner_ids_out_of_range_are_invalid(root: Path, fmt: int, uid: int, gid: int) -> None:
    with pytest.raises(InvalidArchive, match='layer entry "f": uid/gid'):
        apply_bytes(root, TarMaker(fmt).file("f", b"x", uid=uid, gid=gid).build())


def test_largest_valid_owner_ids_are_accepted(root: Path) -> None:
    apply_bytes(
        root, TarMaker().file("f", b"x", uid=(1 << 31) - 1, gid=(1 << 31) - 1).build(), same_owner=False
    )
    assert (root / "f").exists()


# -- xattrs ----------------------------------------------------------------------------


def test_user_xattrs_are_applied_to_files_and_directories(root: Path) -> None:
    if not supports_user_xattrs(root):
        pytest.skip("no user xattrs here")
    tar = TarMaker().dir("d", xattrs={"user.dir": b"dv"}).file("d/f", b"x", xattrs={"user.key": "value"})
    apply_bytes(root, tar.build())
    assert os.getxattr(root / "d", "user.dir") == b"dv"
    assert os.getxattr(root / "d" / "f", "user.key") == b"value"


def test_binary_xattr_values_are_applied_byte_for_byte(root: Path) -> None:
    if not supports_user_xattrs(root):
        pytest.skip("no user xattrs here")
    value = bytes(range(256))
    apply_bytes(root, TarMaker().file("f", b"x", xattrs={"user.bin": value}).build())
    assert os.getxattr(root / "f", "user.bin") == value


def test_empty_xattr_value_is_applied(root: Path) -> None:
    if not supports_user_xattrs(root):
        pytest.skip("no user xattrs here")
    apply_bytes(root, TarMaker().file("f", b"x", xattrs={"user.empty": b""}).build())
    assert os.getxattr(root / "f", "user.empty") == b""


@needs_root
def test_trusted_and_security_xattrs_are_applied_as_root(root: Path) -> None:
    capability = bytes.fromhex("0100000200200000000000000000000000000000")
    tar = TarMaker().file("f", b"x", xattrs={"trusted.t": b"1", "security.capability": capability})
    apply_bytes(root, tar.build())
    assert os.getxattr(root / "f", "trusted.t") == b"1"
    assert os.getxattr(root / "f", "security.capability") == capability


def test_user_xattrs_on_a_symlink_are_skipped_with_a_warning(root: Path) -> None:
    warnings: list[str] = []
    apply_bytes(
        root, TarMaker().symlink("s", "t", xattrs={"user.k": b"v"}).build(), on_warning=warnings.append
    )
    assert os.path.islink(root / "s")
    assert warnings == ['layer entry "s": xattr user.k ignored (Linux refuses user.* xattrs on a symlink)']


@needs_root
def test_trusted_xattrs_on_a_symlink_are_applied_to_the_link(root: Path) -> None:
    (root / "t").write_bytes(b"")
    apply_bytes(root, TarMaker().symlink("s", "t", xattrs={"trusted.k": b"v"}).build())
    assert os.getxattr(root / "s", "trusted.k", follow_symlinks=False) == b"v"
    with pytest.raises(OSError):
        os.getxattr(root / "t", "trusted.k")


@needs_root
def test_xattrs_on_a_fifo_are_applied_without_opening_it(root: Path) -> None:
    apply_bytes(root, TarMaker().fifo("p", xattrs={"trusted.k": b"v"}).build())
    assert os.getxattr(root / "p", "trusted.k", follow_symlinks=False) == b"v"


def _default_acl_owner_only() -> bytes:
    """A binary POSIX default ACL ``u::rwx,g::---,o::---`` (system.posix_acl_default)."""
    undefined = 0xFFFFFFFF
    entries = [(0x01, 7), (0x04, 0), (0x20, 0)]  # USER_OBJ, GROUP_OBJ, OTHER
    blob = (2).to_bytes(4, "little")
    for tag, perm in entries:
        blob += tag.to_bytes(2, "little") + perm.to_bytes(2, "little") + undefined.to_bytes(4, "little")
    return blob


def test_file_mode_is_exact_in_a_directory_with_a_default_acl(root: Path) -> None:
    (root / "d").mkdir()
    try:
        os.setxattr(root / "d", "system.posix_acl_default", _default_acl_owner_only())
    except OSError:
        pytest.skip("no POSIX ACLs here")
    (root / "d" / "probe").write_bytes(b"")
    assert mode(root / "d" / "probe") == 0o600  # the ACL, not the umask, decides
    apply_bytes(root, TarMaker().file("d/f", b"x", mode=0o644).build())
    assert mode(root / "d" / "f") == 0o644


def test_files_can_be_added_to_a_read_only_lower_directory_which_stays_read_only(root: Path) -> None:
    (root / "ro").mkdir()
    (root / "ro" / "old").write_bytes(b"old")
    (root / "ro").chmod(0o555)
    apply_bytes(root, TarMaker().file("ro/new", b"new").file("ro/old", b"replaced").build())
    assert mode(root / "ro") == 0o555
    assert (root / "ro" / "new").read_bytes() == b"new"
    assert (root / "ro" / "old").read_bytes() == b"replaced"


def test_file_in_a_read_only_lower_directory_can_be_replaced(root: Path) -> None:
    (root / "ro").mkdir()
    (root / "ro" / "old").write_bytes(b"old")
    (root / "ro").chmod(0o555)
    apply_bytes(root, TarMaker().file("ro/old", b"replaced").build())
    assert mode(root / "ro") == 0o555
    assert (root / "ro" / "old").read_bytes() == b"replaced"
