"""``snapshots diff``: what one snapshot changes against another, as a layer tar.

containerd's walking differ (``core/diff/walking``, continuity's ``fs.Changes`` and
``pkg/archive``'s change writer), without mounts:

- **Views.**  A snapshot's tree is read where the snapshotter keeps it: the one complete
  directory of a native snapshot, or the stack of overlayfs layer directories (its own
  upper directory, then its parents'), where a 0:0 character device hides a name below it
  and ``trusted.overlay.opaque=y`` hides a whole directory below.  A view (``kind view``)
  is its parent's tree.  An overlay directory renamed with ``redirect_dir`` or a file copied
  up with ``metacopy`` is refused (the tree is not in the upper directory alone).
- **The double walk.**  Both trees are walked together, directory by directory, names in
  byte order: a name only in the upper tree is added, one only in the lower tree is
  deleted (a deleted directory is one whiteout, its children are not listed), one in both
  is modified when its type, permission bits, owner, device number, tar-carried xattrs,
  symlink target, size or mtime differ -- with containerd's rule for whole-second times:
  when both mtimes have no nanoseconds, the contents are compared.
- **The tar.**  Entries in walk order (parents before children), PAX, numeric owners,
  whole-second mtimes, as :func:`ctrpy.archive.tree.tar_info` writes them; a deletion is
  an empty ``.wh.NAME`` (mode 0, mtime 0: the tar depends on the trees alone).  **Every
  entry is preceded by its parent directories** as they are in the upper tree (those not
  written yet), so applying the tar on the lower tree makes each parent a real directory
  before anything is written inside it: a name can never reach through a lower symlink.
  Names of one inode become hardlinks to the first name written; an unchanged name that
  shares its inode with a changed one is written as a hardlink to it after it (the link
  stays a link).  Sockets are left out (tar has no type for them); a name starting with
  ``.wh.`` cannot be stored in a layer and is an error naming it.

Without root, a native tree's directories that deny their owner search are opened up
for the walk (as the native snapshotter's copy does) and their modes put back after; the
tar carries the original modes.
"""

from __future__ import annotations

import os
import stat
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol, cast

from ctrpy.archive.tree import add_entry, add_hardlink, open_tar, tar_info, tar_xattrs
from ctrpy.archive.treeops import open_up, restore_modes
from ctrpy.errors import FailedPrecondition, UnsupportedFormat
from ctrpy.snapshots.base import Snapshotter
from ctrpy.streams import CHUNK

__all__ = ["Output", "View", "same", "snapshot_view", "write_diff"]

_OPAQUE = ("trusted.overlay.opaque", "user.overlay.opaque")
_UNSUPPORTED = ("trusted.overlay.redirect", "trusted.overlay.metacopy")
_WHITEOUT = b".wh."
_NS = 1_000_000_000


@dataclass
class Node:
    """One name of a view: its topmost entry and, for a directory, every layer directory
    that contributes to its listing (topmost first)."""

    path: bytes
    st: os.stat_result
    dirs: list[bytes] = field(default_factory=list)
    mode: int = 0  # permission bits (the original ones where the walk opened a directory up)

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.st.st_mode)

    @property
    def inode(self) -> tuple[int, int]:
        return self.st.st_dev, self.st.st_ino


def _xattr_names(path: bytes) -> list[str]:
    try:
        return os.listxattr(path, follow_symlinks=False)
    except OSError:
        return []


