"""Comparing root filesystem trees (on disk, or as a tar) in tests.

``tree(root)`` describes a directory tree with :func:`ctrpy.archive.tree.tree_manifest`
(names, types, modes, owners, contents, symlink targets, hardlink groups, device numbers,
xattrs, file mtimes). ``tar_tree(data)`` describes a tar stream the same way, read with the
standard library's ``tarfile`` (an oracle independent of ctrpy's own tar reader), so a
flattened tar compares with ``==`` against an extracted tree. ``dir_mtimes`` gives what
``tree_manifest`` leaves out on purpose: directory mtimes. ``diff`` renders the differences
of two descriptions readably for an assertion message. ``feature_layers`` builds the layers
of an image holding every kind of entry the comparisons care about.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from ctrpy.archive.tree import TreeNode, tree_manifest
from tests.builders import (
    Entry,
    blockdev,
    chardev,
    directory,
    fifo,
    file,
    hardlink,
    opaque,
    symlink,
    whiteout,
)

__all__ = [
    "LONG_PATH",
    "TreeNode",
    "diff",
    "dir_mtimes",
    "feature_layers",
    "files",
    "tar_tree",
    "tree",
]

Tree = dict[str, TreeNode]

_TAR_KINDS = {
    tarfile.REGTYPE: "file",
    tarfile.AREGTYPE: "file",
    tarfile.DIRTYPE: "dir",
    tarfile.SYMTYPE: "symlink",
    tarfile.CHRTYPE: "char",
    tarfile.BLKTYPE: "block",
    tarfile.FIFOTYPE: "fifo",
}


def tree(root: str | os.PathLike[str], *, ignore_xattrs: Iterable[str] = ("security.selinux",)) -> Tree:
    """Describe the tree under ``root`` (``root`` itself left out)."""
    return tree_manifest(root, ignore_xattrs=tuple(ignore_xattrs))


def files(root: str | os.PathLike[str]) -> dict[str, bytes | str | None]:
    """A short view of a tree: path -> file bytes, ``"-> target"`` for symlinks, None for the rest."""
    out: dict[str, bytes | str | None] = {}
    base = Path(root)
    for dirpath, dirnames, filenames in os.walk(base):
        for name in (*dirnames, *filenames):
            p = Path(dirpath, name)
            rel = p.relative_to(base).as_posix()
            if p.is_symlink():
                out[rel] = "-> " + os.readlink(p)
            elif p.is_file():
                out[rel] = p.read_bytes()
            else:
                out[rel] = None
    return dict(sorted(out.items()))


def dir_mtimes(root: str | os.PathLike[str]) -> dict[str, int]:
    """Relative directory path -> mtime in whole seconds (the root itself left out)."""
    out: dict[str, int] = {}
    base = os.fspath(root)
    for dirpath, dirnames, _files in os.walk(base):
        for name in dirnames:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            if stat.S_ISDIR(st.st_mode):
                out[os.path.relpath(full, base)] = st.st_mtime_ns // 1_000_000_000
    return dict(sorted(out.items()))


def _clean(name: str) -> str:
    return "/".join(p for p in name.split("/") if p not in ("", "."))


def tar_tree(data: bytes, *, ignore_xattrs: Iterable[str] = ("security.selinux",)) -> Tree:
    """Describe the tree a tar stream holds, as :func:`tree` would describe it extracted.

    Hardlink members take their target's description; every name of a hardlink group
    gets ``hardlink`` = the first name of the group in sorted order. Member names must
    be unique (a tar that names a path twice is not a flattened tree).
    """
    skip = set(ignore_xattrs)
    members: dict[str, tarfile.TarInfo] = {}
    contents: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:", encoding="utf-8", errors="surrogateescape") as tar:
        for m in tar:
            name = _clean(m.name)
            if not name:
                continue
            assert name not in members, f"the tar names {name!r} twice"
            members[name] = m
            if m.isreg():
                f = tar.extractfile(m)
                assert f is not None
                contents[name] = f.read()
    # hardlink groups: union every link with its target's group
    group_of: dict[str, str] = {}
    for name, m in members.items():
        if m.islnk():
            target = _clean(m.linkname)
            assert target in members, f"hardlink {name!r} -> {target!r}: no such member"
            root = group_of.get(target, target)
            group_of[target] = root
            group_of[name] = root
    groups: dict[str, list[str]] = {}
    for name, root in group_of.items():
        groups.setdefault(root, []).append(name)
    first = {name: min(names) for names in groups.values() for name in names}
    out: Tree = {}
    for name in sorted(members):
        m = members[name]
        src = members[group_of[name]] if m.islnk() else m
        kind = _TAR_KINDS[src.type]
        body = contents.get(group_of[name] if m.islnk() else name, b"")
        xattrs = tuple(
            sorted(
                (k[len("SCHILY.xattr.") :], v.encode("utf-8", "surrogateescape"))
                for k, v in src.pax_headers.items()
                if k.startswith("SCHILY.xattr.") and k[len("SCHILY.xattr.") :] not in skip
            )
        )
        out[name] = TreeNode(
            type=kind,
            mode=src.mode & 0o7777,
            uid=src.uid,
            gid=src.gid,
            size=len(body) if kind == "file" else 0,
            sha256=hashlib.sha256(body).hexdigest() if kind == "file" else None,
            linkname=src.linkname if kind == "symlink" else None,
            device=(src.devmajor, src.devminor) if kind in ("char", "block") else None,
            xattrs=xattrs,
            mtime=None if kind == "dir" else int(src.mtime),
            hardlink=first.get(name),
        )
    return out


def diff(
    a: Mapping[str, TreeNode], b: Mapping[str, TreeNode], names: tuple[str, str] = ("left", "right")
) -> str:
    """Human-readable differences of two tree descriptions ('' when equal)."""
    lines: list[str] = []
    for path in sorted(set(a) | set(b)):
        x, y = a.get(path), b.get(path)
        if x == y:
            continue
        if x is None or y is None:
            lines.append(f"{path}: only in {names[0] if y is None else names[1]}")
            continue
        for fname in TreeNode._fields:
            vx, vy = getattr(x, fname), getattr(y, fname)
            if vx != vy:
                if fname == "mode":
                    vx, vy = oct(vx), oct(vy)
                lines.append(f"{path}: {fname} {names[0]}={vx!r} {names[1]}={vy!r}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- a feature-rich image
LONG_PATH = "usr/share/" + "d" * 40 + "/" + "e" * 40 + "/" + "f" * 60 + ".txt"
"""A path longer than ustar's 100-byte name field."""


