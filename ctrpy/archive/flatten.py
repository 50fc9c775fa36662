"""Flatten a stack of layer tars into one tar of the final root filesystem, streaming.

Layers are read top-down (as go-containerregistry's ``mutate.Extract`` does): an entry is
written unless an upper layer already wrote that path, whited it out, made an ancestor
opaque, or replaced an ancestor with a non-directory.  Nothing touches the disk, so owners,
devices and xattrs survive even without root.  Entry headers (mode, owner, times, PAX
records) pass through as they are; whiteout markers never reach the output.

A hardlink in a lower layer whose target an upper layer replaced or removed must keep the
old content (as extract, umoci and containerd keep the old inode).  So lower layers are read
twice: a first pass lists their hardlinks; in the second, a hidden target that a visible
link still needs is written under that link's name, and the layer's other links to it are
pointed there.
"""

from __future__ import annotations

import posixpath
import tarfile
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from typing import BinaryIO

from ctrpy.errors import InvalidArchive

WHITEOUT_PREFIX = ".wh."
OPAQUE = ".wh..wh..opq"

LayerOpener = Callable[[], AbstractContextManager[BinaryIO]]


def _clean(name: str) -> str:
    n = posixpath.normpath("/" + name).lstrip("/")
    return "" if n == "." else n


def _ancestors(path: str) -> Iterable[str]:
    while True:
        path = posixpath.dirname(path)
        if not path:
            return
        yield path


class _Hidden:
    """What upper layers hide from lower ones."""

    def __init__(self) -> None:
        self.written: set[str] = set()  # paths already emitted
        self.gone: set[str] = set()  # whited-out paths (whole subtrees)
        self.opaque: set[str] = set()  # directories whose lower children are hidden
        self.nondirs: set[str] = set()  # emitted non-directories (hide lower subtrees)

    def hides(self, path: str) -> bool:
        if path in self.written or path in self.gone:
            return True
        return any(a in self.gone or a in self.opaque or a in self.nondirs for a in _ancestors(path))


def _hardlinks(stream: BinaryIO) -> dict[str, list[str]]:
    """target -> link names, for every hardlink entry of one layer (first pass)."""
    links: dict[str, list[str]] = {}
    try:
        with tarfile.open(fileobj=stream, mode="r|", bufsize=1 << 20) as src:
            for m in src:
                if m.islnk():
                    links.setdefault(_clean(m.linkname), []).append(_clean(m.name))
    except tarfile.TarError as e:
        raise InvalidArchive(f"layer is not a valid tar archive: {e}") from e
    return links


def flatten(layers_top_first: Sequence[LayerOpener], out: BinaryIO) -> int:
    """Write the merged tree of the layers (uncompressed tar openers, top first) to ``out``;
    returns the number of entries written."""
    hidden = _Hidden()
    count = 0
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT, bufsize=1 << 20) as dst:
        for depth, opener in enumerate(layers_top_first):
            links: dict[str, list[str]] = {}
            if depth > 0:
                with opener() as stream:
                    links = _hardlinks(stream)
            new_gone: set[str] = set()
            new_opaque: set[str] = set()
            written_here: set[str] = set()
            moved: dict[str, str] = {}  # hidden link target -> the visible link that now holds it
            with opener() as stream:
                try:
                    src = tarfile.open(fileobj=stream, mode="r|", bufsize=1 << 20)  # noqa: SIM115
                    for m in src:
                        name = _clean(m.name)
                        base = posixpath.basename(name)
                        parent = posixpath.dirname(name)
                        if base == OPAQUE:
                            new_opaque.add(parent)
                            continue
                        if base.startswith(WHITEOUT_PREFIX):
                            if base.startswith(WHITEOUT_PREFIX + WHITEOUT_PREFIX):
                                continue
                            victim = base[len(WHITEOUT_PREFIX):]
                            if victim in ("", ".", "..") or "/" in victim:
                                raise InvalidArchive(f"layer entry {m.name!r}: invalid whiteout name")
                            new_gone.add(posixpath.join(parent, victim))
                            continue
                        if not name or name in written_here:
                            continue
                        if m.islnk() and _clean(m.linkname) in moved:
                            holder = moved[_clean(m.linkname)]
                            if name == holder or hidden.hides(name):
                                continue
                            m.linkname = holder
                        elif hidden.hides(name):
                            heirs = [
                                ln for ln in links.get(name, ())
                                if ln not in written_here and not hidden.hides(ln)
                            ] if m.isreg() else []
                            if not heirs:
                                continue  # tarfile skips the unread data by itself
                            moved[name] = name = heirs[0]
                        m.name = name + ("/" if m.isdir() else "")
                        if m.islnk():
                            m.linkname = _clean(m.linkname)
                        data = src.extractfile(m) if m.isreg() else None
                        dst.addfile(m, data)
                        count += 1
                        written_here.add(name)
                        if not m.isdir():
                            hidden.nondirs.add(name)
                    src.close()
                except tarfile.TarError as e:
                    raise InvalidArchive(f"layer is not a valid tar archive: {e}") from e
            hidden.written |= written_here
            hidden.gone |= new_gone
            hidden.opaque |= new_opaque
    return count
