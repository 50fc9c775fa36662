"""Applying layers in tests, and the trees around them: apply a tar given as bytes, snapshot
a tree's state, remove trees thousands of levels deep, a sandbox whose outside must not
change, sparse trees and GNU tar, a pipe-like stream.  (Re-exported by ``tests.helpers``.)"""

from __future__ import annotations

import io
import os
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from ctrpy.archive import ApplyOptions, ApplyResult, apply_layer
from ctrpy.archive.treeops import remove_tree


def apply_bytes(root: Path, data: bytes, **options: Any) -> ApplyResult:
    """Apply a tar given as bytes to ``root`` (created if missing) with ctrpy's apply_layer."""
    root.mkdir(exist_ok=True)
    return apply_layer(root, io.BytesIO(data), ApplyOptions(**options))


def tree_state(base: Path, exclude: Path) -> dict[str, tuple[Any, ...]]:
    """Everything under ``base`` except ``exclude``: path -> (mode, uid, gid, size, mtime, content)."""
    result: dict[str, tuple[Any, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(base):
        if Path(dirpath) == exclude:
            dirnames[:] = []
            continue
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            if path == exclude:
                continue
            st = path.lstat()
            if path.is_symlink():
                content: Any = os.readlink(path)
            elif path.is_file():
                content = path.read_bytes()
            else:
                content = None
            result[str(path.relative_to(base))] = (
                st.st_mode,
                st.st_uid,
                st.st_gid,
                st.st_size if not path.is_dir() else 0,
                st.st_mtime_ns if not path.is_dir() else 0,
                content,
            )
        st = Path(dirpath).lstat()
        result[str(Path(dirpath).relative_to(base)) + "/"] = (st.st_mode, st.st_uid, st.st_gid)
    return result


DEEP_DIRS = "/".join(["d"] * 2100)  # a 4 KB path of 2,100 directories: more than PATH_MAX and the stack


@contextmanager
def removed_after(path: Path) -> Iterator[Path]:
    """``path``, removed at the end with ctrpy's iterative ``remove_tree``: Python 3.11's
    shutil.rmtree (and so pytest's clean-up of tmp_path) recurses, and dies on a tree
    thousands of levels deep."""
    try:
        yield path
    finally:
        remove_tree(path, best_effort=True)


@contextmanager
def scratch_dir() -> Iterator[Path]:
    """A new temporary directory, removed (whatever depth it reached) at the end."""
    with removed_after(Path(tempfile.mkdtemp(prefix="ctrpy-test-"))) as path:
        yield path


class Sandbox:
    """``tmp/root`` to apply layers into, next to ``tmp/outside`` holding a sentinel.

    ``assert_outside_unchanged()`` checks that nothing under ``tmp`` but the root was
    created, removed or modified since the sandbox was made.
    """

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.root = tmp / "root"
        self.root.mkdir()
        self.outside = tmp / "outside"
        self.outside.mkdir()
        self.sentinel = self.outside / "sentinel"
        self.sentinel.write_bytes(b"host data")
        self.sentinel.chmod(0o640)
        (self.outside / "subdir").mkdir(mode=0o750)
        self._before = tree_state(tmp, exclude=self.root)

    def apply(self, data: bytes, **options: Any) -> ApplyResult:
        return apply_bytes(self.root, data, **options)

    def assert_outside_unchanged(self) -> None:
        assert tree_state(self.tmp, exclude=self.root) == self._before
        assert self.sentinel.stat().st_nlink == 1


# GNU tar's sparse formats: old GNU, and pax 0.0, 0.1 and 1.0
GNU_SPARSE_FORMATS = [
    pytest.param(["--format=gnu"], id="gnu"),
    pytest.param(["--format=posix", "--sparse-version=0.0"], id="pax-0.0"),
    pytest.param(["--format=posix", "--sparse-version=0.1"], id="pax-0.1"),
    pytest.param(["--format=posix", "--sparse-version=1.0"], id="pax-1.0"),
]


def sparse_tree(src: Path) -> Path:
    """``src/sparse`` (data, hole, data, ... and a trailing hole: 20 * 64 KiB) and
    ``src/plain`` after it; returns ``src``."""
    src.mkdir()
    with open(src / "sparse", "wb") as f:
        for i in range(6):
            f.seek(i * 3 * 65536)
            f.write(bytes([65 + i]) * 5000)
        f.truncate(20 * 65536)
    (src / "plain").write_bytes(b"after the sparse file")
    return src


def gnu_tar_create(src: Path, *args: str, names: tuple[str, ...] = (".",)) -> bytes:
    """``tar -C SRC -c ARGS NAMES`` (GNU tar, UTC, numeric owners) to bytes."""
    return subprocess.run(
        ["tar", "-C", str(src), "-cf", "-", "--numeric-owner", *args, *names],
        capture_output=True, env={**os.environ, "TZ": "UTC", "LC_ALL": "C"}, check=True,
    ).stdout


class PipeLike(io.RawIOBase):
    """A non-seekable stream returning short reads, like a pipe."""

    def __init__(self, data: bytes, step: int = 7777) -> None:
        self._data = data
        self._pos = 0
        self._step = step

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def seek(self, *args: object) -> int:
        raise io.UnsupportedOperation("pipe")

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = min(len(buffer), self._step, len(self._data) - self._pos)
        buffer[:n] = self._data[self._pos : self._pos + n]
        self._pos += n
        return n


