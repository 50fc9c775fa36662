"""What layer apply does to the tree besides creating entries: removing (whole trees, or a
whiteout's "everything this layer did not write"), making directories writable for a
non-root user, and setting owners, xattrs, modes and times through descriptors.

:class:`TreeOps` holds the state these need; ``apply._Applier`` builds on it.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from collections.abc import Callable, Iterator
from typing import Final

from ctrpy.archive.pathset import PathSet
from ctrpy.archive.resolve import DIR_PATH_FLAGS, DIR_READ_FLAGS, Resolver, fd_path, resolve_in_root
from ctrpy.archive.tar import TarHeader, quote
from ctrpy.errors import InvalidArchive, StoreError

_log = logging.getLogger("ctrpy.archive")

MAX_ID: Final = 1 << 31


def _unlinked(dir_fd: int, name: bytes) -> bool:
    """Unlink ``name`` (gone already is fine); False when it is a directory, to empty."""
    try:
        os.unlink(name, dir_fd=dir_fd)
        return True
    except FileNotFoundError:
        return True
    except IsADirectoryError:
        return False
    except PermissionError:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if not stat.S_ISDIR(st.st_mode):
            raise
        return False


class TreeOps:
    """Removal and metadata helpers of one layer apply (state set by ``_Applier``)."""

    on_warning: Callable[[str], None] | None
    resolver: Resolver
    link_resolver: Resolver
    same_owner: bool
    euid: int
    egid: int
    is_root: bool
    upper: PathSet
    made_writable: dict[bytes, tuple[int, int, int]]
    warned: set[str]
    name: bytes
    _parent_gen: int
    _parent_sgid: bool | None
    _parent_acl: bool | None

    def warn(self, msg: str, *, once: str | None = None) -> None:
        if once is not None:
            if once in self.warned:
                return
            self.warned.add(once)
        if self.on_warning is not None:
            self.on_warning(msg)
        else:
            _log.warning("%s", msg)

    def invalid(self, msg: str) -> InvalidArchive:
        return InvalidArchive(f"layer entry {quote(self.name)}: {msg}")

    def removed(self) -> None:
        """Something left the tree: cached path resolutions may be stale now."""
        self.resolver.dirty = True
        self.link_resolver.dirty = True

    def writable(self, dir_fd: int, rel: bytes) -> bool:
        """Non-root: make a directory we own writable for the rest of the layer."""
        if self.is_root or rel in self.made_writable:
            return False
        st = os.fstat(dir_fd)
        if st.st_uid != self.euid or st.st_mode & 0o700 == 0o700:
            return False
        os.chmod(fd_path(dir_fd), stat.S_IMODE(st.st_mode) | 0o700)
        self.made_writable[rel] = (stat.S_IMODE(st.st_mode), st.st_dev, st.st_ino)
        return True

    def remove(self, dir_fd: int, name: bytes, dir_rel: bytes) -> None:
        """Remove whatever is at name (a whole tree for a directory); missing is fine.

        ``dir_rel`` is the physical path of ``dir_fd``, to make it writable (and
        restore it at the end) when not root."""
        self.removed()
        try:
            self._remove(dir_fd, name)
        except PermissionError:
            if not self.writable(dir_fd, dir_rel):
                raise
            self._remove(dir_fd, name)

    def _remove(self, dir_fd: int, name: bytes) -> None:
        if not _unlinked(dir_fd, name):
            self._remove_tree(dir_fd, name, None)

    def _open_dir_rw(self, dir_fd: int, name: bytes, keep_rel: bytes | None) -> int:
        """Open a directory to empty it; not root: make it rwx for us first.

        A directory that stays (``keep_rel``) gets its mode back at the end."""
        if self.is_root:
            return os.open(name, DIR_READ_FLAGS, dir_fd=dir_fd)
        path_fd = os.open(name, DIR_PATH_FLAGS, dir_fd=dir_fd)
        try:
            if keep_rel is not None:
                self.writable(path_fd, keep_rel)
            else:
                st = os.fstat(path_fd)
                if st.st_uid == self.euid and st.st_mode & 0o700 != 0o700:
                    os.chmod(fd_path(path_fd), stat.S_IMODE(st.st_mode) | 0o700)
            return os.open(b".", DIR_READ_FLAGS, dir_fd=path_fd)
        finally:
            os.close(path_fd)

    def _remove_tree(self, parent_fd: int, name: bytes, keep: bytes | None) -> None:
        """Remove the directory ``name`` and everything under it, iteratively.

        With ``keep`` (the directory's physical rel path), act as a whiteout: remove
        only what this layer did not write, descending into directories it did write,
        and keep the directory itself.
        """
        top = self._open_dir_rw(parent_fd, name, keep)
        stack: list[tuple[int, Iterator[str], bytes, bytes | None]] = []
        try:
            stack.append((top, iter(sorted(os.listdir(top))), name, keep))
        except BaseException:
            os.close(top)
            raise
        try:
            self._empty_tree(parent_fd, stack)
        finally:
            for fd, *_rest in stack:
                os.close(fd)

    def _empty_tree(
        self, parent_fd: int, stack: list[tuple[int, Iterator[str], bytes, bytes | None]]
    ) -> None:
        upper = self.upper
        while stack:
            fd, names, dname, drel = stack[-1]
            for entry in names:
                child = os.fsencode(entry)
                crel = None if drel is None else (drel + b"/" + child if drel else child)
                if crel is not None and crel in upper:
                    try:
                        sub = self._open_dir_rw(fd, child, crel)
                    except OSError as exc:
                        if exc.errno in (errno.ENOTDIR, errno.ELOOP):
                            continue  # a non-directory this layer wrote: keep it
                        raise
                    stack.append((sub, iter(sorted(os.listdir(sub))), child, crel))
                    break
                if _unlinked(fd, child):
                    continue
                sub = self._open_dir_rw(fd, child, None)
                stack.append((sub, iter(sorted(os.listdir(sub))), child, None))
                break
            else:
                stack.pop()
                os.close(fd)
                if drel is None:
                    os.rmdir(dname, dir_fd=stack[-1][0] if stack else parent_fd)

    def check_ids(self, hdr: TarHeader) -> None:
        if not (0 <= hdr.uid < MAX_ID and 0 <= hdr.gid < MAX_ID):
            raise self.invalid(f"uid/gid {hdr.uid}:{hdr.gid} out of range")

    def times(self, hdr: TarHeader) -> tuple[int, int]:
        mtime = hdr.mtime_ns
        return (mtime if hdr.atime_ns is None else hdr.atime_ns), mtime

    def set_xattrs(self, hdr: TarHeader, target: int | bytes, kind: str, *, follow: bool = False) -> None:
        """Set pax xattrs on an fd (files, dirs) or a /proc path (other types).

        A path is used without following its final component unless ``follow`` (only
        for ``/proc/self/fd/N`` itself, whose magic link must be followed)."""
        for name, value in hdr.xattrs:
            shown = name.decode("utf-8", "backslashreplace")
            if kind != "file" and kind != "dir" and name.startswith(b"user."):
                self.warn(
                    f"layer entry {quote(self.name)}: xattr {shown} ignored "
                    f"(Linux refuses user.* xattrs on a {kind})"
                )
                continue
            try:
                if isinstance(target, int) or follow:
                    os.setxattr(target, name, value)
                else:
                    os.setxattr(target, name, value, follow_symlinks=False)
            except OSError as exc:
                if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
                    self.warn(
                        f"layer entry {quote(self.name)}: xattr {shown} ignored: the "
                        "filesystem does not support extended attributes",
                        once="enotsup",
                    )
                    continue
                if exc.errno in (errno.EPERM, errno.EACCES) and (
                    name.startswith(b"trusted.") or not self.is_root
                ):
                    self.warn(
                        f"layer entry {quote(self.name)}: xattr {shown} ignored: not permitted",
                        once=f"eperm:{shown}",
                    )
                    continue
                raise

    def _parent_facts(self) -> None:
        if self._parent_gen != self.resolver.gen:
            self._parent_gen = self.resolver.gen
            self._parent_sgid = self._parent_acl = None

    def parent_sgid(self) -> bool:
        """Is the directory last resolved setgid (new files then take its group)?"""
        self._parent_facts()
        if self._parent_sgid is None:
            self._parent_sgid = bool(os.fstat(self.resolver.fd).st_mode & stat.S_ISGID)
        return self._parent_sgid

    def parent_acl(self) -> bool:
        """Has the directory last resolved a default ACL (which overrides the umask)?"""
        self._parent_facts()
        if self._parent_acl is None:
            try:
                os.getxattr(fd_path(self.resolver.fd), "system.posix_acl_default")
                self._parent_acl = True
            except OSError:
                self._parent_acl = False
        return self._parent_acl

    def meta_fd(self, fd: int, hdr: TarHeader, kind: str, *, fresh: bool, mode_set: bool) -> None:
        """Owner, xattrs, mode, times through an open (non-O_PATH) descriptor.

        ``fresh``: we just created the file in the directory last resolved, so its owner
        is ours unless that directory is setgid.  ``mode_set``: it was created with its
        final mode already (see regular()).
        """
        if self.same_owner and (
            not fresh or hdr.uid != self.euid or hdr.gid != self.egid or self.parent_sgid()
        ):
            os.fchown(fd, hdr.uid, hdr.gid)
        if hdr.xattrs:
            self.set_xattrs(hdr, fd, kind)
        if not mode_set:
            os.fchmod(fd, hdr.mode)
        os.utime(fd, ns=self.times(hdr))



# ---------------------------------------------------------------------------------
# Whole trees written from images: removing them, and (not root) reading them


class _Remover(TreeOps):
    """Just what :meth:`TreeOps._remove_tree` needs: no layer, nothing kept."""

    def __init__(self) -> None:
        self.euid = os.geteuid()
        self.is_root = self.euid == 0
        self.upper = PathSet()
        self.made_writable = {}


def remove_tree(path: str | os.PathLike[str], *, best_effort: bool = False) -> None:
    """Remove ``path`` and everything under it, never following a symlink inside it.

    A tree written from an image may hold symlinks to anywhere and directories of any
    mode: entries are removed relative to directory descriptors, and (not root) a
    directory of ours that denies us rwx is opened up through its descriptor, never by
    path, so nothing outside the tree is ever touched.  Missing is fine.  Failure raises
    StoreError, unless ``best_effort`` (clean-up after another error)."""
    full = os.path.abspath(os.fspath(path))
    parent, name = os.path.split(full)
    try:
        pfd = os.open(parent, DIR_READ_FLAGS & ~os.O_NOFOLLOW)
    except FileNotFoundError:
        return
    except OSError as exc:
        if best_effort:
            return
        raise StoreError(f"cannot remove {full}: {exc.strerror}") from exc
    try:
        st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            _Remover()._remove_tree(pfd, os.fsencode(name), None)
        else:
            os.unlink(name, dir_fd=pfd)
    except FileNotFoundError:
        pass
    except OSError as exc:
        if not best_effort:
            raise StoreError(f"cannot remove {full}: {exc.strerror or exc}") from exc
    finally:
        os.close(pfd)


def empty_tree(path: str | os.PathLike[str]) -> None:
    """Remove everything inside the directory ``path`` (as :func:`remove_tree` does, never
    following a symlink), keeping the directory itself.  Best effort."""
    try:
        names = os.listdir(path)
    except OSError:
        return
    for name in names:
        remove_tree(os.path.join(os.fspath(path), name), best_effort=True)


def tree_usage(path: str | os.PathLike[str]) -> tuple[int, int]:
    """(bytes allocated, inodes) of ``path`` and everything under it, hardlinks counted
    once, symlinks never followed.  Iterative, through directory descriptors: a tree
    thousands of levels deep (a layer can make one) neither overflows the stack nor meets
    PATH_MAX.  What cannot be read is skipped."""
    seen: set[tuple[int, int]] = set()
    size = inodes = 0

    def count(st: os.stat_result) -> None:
        nonlocal size, inodes
        if (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            inodes += 1
            size += st.st_blocks * 512

    try:
        top = os.open(path, DIR_READ_FLAGS & ~os.O_NOFOLLOW)
    except OSError:
        try:
            count(os.lstat(path))
        except OSError:
            pass
        return size, inodes
    stack: list[tuple[int, Iterator[str]]] = []
    try:
        count(os.fstat(top))
        stack.append((top, iter(os.listdir(top))))
        while stack:
            fd, names = stack[-1]
            for name in names:
                try:
                    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                except OSError:
                    continue
                count(st)
                if not stat.S_ISDIR(st.st_mode):
                    continue
                try:
                    sub = os.open(name, DIR_READ_FLAGS, dir_fd=fd)
                except OSError:
                    continue
                try:
                    stack.append((sub, iter(os.listdir(sub))))
                except BaseException:
                    os.close(sub)
                    raise
                break
            else:
                stack.pop()
                os.close(fd)
    finally:
        for fd, _names in stack:
            os.close(fd)
    return size, inodes


ModeChanges = list[tuple[bytes, int]]  # (root-relative path, the mode it had)


def open_up(root: str | os.PathLike[str]) -> ModeChanges:
    """Not root: give ourselves read and search permission on every directory of ours
    under ``root`` that lacks it (an image may ship a directory of mode 0644), through
    descriptors; returns what changed, for :func:`restore_modes`.  As root: nothing."""
    if os.geteuid() == 0:
        return []
    changes: ModeChanges = []
    stack: list[tuple[int, Iterator[str], bytes]] = []
    try:
        top = os.open(root, DIR_PATH_FLAGS & ~os.O_NOFOLLOW)
        stack.append((top, _opened_listing(top, b"", changes), b""))
        while stack:
            fd, names, rel = stack[-1]
            for entry in names:
                child = os.fsencode(entry)
                try:
                    cfd = os.open(child, DIR_PATH_FLAGS, dir_fd=fd)
                except OSError as exc:
                    if exc.errno in (errno.ENOTDIR, errno.ELOOP, errno.ENOENT):
                        continue  # not a directory (or a symlink: never followed)
                    raise
                crel = rel + b"/" + child if rel else child
                try:
                    stack.append((cfd, _opened_listing(cfd, crel, changes), crel))
                except BaseException:
                    os.close(cfd)
                    raise
                break
            else:
                stack.pop()
                os.close(fd)
    except BaseException:
        for fd, _names, _rel in stack:
            os.close(fd)
        restore_modes(root, changes)
        raise
    return changes


def _opened_listing(fd: int, rel: bytes, changes: ModeChanges) -> Iterator[str]:
    """The names in directory ``fd`` (an O_PATH descriptor), after granting ourselves rwx
    on it when it is ours and denies us that."""
    st = os.fstat(fd)
    mode = stat.S_IMODE(st.st_mode)
    if st.st_uid == os.geteuid() and mode & 0o700 != 0o700:
        os.chmod(fd_path(fd), mode | 0o700)
        changes.append((rel, mode))
    rfd = os.open(b".", DIR_READ_FLAGS, dir_fd=fd)
    try:
        return iter(sorted(os.listdir(rfd)))
    finally:
        os.close(rfd)


def restore_modes(root: str | os.PathLike[str], changes: ModeChanges) -> None:
    """Put back the modes :func:`open_up` changed (deepest first), in ``root`` or in a copy
    of it; paths are resolved inside the root without following symlinks."""
    if not changes:
        return
    root_fd = os.open(root, DIR_PATH_FLAGS & ~os.O_NOFOLLOW)
    try:
        for rel, mode in sorted(changes, key=lambda c: c[0].count(b"/"), reverse=True):
            try:
                fd = resolve_in_root(root_fd, rel) if rel else os.dup(root_fd)
            except OSError:
                continue
            try:
                if stat.S_ISDIR(os.fstat(fd).st_mode):
                    os.chmod(fd_path(fd), mode)
            finally:
                os.close(fd)
    finally:
        os.close(root_fd)
