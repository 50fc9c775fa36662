"""Small helpers with no better home."""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from ctrpy.errors import InvalidArgument

Output = BinaryIO | str | os.PathLike[str]  # where an export or a flatten writes


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def output_file(dest: Path) -> Iterator[BinaryIO]:
    """Where an export or flatten writes OUT.

    A regular file (new or existing) appears only when the block succeeds: a temp file next
    to it is renamed over it, so a failure leaves no partial OUT.  A symlink is followed and
    its target written the same way (the link stays a link).  Anything else that exists
    (a character device such as /dev/null, a FIFO, a socket) is written through, as
    ``ctr`` does: it cannot be replaced, and must not be.  A directory is an error naming OUT.
    """
    real = Path(os.path.realpath(dest))
    try:
        st = os.stat(real)
    except FileNotFoundError:
        st = None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise InvalidArgument(f"{dest} is a directory")
    if st is not None and not stat.S_ISREG(st.st_mode):
        with open(real, "wb", buffering=1 << 20) as f:
            yield f
        return
    fd, tmp = tempfile.mkstemp(dir=real.parent, prefix=f".{real.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb", buffering=1 << 20) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, stat.S_IMODE(st.st_mode) if st is not None else 0o666 & ~umask())
        os.replace(tmp, real)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


@contextmanager
def writable(out: Output) -> Iterator[BinaryIO]:
    """A stream as it is (flushed after the block); a path through :func:`output_file` (atomic)."""
    if isinstance(out, (str, os.PathLike)):
        with output_file(Path(out)) as f:
            yield f
    else:
        yield out
        out.flush()
