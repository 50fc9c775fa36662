"""Directory trees: a deterministic tar of a tree, and a comparable description of one.

:func:`write_tree_tar` writes what is on disk (sorted, PAX, numeric owners, no
user/group names, hardlinks as links to their first path).  :func:`tree_manifest`
describes a tree so that two trees (ours, umoci's, containerd's) compare with ``==``.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tarfile
from collections.abc import Collection
from typing import BinaryIO, NamedTuple

from ctrpy.streams import CHUNK

__all__ = [
    "TreeNode",
    "add_entry",
    "add_hardlink",
    "open_tar",
    "tar_info",
    "tar_xattrs",
    "tree_manifest",
    "write_tree_tar",
]

_TAR_XATTR_PREFIXES = (b"user.", b"security.")
_TAR_XATTR_SKIP = frozenset({b"security.selinux"})  # a host label, not image content


class TreeNode(NamedTuple):
    """How one path of a tree looks (see :func:`tree_manifest`)."""

    type: str
    """``file``, ``dir``, ``symlink``, ``char``, ``block``, ``fifo`` or ``socket``."""
    mode: int
    """Permission bits, with setuid/setgid/sticky."""
    uid: int
    gid: int
    size: int
    """Regular files only; 0 otherwise."""
    sha256: str | None
    """Content digest of a regular file."""
    linkname: str | None
    """Symlink target, verbatim."""
    device: tuple[int, int] | None
    """(major, minor) of a device node."""
    xattrs: tuple[tuple[str, bytes], ...]
    """Sorted (name, value) pairs."""
    mtime: int | None
    """Modification time in whole seconds; None for directories (their children change it)."""
    hardlink: str | None
    """For an inode with several names in the tree: the first of them in sorted order."""


_KINDS = {
    stat.S_IFREG: "file", stat.S_IFDIR: "dir", stat.S_IFLNK: "symlink", stat.S_IFCHR: "char",
    stat.S_IFBLK: "block", stat.S_IFIFO: "fifo",
}


def _kind(mode: int) -> str:
    return _KINDS.get(stat.S_IFMT(mode), "socket")


def _walk(root: bytes) -> list[tuple[bytes, bytes, os.stat_result]]:
    """Every path under root (not root itself): (relative path, full path, lstat), sorted."""
    out: list[tuple[bytes, bytes, os.stat_result]] = []
    pending: list[tuple[bytes, bytes]] = [(root, b"")]
    while pending:
        directory, rel = pending.pop()
        with os.scandir(directory) as it:
            for entry in it:
                child_rel = rel + b"/" + entry.name if rel else entry.name
                st = entry.stat(follow_symlinks=False)
                out.append((child_rel, entry.path, st))
                if stat.S_ISDIR(st.st_mode):
                    pending.append((entry.path, child_rel))
    out.sort(key=lambda item: item[0])
    return out


def _xattrs(path: bytes) -> list[tuple[bytes, bytes]]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:  # ENOTSUP and friends: no xattrs here
        return []
    result: list[tuple[bytes, bytes]] = []
    for name in sorted(names):
        raw = os.fsencode(name)
        try:
            result.append((raw, os.getxattr(path, name, follow_symlinks=False)))
        except OSError:
            continue
    return result


def _sha256(path: bytes) -> str:
    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb", buffering=0) as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _hardlink_groups(
    entries: list[tuple[bytes, bytes, os.stat_result]],
) -> dict[tuple[int, int], bytes]:
    """(dev, ino) -> first relative path, for non-directories with several names."""
    first: dict[tuple[int, int], bytes] = {}
    for rel, _full, st in entries:
        if st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode):
            first.setdefault((st.st_dev, st.st_ino), rel)
    return first


def tree_manifest(
    root: str | os.PathLike[str],
    *,
    include_root: bool = False,
    ignore_xattrs: Collection[str] = ("security.selinux",),
) -> dict[str, TreeNode]:
    """Describe every path under ``root`` (relative, ``/``-separated) as a :class:`TreeNode`.

    Two trees with equal manifests have the same names, types, modes, owners, contents,
    symlink targets, device numbers, xattrs, file mtimes and hardlink structure.  The
    root itself is left out unless ``include_root`` (then under the key ``"."``).
    """
    base = os.fsencode(root)
    entries = _walk(base)
    groups = _hardlink_groups(entries)
    # A hardlink group only counts names inside the tree: nlink may include outsiders.
    members: dict[tuple[int, int], int] = {}
    for _rel, _full, st in entries:
        key = (st.st_dev, st.st_ino)
        if key in groups:
            members[key] = members.get(key, 0) + 1
    skip = {os.fsencode(name) for name in ignore_xattrs}
    if include_root:
        entries.insert(0, (b".", base, os.lstat(base)))
    manifest: dict[str, TreeNode] = {}
    for rel, full, st in entries:
        mode = st.st_mode
        kind = _kind(mode)
        key = (st.st_dev, st.st_ino)
        group = groups.get(key) if members.get(key, 0) > 1 else None
        manifest[os.fsdecode(rel)] = TreeNode(
            type=kind,
            mode=stat.S_IMODE(mode),
            uid=st.st_uid,
            gid=st.st_gid,
            size=st.st_size if kind == "file" else 0,
            sha256=_sha256(full) if kind == "file" else None,
            linkname=os.fsdecode(os.readlink(full)) if kind == "symlink" else None,
            device=(os.major(st.st_rdev), os.minor(st.st_rdev)) if kind in ("char", "block") else None,
            xattrs=tuple((os.fsdecode(name), value) for name, value in _xattrs(full) if name not in skip),
            mtime=None if kind == "dir" else st.st_mtime_ns // 1_000_000_000,
            hardlink=None if group is None else os.fsdecode(group),
        )
    return manifest


def tar_xattrs(path: bytes) -> list[tuple[bytes, bytes]]:
    """The xattrs of ``path`` a layer tar carries: ``user.*`` and ``security.*`` but not
    ``security.selinux`` (never ``trusted.*``: overlayfs keeps its own there)."""
    return [
        (name, value)
        for name, value in _xattrs(path)
        if name.startswith(_TAR_XATTR_PREFIXES) and name not in _TAR_XATTR_SKIP
    ]


def tar_info(name: str, full: bytes, st: os.stat_result, *, mode: int | None = None) -> tarfile.TarInfo:
    """The tar header of the node ``full`` (lstat ``st``) under the entry name ``name``:
    type, permission bits (``mode`` instead of the node's when given), numeric owners, mtime
    in whole seconds, symlink target, device numbers and the xattrs :func:`tar_xattrs` keeps.
    Sockets have no tar type: the caller leaves them out."""
    info = tarfile.TarInfo(name)
    info.mode = stat.S_IMODE(st.st_mode) if mode is None else mode
    info.uid = st.st_uid
    info.gid = st.st_gid
    info.uname = info.gname = ""
    info.mtime = st.st_mtime_ns // 1_000_000_000
    info.pax_headers = {
        "SCHILY.xattr." + xname.decode("utf-8", "surrogateescape"): value.decode("utf-8", "surrogateescape")
        for xname, value in tar_xattrs(full)
    }
    kind = st.st_mode
    if stat.S_ISREG(kind):
        info.type = tarfile.REGTYPE
        info.size = st.st_size
    elif stat.S_ISDIR(kind):
        info.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(kind):
        info.type = tarfile.SYMTYPE
        info.linkname = os.fsdecode(os.readlink(full))
    elif stat.S_ISCHR(kind) or stat.S_ISBLK(kind):
        info.type = tarfile.CHRTYPE if stat.S_ISCHR(kind) else tarfile.BLKTYPE
        info.devmajor = os.major(st.st_rdev)
        info.devminor = os.minor(st.st_rdev)
    elif stat.S_ISFIFO(kind):
        info.type = tarfile.FIFOTYPE
    return info


def add_entry(tar: tarfile.TarFile, info: tarfile.TarInfo, full: bytes) -> None:
    """Write ``info`` to ``tar``, with the bytes of ``full`` for a regular file (opened
    without following a symlink)."""
    if info.type != tarfile.REGTYPE:
        tar.addfile(info)
        return
    fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f:
        tar.addfile(info, f)


def add_hardlink(tar: tarfile.TarFile, info: tarfile.TarInfo, target: str) -> None:
    """Write ``info`` as a hardlink to the entry ``target`` written before it."""
    info.type = tarfile.LNKTYPE
    info.linkname = target
    info.size = 0
    tar.addfile(info)


def open_tar(out: BinaryIO) -> tarfile.TarFile:
    """A streaming PAX tar writer on ``out`` (names as bytes through surrogateescape)."""
    return tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT, encoding="utf-8", errors="surrogateescape")


def write_tree_tar(root: str | os.PathLike[str], out: BinaryIO) -> None:
    """Write the tree under ``root`` to ``out`` as a deterministic PAX tar.

    Entries are sorted by path, named relative to ``root`` (directories end with
    ``/``; the root itself is not an entry), with numeric owners and no user/group
    names.  Types, modes (setuid too), owners, mtimes (whole seconds), symlink
    targets, device numbers and ``user.*`` / ``security.*`` xattrs (but not
    ``security.selinux``) are kept.  The second and later names of an inode become
    hardlinks to the first name in sort order.  Sockets cannot be archived and are
    left out.  Overlay whiteout devices are written as they are.
    """
    base = os.fsencode(root)
    entries = _walk(base)
    seen: dict[tuple[int, int], str] = {}
    with open_tar(out) as tar:
        for rel, full, st in entries:
            mode = st.st_mode
            if stat.S_ISSOCK(mode):
                continue
            name = os.fsdecode(rel)
            info = tar_info(name, full, st)
            key = (st.st_dev, st.st_ino)
            if not stat.S_ISDIR(mode) and st.st_nlink > 1 and key in seen:
                add_hardlink(tar, info, seen[key])
                continue
            if not stat.S_ISDIR(mode) and st.st_nlink > 1:
                seen[key] = name
            add_entry(tar, info, full)
