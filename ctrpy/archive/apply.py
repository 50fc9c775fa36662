"""Safe application of one layer (an uncompressed tar stream) onto a root directory.

The rules follow containerd's ``pkg/archive`` and umoci's ``oci/layer``:

* Names are cleaned lexically (leading ``/``, ``.`` and ``..`` cannot leave the root).
* Parent directories are resolved *inside* the root one component at a time with
  ``O_PATH|O_NOFOLLOW`` directory descriptors; a symlink met on the way is read and
  resolved by us, clamped to the root (``/`` and ``..`` never go above it).  The final
  component is never followed: it is created relative to its parent's descriptor.
* An existing node is replaced unless both it and the entry are directories (merge).
* An entry naming the root itself must be a directory (umoci CVE-2021-29136).
* Modes are set through a descriptor, never by path through a symlink (CVE-2021-32760).
* Every entry's parent is resolved against the tree as it is now.  The only reuse is
  a cache of the *descriptors* of the previous entry's parent directories (so sorted
  layers cost no extra syscall per entry); it never extends past a symlink and is
  dropped whenever this layer removes anything, so an entry that turns a directory
  into a symlink (CVE-2025-47290) is seen by every later entry.
* Whiteouts (``.wh.NAME``, ``.wh..wh..opq``) remove what lower layers put there, never
  what this layer wrote (OCI image spec); in ``overlay`` mode they become overlayfs
  whiteout devices and opaque xattrs instead.
* Nothing from the image is ever executed.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO, Final

from ctrpy.archive.options import PROGRESS_EVERY, ApplyOptions, ApplyResult
from ctrpy.archive.pathset import PathSet
from ctrpy.archive.resolve import (
    DIR_PATH_FLAGS,
    DIR_READ_FLAGS,
    Resolver,
    clean_components,
    clean_path,
    fd_path,
    read_umask,
    resolve_in_root,
    safe_join,
)
from ctrpy.archive.tar import (
    BLK,
    CHR,
    DIR,
    FIFO,
    GNU_DUMPDIR,
    LNK,
    REG,
    SYM,
    TYPE_NAMES,
    TarHeader,
    TarReader,
    iter_tar,
    quote,
)
from ctrpy.archive.treeops import TreeOps
from ctrpy.errors import InvalidArchive, InvalidArgument, UnpackError
from ctrpy.streams import HashingReader

__all__ = [
    "PROGRESS_EVERY",
    "ApplyOptions",
    "ApplyResult",
    "TarHeader",
    "apply_layer",
    "clean_path",
    "iter_tar",
    "resolve_in_root",
    "safe_join",
]


_MAX_MAJOR: Final = 1 << 12  # Linux dev_t: 12-bit major, 20-bit minor
_MAX_MINOR: Final = 1 << 20

_FILE_CREATE_FLAGS: Final = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC

_WH_PREFIX: Final = b".wh."
_WH_META_PREFIX: Final = b".wh..wh."
_WH_OPAQUE: Final = b".wh..wh..opq"



# ---------------------------------------------------------------------------------
# Applying


@dataclass(slots=True)
class _DirFix:
    mode: int
    mtime_ns: int
    atime_ns: int
    dev: int
    ino: int


class _Applier(TreeOps):
    def __init__(self, root_fd: int, options: ApplyOptions) -> None:
        self.root_fd = root_fd
        self.opts = options
        self.on_warning = options.on_warning
        self.overlay = options.whiteouts == "overlay"
        self.same_owner = options.same_owner
        self.euid = os.geteuid()
        self.egid = os.getegid()
        self.is_root = self.euid == 0
        self.opaque_xattr = b"trusted.overlay.opaque" if self.is_root else b"user.overlay.opaque"
        self.umask = read_umask()
        denied = None if self.is_root else self.writable  # a directory of 0644 from a lower layer
        self.resolver = Resolver(root_fd, on_nondir=self._whiteout_to_dir if self.overlay else None,
                                 on_denied=denied)
        self.link_resolver = Resolver(root_fd, on_denied=denied)
        self.upper = PathSet()  # what this layer wrote: 11 to 21 bytes per entry
        self._marked_dir: bytes | None = None  # a directory known to be in upper (never removed from it)
        self.dirs: dict[bytes, _DirFix] = {}
        self.made_writable: dict[bytes, tuple[int, int, int]] = {}  # rel -> (mode, dev, ino)
        self.warned: set[str] = set()
        self._parent_gen = -1  # resolver generation the two facts below describe
        self._parent_sgid: bool | None = None
        self._parent_acl: bool | None = None
        self.name = b""

    def close(self) -> None:
        self.resolver.close()
        self.link_resolver.close()

    # -- plumbing -----------------------------------------------------------------
    def mark_upper(self, rel: bytes) -> None:
        """Remember that this layer wrote ``rel`` (and so its parents)."""
        add = self.upper.add
        while rel and add(rel):
            cut = rel.rfind(b"/")
            if cut < 0:
                break
            rel = rel[:cut]

    def parent(self, comps: list[bytes]) -> tuple[int, bytes]:
        """Resolve (creating) the parent directory of an entry; (fd, physical rel)."""
        self.resolver.resolve(comps, create=True)
        return self.resolver.fd, self.resolver.rel

    def _whiteout_to_dir(self, dir_fd: int, name: bytes) -> bool:
        """overlay mode: a whiteout device on the way to an entry becomes an opaque dir."""
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if not (stat.S_ISCHR(st.st_mode) and st.st_rdev == 0):
            return False
        os.unlink(name, dir_fd=dir_fd)
        os.mkdir(name, 0o755, dir_fd=dir_fd)
        os.setxattr(fd_path(dir_fd, name), self.opaque_xattr, b"y", follow_symlinks=False)
        return True

    # -- entries ------------------------------------------------------------------
    def entry(self, hdr: TarHeader) -> None:
        name = hdr.name
        self.name = name
        if b"\0" in name or b"\0" in hdr.linkname:
            raise self.invalid("NUL byte in name")
        comps = clean_components(name)
        typ = hdr.type
        if not comps:
            if typ != DIR:
                raise self.invalid(
                    "resolves to the root directory but is not a directory "
                    "(refusing to change the type of the root)"
                )
            self.check_ids(hdr)
            self.directory_meta(self.root_fd, b".", b"", hdr, replaced_whiteout=False)
            return
        base = comps[-1]
        if base.startswith(_WH_PREFIX):
            self.whiteout(comps, hdr)
            return
        for comp in comps[:-1]:
            if comp.startswith(_WH_META_PREFIX):
                return  # inside aufs metadata (.wh..wh.plnk etc.): not content
        if typ == REG:
            self.check_ids(hdr)
            self.regular(comps, hdr)
        elif typ in (DIR, GNU_DUMPDIR):
            self.check_ids(hdr)
            self.directory(comps, hdr)
        elif typ == SYM:
            self.check_ids(hdr)
            self.symlink(comps, hdr)
        elif typ == LNK:
            self.hardlink(comps, hdr)
        elif typ in (CHR, BLK, FIFO):
            self.check_ids(hdr)
            self.special(comps, hdr)
        else:
            what = TYPE_NAMES.get(typ, f"unknown type {typ!r}")
            self.warn(f"layer entry {quote(name)}: skipped ({what})")

    def create_in(self, dir_fd: int, rel: bytes, op: Callable[[], int]) -> int:
        """Run a creating op in dir_fd; non-root retries once after making it writable."""
        try:
            return op()
        except PermissionError:
            if not self.writable(dir_fd, rel):
                raise
            return op()

    def regular(self, comps: list[bytes], hdr: TarHeader) -> None:
        pfd, prel = self.parent(comps[:-1])
        base = comps[-1]
        rel = prel + b"/" + base if prel else base

        # Create with the final mode when the umask cannot change it (no special bits,
        # no default ACL), which saves an fchmod per file; else 0600 and fchmod later.
        mode = hdr.mode
        direct = not (mode & 0o7000 or mode & self.umask) and not self.parent_acl()
        initial = mode if direct else 0o600

        try:  # the common case: a new name in a writable directory, one syscall
            fd = os.open(base, _FILE_CREATE_FLAGS, initial, dir_fd=pfd)
        except (FileExistsError, PermissionError):

            def create() -> int:
                return os.open(base, _FILE_CREATE_FLAGS, initial, dir_fd=pfd)

            try:
                fd = self.create_in(pfd, prel, create)
            except FileExistsError:
                self.remove(pfd, base, prel)
                fd = self.create_in(pfd, prel, create)
        try:
            if hdr.sparse is None:
                if hdr.size:
                    self.reader.write_data_to(fd, hdr.size)
            else:
                for offset, length in hdr.sparse:
                    os.lseek(fd, offset, os.SEEK_SET)
                    self.reader.write_data_to(fd, length)
                os.ftruncate(fd, hdr.realsize)
            self.meta_fd(fd, hdr, "file", fresh=True, mode_set=direct)
        finally:
            os.close(fd)
        if prel == self._marked_dir:  # its directory is marked already (sorted layers)
            self.upper.add(rel)
        else:
            self.mark_upper(rel)
            self._marked_dir = prel

    def directory(self, comps: list[bytes], hdr: TarHeader) -> None:
        pfd, prel = self.parent(comps[:-1])
        base = comps[-1]
        rel = prel + b"/" + base if prel else base
        replaced_whiteout = False

        def create() -> int:
            os.mkdir(base, 0o700, dir_fd=pfd)
            return 0

        try:
            self.create_in(pfd, prel, create)
        except FileExistsError:
            st = os.stat(base, dir_fd=pfd, follow_symlinks=False)
            if not stat.S_ISDIR(st.st_mode):
                replaced_whiteout = self.overlay and stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
                self.remove(pfd, base, prel)
                self.create_in(pfd, prel, create)
        self.directory_meta(pfd, base, rel, hdr, replaced_whiteout=replaced_whiteout)
        self.mark_upper(rel)

    def directory_meta(
        self, pfd: int, base: bytes, rel: bytes, hdr: TarHeader, *, replaced_whiteout: bool
    ) -> None:
        """Owner and xattrs now; mode and times at the end (see finish())."""
        try:
            fd = os.open(base, DIR_READ_FLAGS, dir_fd=pfd)
            target: int | bytes = fd
        except PermissionError:  # not root, no read permission: go through O_PATH
            fd = os.open(base, DIR_PATH_FLAGS, dir_fd=pfd)
            target = fd_path(fd)
        try:
            if self.same_owner:
                os.chown(target, hdr.uid, hdr.gid)
            if hdr.xattrs:
                self.set_xattrs(hdr, target, "dir", follow=True)
            if replaced_whiteout:
                # overlayfs: a directory replacing a whiteout hides the lower one.
                os.setxattr(target, self.opaque_xattr, b"y")
            st = os.fstat(fd)
        finally:
            os.close(fd)
        atime, mtime = self.times(hdr)
        self.dirs[rel] = _DirFix(hdr.mode, mtime, atime, st.st_dev, st.st_ino)

    def symlink(self, comps: list[bytes], hdr: TarHeader) -> None:
        pfd, prel = self.parent(comps[:-1])
        base = comps[-1]
        rel = prel + b"/" + base if prel else base
        target = hdr.linkname
        if not target:
            raise self.invalid("symlink with an empty target")

        def create() -> int:
            os.symlink(target, base, dir_fd=pfd)
            return 0

        try:
            self.create_in(pfd, prel, create)
        except FileExistsError:
            self.remove(pfd, base, prel)
            self.create_in(pfd, prel, create)
        if self.same_owner:
            os.chown(base, hdr.uid, hdr.gid, dir_fd=pfd, follow_symlinks=False)
        if hdr.xattrs:
            self.set_xattrs(hdr, fd_path(pfd, base), "symlink")
        # No chmod: a symlink has no mode of its own, and chmod would follow it.
        os.utime(base, ns=self.times(hdr), dir_fd=pfd, follow_symlinks=False)
        self.mark_upper(rel)

    def hardlink(self, comps: list[bytes], hdr: TarHeader) -> None:
        tcomps = clean_components(hdr.linkname)
        if not tcomps:
            raise self.invalid("hardlink to the root directory")
        links = self.link_resolver
        try:
            found = links.resolve(tcomps[:-1], create=False)
        except NotADirectoryError:
            found = False
        tname = tcomps[-1]
        try:
            if not found:
                raise FileNotFoundError
            tst = os.stat(tname, dir_fd=links.fd, follow_symlinks=False)
        except FileNotFoundError:
            if self.overlay:
                # The upper dir only holds this layer: a link to a lower file would need
                # a copy-up first, which only a mounted overlay can do.
                raise UnpackError(
                    f"layer entry {quote(self.name)}: hardlink target {quote(hdr.linkname)} is not in "
                    "this layer (overlay mode cannot link to files of lower layers)"
                ) from None
            raise self.invalid(
                f"hardlink target {quote(hdr.linkname)} does not exist in the layer or below"
            ) from None
        if stat.S_ISDIR(tst.st_mode):
            raise self.invalid(f"hardlink target {quote(hdr.linkname)} is a directory")
        pfd, prel = self.parent(comps[:-1])
        base = comps[-1]
        rel = prel + b"/" + base if prel else base

        def create() -> int:
            # linkat() without AT_SYMLINK_FOLLOW: a link to a symlink links the symlink.
            os.link(tname, base, src_dir_fd=links.fd, dst_dir_fd=pfd, follow_symlinks=False)
            return 0

        try:
            self.create_in(pfd, prel, create)
        except FileExistsError:
            est = os.stat(base, dir_fd=pfd, follow_symlinks=False)
            if (est.st_dev, est.st_ino) != (tst.st_dev, tst.st_ino):
                self.remove(pfd, base, prel)
                self.create_in(pfd, prel, create)
        # Like umoci (and unlike containerd), the hardlink header's mode, owner and
        # times are NOT applied: they belong to the shared inode, which its first entry
        # already set.  Re-applying would also let a hardlink header chmod an inode
        # that is really a symlink's.
        self.mark_upper(rel)

    def special(self, comps: list[bytes], hdr: TarHeader) -> None:
        typ = hdr.type
        kind = {CHR: "character device", BLK: "block device", FIFO: "fifo"}[typ]
        if typ != FIFO:
            if not (0 <= hdr.devmajor < _MAX_MAJOR and 0 <= hdr.devminor < _MAX_MINOR):
                raise self.invalid(f"device number {hdr.devmajor}:{hdr.devminor} out of range")
            if not self.same_owner:
                self.skipped_device(kind, "not applying owners")
                return
        pfd, prel = self.parent(comps[:-1])
        base = comps[-1]
        rel = prel + b"/" + base if prel else base
        fmt = {CHR: stat.S_IFCHR, BLK: stat.S_IFBLK, FIFO: stat.S_IFIFO}[typ]
        dev = os.makedev(hdr.devmajor, hdr.devminor) if typ != FIFO else 0

        def create() -> int:
            os.mknod(base, fmt | 0o600, dev, dir_fd=pfd)
            return 0

        try:
            try:
                self.create_in(pfd, prel, create)
            except FileExistsError:
                self.remove(pfd, base, prel)
                self.create_in(pfd, prel, create)
        except PermissionError:
            if typ == FIFO:
                raise
            self.skipped_device(kind, "mknod not permitted")
            return
        self.meta_node(pfd, base, hdr, kind)
        self.mark_upper(rel)

    def skipped_device(self, kind: str, why: str) -> None:
        report = self.opts.on_skipped_device
        if report is not None:
            report(self.name.decode("utf-8", "surrogateescape"), why)
        else:
            self.warn(f"layer entry {quote(self.name)}: {kind} skipped ({why})")

    def meta_node(self, pfd: int, base: bytes, hdr: TarHeader, kind: str) -> None:
        """Metadata of a device or fifo: never opened for I/O, only via O_PATH."""
        fd = os.open(base, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
        try:
            mode = os.fstat(fd).st_mode
            if stat.S_ISLNK(mode) or stat.S_ISDIR(mode) or stat.S_ISREG(mode):
                raise OSError(errno.EEXIST, "node replaced while being created")
            if self.same_owner:
                os.chown(base, hdr.uid, hdr.gid, dir_fd=pfd, follow_symlinks=False)
            if hdr.xattrs:
                self.set_xattrs(hdr, fd_path(pfd, base), kind)
            os.chmod(fd_path(fd), hdr.mode)
        finally:
            os.close(fd)
        os.utime(base, ns=self.times(hdr), dir_fd=pfd, follow_symlinks=False)

    # -- whiteouts ----------------------------------------------------------------
    def whiteout(self, comps: list[bytes], hdr: TarHeader) -> None:
        base = comps[-1]
        opaque = base == _WH_OPAQUE
        if not opaque and base.startswith(_WH_META_PREFIX):
            return  # other aufs metadata (.wh..wh.plnk, .wh..wh.aufs): not content
        victim = base[len(_WH_PREFIX) :]
        if not opaque and victim in (b"", b".", b".."):
            raise self.invalid("invalid whiteout name")
        pfd, prel = self.parent(comps[:-1])
        self.mark_upper(prel)
        if self.overlay:
            self.overlay_whiteout(pfd, prel, None if opaque else victim, hdr)
            return
        before = os.fstat(pfd)
        if opaque:
            self._remove_tree(pfd, b".", prel)
            self.removed()
        else:
            vrel = prel + b"/" + victim if prel else victim
            if vrel in self.upper:
                try:
                    self._remove_tree(pfd, victim, vrel)
                except OSError as exc:
                    if exc.errno not in (errno.ENOTDIR, errno.ELOOP, errno.ENOENT):
                        raise
                self.removed()
            else:
                self.remove(pfd, victim, prel)
        # A whiteout must not change its directory's times (umoci checks this too).
        os.utime(
            b".",
            ns=(before.st_atime_ns, before.st_mtime_ns),
            dir_fd=pfd,
            follow_symlinks=False,
        )

    def overlay_whiteout(self, pfd: int, prel: bytes, victim: bytes | None, hdr: TarHeader) -> None:
        if victim is None:
            os.setxattr(fd_path(pfd), self.opaque_xattr, b"y")
            return
        vrel = prel + b"/" + victim if prel else victim
        if vrel in self.upper:
            # Written by this layer: the whiteout only hides what is below, which for
            # a directory means making it opaque.
            st = os.stat(victim, dir_fd=pfd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                os.setxattr(fd_path(pfd, victim), self.opaque_xattr, b"y", follow_symlinks=False)
            return
        self.remove(pfd, victim, prel)
        os.mknod(victim, stat.S_IFCHR, 0, dir_fd=pfd)
        if self.same_owner:
            self.check_ids(hdr)
            os.chown(victim, hdr.uid, hdr.gid, dir_fd=pfd, follow_symlinks=False)

    # -- the end ------------------------------------------------------------------
    def finish(self) -> None:
        """Apply directory modes and times, deepest first, through descriptors."""
        fixes: list[tuple[bytes, int, tuple[int, int] | None, int, int]] = [
            (rel, fix.mode, (fix.atime_ns, fix.mtime_ns), fix.dev, fix.ino) for rel, fix in self.dirs.items()
        ]
        for rel, (mode, dev, ino) in self.made_writable.items():
            if rel not in self.dirs:
                fixes.append((rel, mode, None, dev, ino))
        fixes.sort(key=lambda f: -1 if not f[0] else f[0].count(b"/"), reverse=True)
        resolver = self.resolver
        for rel, mode, times, dev, ino in fixes:
            self.name = rel or b"."
            comps = rel.split(b"/") if rel else []
            try:
                if not resolver.resolve(comps[:-1], create=False):
                    continue
                fd = os.open(comps[-1] if comps else b".", DIR_PATH_FLAGS, dir_fd=resolver.fd)
            except OSError as exc:
                if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                    continue  # replaced later in the layer: its new entry rules
                raise
            try:
                st = os.fstat(fd)
                if (st.st_dev, st.st_ino) != (dev, ino):
                    continue
                path = fd_path(fd)
                os.chmod(path, mode)
                if times is not None:
                    os.utime(path, ns=times)
            finally:
                os.close(fd)

    reader: TarReader


def apply_layer(
    root: str | os.PathLike[str],
    tar_stream: BinaryIO | HashingReader,
    options: ApplyOptions | None = None,
) -> ApplyResult:
    """Apply the uncompressed layer tar ``tar_stream`` onto the directory ``root``.

    The stream is read once, forward only, to its very end (the diffID covers any
    padding after the end-of-archive blocks); a :class:`HashingReader` (such as
    :class:`ctrpy.archive.pipeline.Prefetched`) is read directly, and its digest, which then
    covers what it read before, is the diffID.  Malformed or unsafe archives raise
    :class:`InvalidArchive`; failures to write raise :class:`UnpackError`; both name
    the tar entry.  The tree under ``root`` is then partially applied: throw it away.
    """
    opts = options if options is not None else ApplyOptions()
    if opts.whiteouts not in ("delete", "overlay"):
        raise InvalidArgument(f"unknown whiteout mode {opts.whiteouts!r} (valid: delete, overlay)")
    # A stream that hashes itself already (a Prefetched one, decompressed and hashed on
    # another thread) is read as it is.
    hashing = tar_stream if isinstance(tar_stream, HashingReader) else HashingReader(tar_stream)
    try:
        root_fd = os.open(root, DIR_READ_FLAGS & ~os.O_NOFOLLOW)
    except OSError as exc:
        raise UnpackError(f"cannot open layer root {quote(os.fsdecode(root))}: {exc.strerror}") from exc
    applier = _Applier(root_fd, opts)
    reader = applier.reader = TarReader(hashing)
    entries = 0
    on_progress = opts.on_progress
    try:
        while True:
            try:
                hdr = reader.next()
            except OSError as exc:  # reading the stream itself failed
                raise UnpackError(f"reading the layer: {exc.strerror or exc}") from exc
            if hdr is None:
                break
            try:
                applier.entry(hdr)
            except OSError as exc:
                detail = exc.strerror or str(exc)
                if isinstance(exc.filename, (str, bytes)) and exc.errno in (errno.ENOTDIR, errno.ELOOP):
                    detail = f"{detail} ({quote(exc.filename)})"
                raise UnpackError(f"layer entry {quote(hdr.name)}: {detail}") from exc
            except (ValueError, OverflowError) as exc:  # a name or number os.* refuses
                raise InvalidArchive(f"layer entry {quote(hdr.name)}: {exc}") from exc
            entries += 1
            if on_progress is not None and (entries < PROGRESS_EVERY or not entries % PROGRESS_EVERY):
                on_progress(entries, reader.offset)
        if on_progress is not None and entries >= PROGRESS_EVERY and entries % PROGRESS_EVERY:
            on_progress(entries, reader.offset)  # the last sample: the whole layer
        try:
            applier.finish()
        except OSError as exc:
            raise UnpackError(
                f"layer entry {quote(applier.name)}: setting directory metadata: {exc.strerror}"
            ) from exc
        try:
            hashing.drain()
        except OSError as exc:
            raise UnpackError(f"reading the layer: {exc.strerror or exc}") from exc
    finally:
        applier.close()
        os.close(root_fd)
    return ApplyResult(entries=entries, size=hashing.size, diff_id=hashing.digest)
