"""write_tree_tar (deterministic tar of a tree) and tree_manifest (comparing trees)."""

from __future__ import annotations

import errno
import io
import os
import socket
import tarfile
from pathlib import Path

import pytest

from ctrpy.archive import TreeNode, iter_tar, tree_manifest, write_tree_tar
from tests.helpers import apply_bytes

is_root = os.geteuid() == 0
needs_root = pytest.mark.skipif(not is_root, reason="needs root")


def user_xattrs_work(path: Path) -> bool:
    try:
        os.setxattr(path, "user.probe", b"1")
        os.removexattr(path, "user.probe")
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
            return False
        raise
    return True


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    t = tmp_path / "tree"
    (t / "etc").mkdir(parents=True)
    (t / "etc" / "hosts").write_bytes(b"127.0.0.1 localhost\n")
    (t / "etc" / "hosts").chmod(0o644)
    (t / "bin").mkdir()
    (t / "bin" / "su").write_bytes(b"#!/bin/false\n")
    (t / "bin" / "su").chmod(0o4755)
    os.link(t / "bin" / "su", t / "bin" / "su-again")
    os.link(t / "bin" / "su", t / "etc" / "a-link")
    os.symlink("../etc/hosts", t / "bin" / "hosts-link")
    os.symlink("/dangling/target", t / "dangling")
    os.mkfifo(t / "fifo", 0o600)
    (t / "sticky").mkdir()
    (t / "sticky").chmod(0o1777)
    (t / "données").write_bytes(b"non-ascii")
    if is_root:
        os.mknod(t / "null", 0o666 | 0o020000, os.makedev(1, 3))
        os.chown(t / "etc" / "hosts", 123, 456)
        os.lchown(t / "bin" / "hosts-link", 7, 8)
    if user_xattrs_work(t / "etc" / "hosts"):
        os.setxattr(t / "etc" / "hosts", "user.comment", b"\x00binary\xff")
    for path in [*t.rglob("*"), t]:
        os.utime(path, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000), follow_symlinks=False)
    return t


def tar_of(path: Path) -> bytes:
    out = io.BytesIO()
    write_tree_tar(path, out)
    return out.getvalue()


