"""Resolving paths inside a root directory without ever leaving it.

Parents are walked one component at a time with ``O_PATH|O_NOFOLLOW`` directory
descriptors; a symlink met on the way is read and resolved by us, clamped to the root
(``/`` and ``..`` never go above it).  Used by layer apply, and usable by anything else
that must open a path inside an untrusted tree.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from typing import Final

from ctrpy.archive.tar import quote

_MAX_SYMLINKS: Final = 40  # like the kernel's MAXSYMLINKS
DIR_PATH_FLAGS: Final = os.O_PATH | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_CLOEXEC
DIR_READ_FLAGS: Final = os.O_RDONLY | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_CLOEXEC


# ---------------------------------------------------------------------------------
# Small helpers


def clean_components(name: bytes) -> list[bytes]:
    """Lexically clean a tar name into components; ``..`` never rises above the root."""
    parts = name.split(b"/")
    if b".." not in parts:  # the common case: only empty and "." components to drop
        return [comp for comp in parts if comp and comp != b"."]
    out: list[bytes] = []
    for comp in parts:
        if comp == b"" or comp == b".":
            continue
        if comp == b"..":
            if out:
                out.pop()
            continue
        out.append(comp)
    return out


def clean_path(path: str | bytes) -> str:
    """Clean ``path`` lexically into a root-relative path (``""`` is the root itself).

    Leading ``/`` and ``./`` are dropped and ``..`` is applied lexically but never above
    the root: ``"/a/../../etc/./passwd"`` becomes ``"etc/passwd"``.
    """
    raw = os.fsencode(path)
    return os.fsdecode(b"/".join(clean_components(raw)))


def fd_path(fd: int, name: bytes | None = None) -> bytes:
    """A /proc path naming the object behind ``fd`` (or ``name`` inside that directory)."""
    base = b"/proc/self/fd/%d" % fd
    return base if name is None else base + b"/" + name


def read_umask() -> int:
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


# ---------------------------------------------------------------------------------
# Resolution inside the root


class Resolver:
    """Resolves directory paths inside a root with descriptors, symlinks clamped.

    It keeps the descriptor stack of the last resolution so that the next entry in
    the same directory costs no syscall.  The cache is only reused for a prefix that
    was resolved without meeting a symlink, and is dropped (``dirty``) after anything
    is removed from the tree, so a path always means what the tree says right now.
    """

    def __init__(
        self,
        root_fd: int,
        *,
        on_nondir: Callable[[int, bytes], bool] | None = None,
        on_denied: Callable[[int, bytes], bool] | None = None,
    ) -> None:
        self.root_fd = root_fd
        self._stack: list[int] = [root_fd]  # stack[0] is borrowed, the rest are owned
        self._phys: list[bytes] = []  # physical names of stack[1:]
        self._logical: list[bytes] = []  # cached logical components
        self._depths: list[int] = []  # stack depth after each cached component
        self._on_nondir = on_nondir
        # (dir fd, its physical rel path) -> True when it was made searchable: retry
        self._on_denied = on_denied
        self.dirty = False
        self.gen = 0  # changes whenever ``fd`` may name another directory
        self._links = 0
        self._cacheable = True
        self._low = 1

    def close(self) -> None:
        for fd in self._stack[1:]:
            os.close(fd)
        self.gen += 1
        self._stack = [self.root_fd]
        self._phys = []
        self._logical = []
        self._depths = []

    @property
    def fd(self) -> int:
        return self._stack[-1]

    @property
    def rel(self) -> bytes:
        """Physical root-relative path of the directory last resolved."""
        return b"/".join(self._phys)

    def _truncate(self, depth: int) -> None:
        stack = self._stack
        if len(stack) > depth:
            self.gen += 1
        while len(stack) > depth:
            os.close(stack.pop())
        del self._phys[depth - 1 :]
        if depth < self._low:
            self._low = depth

    def resolve(self, comps: list[bytes], *, create: bool) -> bool:
        """Make ``self.fd`` the directory at ``comps``; False if missing and not create."""
        if self.dirty:
            self.close()
            self.dirty = False
        logical = self._logical
        depths = self._depths
        k, n = 0, min(len(comps), len(logical))
        while k < n and comps[k] == logical[k]:
            k += 1
        self._truncate(depths[k - 1] if k else 1)
        del logical[k:]
        del depths[k:]
        self._links = 0
        self._cacheable = True
        self._low = 1 << 62  # lowest stack depth a symlink pops to during this call
        try:
            for comp in comps[k:]:
                if not self._step(comp, create):
                    return False
                if self._cacheable:
                    logical.append(comp)
                    depths.append(len(self._stack))
            return True
        finally:
            # A symlink may have popped the stack below cached entries (``..`` or an
            # absolute target): those descriptors are gone, forget their paths.
            low = self._low
            cut = len(depths)
            while cut and depths[cut - 1] > low:
                cut -= 1
            del logical[cut:]
            del depths[cut:]

    def _step(self, first: bytes, create: bool) -> bool:
        """Resolve one component (following symlinks) on top of the stack.

        A missing directory is kept as a *virtual* component, like Go's securejoin:
        a later ``..`` (from a symlink target such as ``missing/../../etc``) cancels
        it lexically.  Whatever is still virtual at the end is created when
        ``create``, else the component is missing (False).
        """
        pending = [first]
        stack = self._stack
        virtual: list[bytes] = []
        while pending:
            comp = pending.pop()
            if comp == b"" or comp == b".":
                continue
            if comp == b"..":
                if virtual:
                    virtual.pop()
                elif len(stack) > 1:
                    self._truncate(len(stack) - 1)
                continue
            if virtual:
                virtual.append(comp)
                continue
            cur = stack[-1]
            try:
                fd = os.open(comp, DIR_PATH_FLAGS, dir_fd=cur)
            except FileNotFoundError:
                virtual.append(comp)
                continue
            except PermissionError:
                if self._on_denied is not None and self._on_denied(cur, b"/".join(self._phys)):
                    pending.append(comp)
                    continue
                raise
            except OSError as exc:
                if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
                    raise
                try:
                    target = os.readlink(comp, dir_fd=cur)
                except OSError as rexc:
                    if rexc.errno != errno.EINVAL:
                        raise
                    if create and self._on_nondir is not None and self._on_nondir(cur, comp):
                        pending.append(comp)
                        continue
                    raise NotADirectoryError(
                        errno.ENOTDIR, f"{quote(b'/'.join([*self._phys, comp]))} is not a directory"
                    ) from None
                self._links += 1
                if self._links > _MAX_SYMLINKS:
                    raise OSError(errno.ELOOP, "too many levels of symbolic links") from None
                self._cacheable = False
                if target.startswith(b"/"):
                    self._truncate(1)
                pending.extend(reversed(target.split(b"/")))
                continue
            stack.append(fd)
            self._phys.append(comp)
            self.gen += 1
        if virtual:
            if not create:
                return False
            for comp in virtual:
                try:
                    os.mkdir(comp, 0o755, dir_fd=stack[-1])
                except FileExistsError:
                    pass
                except PermissionError:
                    if self._on_denied is None or not self._on_denied(stack[-1], b"/".join(self._phys)):
                        raise
                    os.mkdir(comp, 0o755, dir_fd=stack[-1])
                stack.append(os.open(comp, DIR_PATH_FLAGS, dir_fd=stack[-1]))
                self._phys.append(comp)
                self.gen += 1
        return True


def resolve_in_root(root_fd: int, path: str | bytes, *, follow_final: bool = False) -> int:
    """Open ``path`` inside the root directory ``root_fd`` and return an ``O_PATH`` fd.

    Every symlink on the way is resolved inside the root (an absolute target or ``..``
    never leaves it).  The final component is not followed unless ``follow_final``:
    then the fd names the symlink itself.  The caller closes the fd.  Missing paths
    raise ``FileNotFoundError``; a non-directory parent ``NotADirectoryError``.
    """
    comps = clean_components(os.fsencode(path))
    resolver = Resolver(root_fd)
    try:
        if not comps:
            return os.open(".", DIR_PATH_FLAGS, dir_fd=root_fd)
        final = comps[-1]
        if not resolver.resolve(comps[:-1], create=False):
            raise FileNotFoundError(errno.ENOENT, f"{quote(path)} not found in root")
        links = 0
        while True:
            try:
                fd = os.open(final, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=resolver.fd)
            except FileNotFoundError:
                raise FileNotFoundError(errno.ENOENT, f"{quote(path)} not found in root") from None
            if not follow_final or not stat.S_ISLNK(os.fstat(fd).st_mode):
                return fd
            os.close(fd)
            links += 1
            if links > _MAX_SYMLINKS:
                raise OSError(errno.ELOOP, "too many levels of symbolic links")
            target = os.readlink(final, dir_fd=resolver.fd)
            parts = [p for p in target.split(b"/") if p not in (b"", b".")]
            if target.startswith(b"/"):
                resolver._truncate(1)
            if not parts or parts[-1] == b"..":
                for part in parts:
                    if not resolver._step(part, False):
                        raise FileNotFoundError(errno.ENOENT, f"{quote(path)} not found in root")
                return os.open(".", DIR_PATH_FLAGS, dir_fd=resolver.fd)
            for part in parts[:-1]:
                if not resolver._step(part, False):
                    raise FileNotFoundError(errno.ENOENT, f"{quote(path)} not found in root")
            final = parts[-1]
    finally:
        resolver.close()


def safe_join(root: str | os.PathLike[str], path: str | bytes) -> str:
    """Join ``path`` to ``root`` the way a rootfs sees it (like Go's securejoin).

    Symlinks in the existing part of the path are resolved inside ``root``; missing
    components are taken lexically.  The final component is not followed.  The answer
    is a plain path: use :func:`resolve_in_root` where races matter.
    """
    base = os.fsencode(os.path.abspath(root))
    pending = list(reversed(clean_components(os.fsencode(path))))
    phys: list[bytes] = []
    links = 0
    while pending:
        comp = pending.pop()
        if comp in (b"", b"."):
            continue
        if comp == b"..":
            if phys:
                phys.pop()
            continue
        if not pending:
            phys.append(comp)
            break
        full = b"/".join([base, *phys, comp])
        try:
            st = os.lstat(full)
        except (FileNotFoundError, NotADirectoryError):
            phys.append(comp)
            continue
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > _MAX_SYMLINKS:
                raise OSError(errno.ELOOP, "too many levels of symbolic links")
            target = os.readlink(full)
            if target.startswith(b"/"):
                phys = []
            pending.extend(reversed(target.split(b"/")))
            continue
        phys.append(comp)
    return os.fsdecode(b"/".join([base, *phys]) if phys else base)