def feature_layers(*, replace_hardlinked_file: bool = True) -> list[list[Entry]]:
    """Two layers exercising what a layer can hold, for tree comparisons between unpackers.

    Layer 0: directories with distinct modes, owners and mtimes; a setuid and a setgid file;
    a hardlink (same mode and mtime as its target: containerd applies a hardlink header's
    metadata to the shared inode, umoci does not); absolute and relative symlinks; char and
    block devices and a fifo; a >100-byte path; non-ASCII names; user xattrs. Layer 1: a
    file and a directory whited out, an opaque directory refilled, a file replaced, a new
    hardlink to the replaced file, and (``replace_hardlinked_file``) the replacement of a
    file that a lower-layer hardlink shares (the lower name must keep the old inode).
    """
    t0, t1 = 1_500_000_000, 1_600_000_000
    layer0 = [
        directory("etc", mtime=t0),
        file("etc/hosts", b"127.0.0.1 localhost\n", mtime=t0 + 100),
        file("etc/remove-me", b"gone\n"),
        file("etc/xattrs", b"x", xattrs={"user.comment": b"hello", "user.binary": b"\x00\xff\x01"}),
        symlink("etc/abs-link", "/usr/bin/su"),
        symlink("etc/rel-link", "../usr/bin/su"),
        directory("usr", mtime=t0 + 1),
        directory("usr/bin", mtime=t0 + 2),
        file("usr/bin/su", b"#!/bin/false su\n", 0o4755, mtime=t0 - 100_000_000),
        hardlink("usr/bin/su-link", "usr/bin/su", 0o4755, mtime=t0 - 100_000_000),
        file("usr/bin/tool", b"tool", 0o2755, uid=1000, gid=1000, mtime=t0 - 50_000_000),
        directory("usr/share", mtime=t0 + 3),
        directory("usr/share/" + "d" * 40),
        directory("usr/share/" + "d" * 40 + "/" + "e" * 40),
        file(LONG_PATH, b"a long name"),
        directory("usr/share/naïve"),
        file("usr/share/naïve/日本語.txt", "こんにちは\n".encode()),
        directory("dev", mtime=t0 + 4),
        chardev("dev/null", 1, 3, 0o666),
        blockdev("dev/loop0", 7, 0, 0o660),
        fifo("dev/pipe", 0o600),
        directory("opt", mtime=t0 - 200_000_000),
        directory("opt/app", 0o750),
        file("opt/app/old", b"old"),
        directory("opt/app/sub"),
        file("opt/app/sub/deep", b"deep"),
        directory("var"),
        directory("var/cache"),
        file("var/cache/blob", b"blob"),
        directory("home", 0o755),
        directory("home/user", 0o700, uid=1000, gid=1000),
        file("home/user/.profile", b"profile", 0o600, uid=1000, gid=1000),
        directory("tmp", 0o1777),
    ]
    layer1 = [
        whiteout("etc/remove-me"),
        whiteout("var/cache"),
        directory("opt/app", 0o755, mtime=t1 + 10),
        opaque("opt/app"),
        file("opt/app/new", b"new", mtime=t1 + 50_000_000),
        file("etc/hosts", b"127.0.0.1 upper\n", mtime=t1 + 300),
        hardlink("etc/hosts-link", "etc/hosts", mtime=t1 + 300),
    ]
    if replace_hardlinked_file:
        layer1.append(file("usr/bin/su", b"#!/bin/false su v2\n", 0o4755, mtime=t1 + 400))
    return [layer0, layer1]