class View:
    """A tree as a snapshotter keeps it: ``layers`` (topmost first; one for a complete
    tree, none for the empty tree), with overlay whiteouts and opaque directories read
    as such when ``overlay``."""

    def __init__(self, layers: list[Path], *, overlay: bool, modes: dict[bytes, int] | None = None):
        self.layers = [os.fsencode(p) for p in layers]
        self.overlay = overlay
        self.modes = modes or {}  # full path -> the mode it had before the walk opened it up

    def _node(self, path: bytes, st: os.stat_result, dirs: list[bytes]) -> Node:
        return Node(path, st, dirs, self.modes.get(path, stat.S_IMODE(st.st_mode)))

    def root(self) -> Node | None:
        if not self.layers:
            return None
        top = self.layers[0]
        dirs: list[bytes] = []
        for layer in self.layers if self.overlay else self.layers[:1]:
            dirs.append(layer)
            if self.overlay and self._opaque(layer):
                break
        return self._node(top, os.lstat(top), dirs)

    def _opaque(self, path: bytes) -> bool:
        for name in _OPAQUE:
            try:
                if os.getxattr(path, name, follow_symlinks=False) == b"y":
                    return True
            except OSError:
                continue
        return False

    def _check(self, path: bytes) -> None:
        found = [n for n in _xattr_names(path) if n in _UNSUPPORTED]
        if found:
            raise UnsupportedFormat(
                f"{os.fsdecode(path)} has {found[0]}: an overlay redirect or metacopy is not a "
                "change ctrpy can read from the layer directories"
            )

    def children(self, node: Node | None) -> dict[bytes, Node]:
        """The names in directory ``node`` (nothing for None), whiteouts applied."""
        out: dict[bytes, Node] = {}
        if node is None:
            return out
        hidden: set[bytes] = set()
        for i, directory in enumerate(node.dirs):
            for name in os.listdir(directory):
                if name in out or name in hidden:
                    continue
                full = directory + b"/" + name
                st = os.lstat(full)
                kind = st.st_mode
                if self.overlay:
                    if stat.S_ISCHR(kind) and st.st_rdev == 0:
                        hidden.add(name)  # a whiteout: nothing of this name below
                        continue
                    self._check(full)
                if stat.S_ISSOCK(kind):
                    hidden.add(name)  # tar cannot carry it: as if it were not there
                    continue
                dirs = [full] if stat.S_ISDIR(kind) else []
                if dirs and self.overlay and not self._opaque(full):
                    dirs.extend(self._below(node.dirs[i + 1 :], name))
                out[name] = self._node(full, st, dirs)
        return out

    def _below(self, lower_dirs: list[bytes], name: bytes) -> Iterator[bytes]:
        """The directories named ``name`` in lower layers that show through, topmost first."""
        for lower in lower_dirs:
            path = lower + b"/" + name
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                continue
            if not stat.S_ISDIR(st.st_mode):
                return  # a file or a whiteout hides the rest
            yield path
            if self._opaque(path):
                return


def snapshot_view(sn: Snapshotter, key: str) -> View:
    """The tree of snapshot ``key`` (a view: its parent's)."""
    snap = sn.stat(key)
    own = [] if snap.kind == "view" else [sn.fs_path(snap)]
    below = sn.lowerdirs(snap.parent) if snap.parent else []
    overlay = sn.whiteouts == "overlay"
    layers = own + below if overlay else (own or below)[:1]
    for path in layers:
        if not path.is_dir():
            raise FailedPrecondition(f"snapshot {key!r} has no tree (its directory {path} is gone)")
    return View(layers, overlay=overlay)