def members(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
        return tf.getmembers()


# -- write_tree_tar --------------------------------------------------------------------


def test_tree_tar_applied_elsewhere_gives_an_identical_tree(tree: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    apply_bytes(copy, tar_of(tree))
    assert tree_manifest(copy) == tree_manifest(tree)


def test_tree_tar_is_deterministic(tree: Path) -> None:
    assert tar_of(tree) == tar_of(tree)


def test_tree_tar_entries_are_sorted_relative_and_directories_end_with_a_slash(tree: Path) -> None:
    names = [h.name for h, _ in iter_tar(io.BytesIO(tar_of(tree)))]
    assert names == sorted(names, key=lambda n: n.rstrip(b"/"))
    assert b"etc/" in names and b"etc/hosts" in names and b"bin/su" in names
    assert not any(n.startswith((b"/", b"./")) for n in names)


def test_later_names_of_an_inode_are_hardlinks_to_the_first(tree: Path) -> None:
    by_name = {m.name: m for m in members(tar_of(tree))}
    assert by_name["bin/su"].type == tarfile.REGTYPE
    assert by_name["bin/su-again"].type == tarfile.LNKTYPE
    assert by_name["bin/su-again"].linkname == "bin/su"
    assert by_name["etc/a-link"].linkname == "bin/su"


def test_tree_tar_keeps_modes_symlinks_and_fifos(tree: Path) -> None:
    by_name = {m.name: m for m in members(tar_of(tree))}
    assert by_name["bin/su"].mode == 0o4755
    assert by_name["sticky"].mode == 0o1777
    assert by_name["dangling"].linkname == "/dangling/target"
    assert by_name["fifo"].type == tarfile.FIFOTYPE


@needs_root
def test_tree_tar_keeps_numeric_owners_and_devices(tree: Path) -> None:
    by_name = {m.name: m for m in members(tar_of(tree))}
    assert (by_name["etc/hosts"].uid, by_name["etc/hosts"].gid) == (123, 456)
    assert (by_name["null"].type, by_name["null"].devmajor, by_name["null"].devminor) == (
        tarfile.CHRTYPE,
        1,
        3,
    )


def test_tree_tar_has_no_user_or_group_names(tree: Path) -> None:
    assert all(m.uname == "" and m.gname == "" for m in members(tar_of(tree)))


def test_tree_tar_keeps_user_xattrs(tree: Path) -> None:
    if not user_xattrs_work(tree):
        pytest.skip("no user xattrs here")
    by_name = {m.name: m for m in members(tar_of(tree))}
    raw = by_name["etc/hosts"].pax_headers["SCHILY.xattr.user.comment"]
    assert raw.encode("utf-8", "surrogateescape") == b"\x00binary\xff"


@needs_root
def test_tree_tar_leaves_out_trusted_and_selinux_xattrs(tree: Path) -> None:
    os.setxattr(tree / "etc" / "hosts", "trusted.overlay.opaque", b"y")
    by_name = {m.name: m for m in members(tar_of(tree))}
    keys = set(by_name["etc/hosts"].pax_headers)
    assert not any(k.startswith(("SCHILY.xattr.trusted.", "SCHILY.xattr.security.selinux")) for k in keys)


def test_tree_tar_leaves_out_sockets(tree: Path) -> None:
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(tree / "sock"))
        names = [m.name for m in members(tar_of(tree))]
    finally:
        sock.close()
    assert "sock" not in names


def test_tree_tar_mtimes_are_whole_seconds(tree: Path) -> None:
    os.utime(tree / "etc" / "hosts", ns=(0, 1_600_000_000_999_999_999))
    by_name = {m.name: m for m in members(tar_of(tree))}
    assert by_name["etc/hosts"].mtime == 1_600_000_000


def test_tree_tar_of_an_empty_directory_is_an_empty_archive(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert members(tar_of(tmp_path / "empty")) == []


# -- tree_manifest ---------------------------------------------------------------------


def test_manifest_describes_each_path(tree: Path) -> None:
    manifest = tree_manifest(tree)
    hosts = manifest["etc/hosts"]
    assert isinstance(hosts, TreeNode)
    assert (hosts.type, hosts.mode, hosts.size) == ("file", 0o644, 20)
    assert hosts.sha256 is not None and len(hosts.sha256) == 64
    assert manifest["bin/hosts-link"].linkname == "../etc/hosts"
    assert manifest["fifo"].type == "fifo"
    assert manifest["etc"].mtime is None
    assert manifest["etc/hosts"].mtime == 1_600_000_000
    assert "." not in manifest


def test_manifest_normalises_hardlink_groups_to_their_first_path(tree: Path) -> None:
    manifest = tree_manifest(tree)
    assert manifest["bin/su"].hardlink == "bin/su"
    assert manifest["bin/su-again"].hardlink == "bin/su"
    assert manifest["etc/a-link"].hardlink == "bin/su"
    assert manifest["etc/hosts"].hardlink is None


def test_manifest_ignores_links_to_files_outside_the_tree(tree: Path, tmp_path: Path) -> None:
    os.link(tree / "etc" / "hosts", tmp_path / "outside-link")
    assert tree_manifest(tree)["etc/hosts"].hardlink is None


def test_manifest_sees_a_content_change(tree: Path) -> None:
    before = tree_manifest(tree)
    (tree / "etc" / "hosts").write_bytes(b"127.0.0.1 localhost\r")
    os.utime(tree / "etc" / "hosts", ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    assert tree_manifest(tree) != before


def test_manifest_sees_a_mode_change(tree: Path) -> None:
    before = tree_manifest(tree)
    (tree / "etc").chmod(0o700)
    assert tree_manifest(tree) != before


def test_manifest_ignores_directory_mtimes(tree: Path) -> None:
    before = tree_manifest(tree)
    os.utime(tree / "etc", ns=(0, 0))
    assert tree_manifest(tree) == before


def test_manifest_includes_the_root_when_asked(tree: Path) -> None:
    assert tree_manifest(tree, include_root=True)["."].type == "dir"


def test_manifest_sorts_xattrs_and_can_ignore_some(tree: Path) -> None:
    if not user_xattrs_work(tree):
        pytest.skip("no user xattrs here")
    os.setxattr(tree / "etc" / "hosts", "user.a", b"1")
    assert [n for n, _ in tree_manifest(tree)["etc/hosts"].xattrs] == ["user.a", "user.comment"]
    ignored = tree_manifest(tree, ignore_xattrs=["user.a"])["etc/hosts"].xattrs
    assert [n for n, _ in ignored] == ["user.comment"]