# --------------------------------------------------------------------------- comparing
def _same_bytes(a: bytes, b: bytes) -> bool:
    fa = os.open(a, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        fb = os.open(b, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            while True:
                x, y = os.read(fa, CHUNK), os.read(fb, CHUNK)
                if x != y:
                    return False
                if not x:
                    return True
        finally:
            os.close(fb)
    finally:
        os.close(fa)


def same(u: Node, lo: Node) -> bool:
    """Is ``u`` (upper) what ``lo`` (lower) is, as a layer tar would carry it?"""
    if u.inode == lo.inode:
        return True  # the same lower-layer entry, seen through both stacks
    a, b = u.st, lo.st
    if stat.S_IFMT(a.st_mode) != stat.S_IFMT(b.st_mode) or u.mode != lo.mode:
        return False
    if (a.st_uid, a.st_gid) != (b.st_uid, b.st_gid):
        return False
    if (stat.S_ISCHR(a.st_mode) or stat.S_ISBLK(a.st_mode)) and a.st_rdev != b.st_rdev:
        return False
    if tar_xattrs(u.path) != tar_xattrs(lo.path):
        return False
    if u.is_dir:
        return True  # a directory's mtime follows its children: they are compared themselves
    link = stat.S_ISLNK(a.st_mode)
    if link and os.readlink(u.path) != os.readlink(lo.path):
        return False
    if a.st_size != b.st_size or a.st_mtime_ns // _NS != b.st_mtime_ns // _NS:
        return False
    ns_a, ns_b = a.st_mtime_ns % _NS, b.st_mtime_ns % _NS
    if ns_a or ns_b:
        return ns_a == ns_b
    # whole seconds on both sides (a time taken from a tar): the bytes decide
    return not stat.S_ISREG(a.st_mode) or a.st_size == 0 or _same_bytes(u.path, lo.path)


# --------------------------------------------------------------------------- the tar
def _name(rel: bytes) -> str:
    for part in rel.split(b"/"):
        if part.startswith(_WHITEOUT):
            raise UnsupportedFormat(
                f"{os.fsdecode(rel)!r}: a name starting with .wh. cannot be stored in a layer (it reads as a whiteout)"
            )
    return os.fsdecode(rel)


@dataclass
class _Frame:
    rel: bytes
    upper: Node
    up: dict[bytes, Node]
    low: dict[bytes, Node]
    names: Iterator[bytes]
    written: bool = False  # is this directory in the tar already?


class _Writer:
    def __init__(self, tar: tarfile.TarFile):
        self.tar = tar
        self.first: dict[tuple[int, int], str] = {}  # inode -> the first name written for it
        self.waiting: dict[tuple[int, int], list[tuple[bytes, Node, list[_Frame]]]] = {}

    def parents(self, frames: list[_Frame]) -> None:
        for frame in frames[1:]:  # the root itself is never an entry
            if not frame.written:
                add_entry(self.tar, tar_info(_name(frame.rel), frame.upper.path, frame.upper.st,
                                             mode=frame.upper.mode), frame.upper.path)
                frame.written = True

    def delete(self, rel: bytes, frames: list[_Frame]) -> None:
        _name(rel)
        self.parents(frames)
        parent, _, base = rel.rpartition(b"/")
        whiteout = (parent + b"/" if parent else b"") + _WHITEOUT + base
        info = tarfile.TarInfo(os.fsdecode(whiteout))
        info.mode = info.mtime = 0
        info.uname = info.gname = ""
        self.tar.addfile(info)

    def add(self, rel: bytes, node: Node, frames: list[_Frame]) -> None:
        self.parents(frames)
        name = _name(rel)
        info = tar_info(name, node.path, node.st, mode=node.mode)
        if node.is_dir or node.st.st_nlink < 2:
            add_entry(self.tar, info, node.path)
            return
        first = self.first.get(node.inode)
        if first is not None:
            add_hardlink(self.tar, info, first)
            return
        add_entry(self.tar, info, node.path)
        self.first[node.inode] = name
        for other, other_node, other_frames in self.waiting.pop(node.inode, []):
            self.parents(other_frames)
            add_hardlink(self.tar, tar_info(_name(other), other_node.path, other_node.st, mode=other_node.mode), name)

    def unchanged(self, rel: bytes, node: Node, frames: list[_Frame]) -> None:
        """An unchanged name: written only as a link to a changed name of its inode."""
        if node.is_dir or node.st.st_nlink < 2:
            return
        if node.inode in self.first:
            self.add(rel, node, frames)
        else:
            self.waiting.setdefault(node.inode, []).append((rel, node, list(frames)))


class Output(Protocol):
    def write(self, data: bytes, /) -> int: ...


def write_diff(upper: View, lower: View, out: Output) -> None:
    """Write to ``out`` the layer tar that turns ``lower``'s tree into ``upper``'s."""
    top = upper.root()
    if top is None:
        raise FailedPrecondition("the upper snapshot has no tree")
    bottom = lower.root()
    changes = [] if os.geteuid() == 0 else [(layer, open_up(os.fsdecode(layer))) for layer in {*upper.layers, *lower.layers}]
    try:
        for layer, opened in changes:
            for rel, mode in opened:
                for view in (upper, lower):
                    view.modes[layer + b"/" + rel if rel else layer] = mode
        with open_tar(cast(BinaryIO, out)) as tar:
            _walk(upper, lower, top, bottom, _Writer(tar))
    finally:
        for layer, opened in changes:
            restore_modes(os.fsdecode(layer), opened)


def _frame(upper: View, lower: View, rel: bytes, u: Node, lo: Node | None) -> _Frame:
    up, low = upper.children(u), lower.children(lo)
    return _Frame(rel, u, up, low, iter(sorted(set(up) | set(low))))


def _walk(upper: View, lower: View, top: Node, bottom: Node | None, writer: _Writer) -> None:
    stack = [_frame(upper, lower, b"", top, bottom)]
    while stack:
        frame = stack[-1]
        name = next(frame.names, None)
        if name is None:
            stack.pop()
            continue
        rel = frame.rel + b"/" + name if frame.rel else name
        u, lo = frame.up.get(name), frame.low.get(name)
        if u is None:
            writer.delete(rel, stack)
            continue
        if lo is None or not same(u, lo):
            writer.add(rel, u, stack)
            changed = True
        else:
            writer.unchanged(rel, u, stack)
            changed = False
        if u.is_dir:
            below = lo if lo is not None and lo.is_dir else None
            child = _frame(upper, lower, rel, u, below)
            child.written = changed
            stack.append(child)
