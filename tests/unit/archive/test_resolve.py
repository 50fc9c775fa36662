"""The path helpers other modules reuse: clean_path, resolve_in_root, safe_join."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from ctrpy.archive import clean_path, resolve_in_root, safe_join


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    (r / "etc").mkdir(parents=True)
    (r / "etc" / "passwd").write_bytes(b"inside")
    (r / "usr" / "lib").mkdir(parents=True)
    os.symlink("usr/lib", r / "lib")
    os.symlink("/etc", r / "abs-etc")
    os.symlink("../../../..", r / "up")
    os.symlink("passwd", r / "etc" / "pw")
    os.symlink("/nowhere/file", r / "dangling")
    os.symlink("loop2", r / "loop1")
    os.symlink("loop1", r / "loop2")
    (tmp_path / "outside").write_bytes(b"host")
    return r


@pytest.fixture
def root_fd(root: Path) -> Iterator[int]:
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    yield fd
    os.close(fd)


def identity(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return st.st_dev, st.st_ino


def ident_of(path: Path) -> tuple[int, int]:
    st = path.lstat()
    return st.st_dev, st.st_ino


def resolved(root_fd: int, path: str, **kw: bool) -> tuple[int, int]:
    fd = resolve_in_root(root_fd, path, **kw)
    try:
        return identity(fd)
    finally:
        os.close(fd)


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("/etc/passwd", "etc/passwd"),
        ("./etc/./passwd", "etc/passwd"),
        ("../../etc", "etc"),
        ("a/b/../../../c", "c"),
        ("/", ""),
        ("", ""),
        ("..", ""),
        ("a//b/", "a/b"),
    ],
)
def test_clean_path_never_rises_above_the_root(raw: str, clean: str) -> None:
    assert clean_path(raw) == clean


def test_resolve_in_root_opens_a_plain_path(root: Path, root_fd: int) -> None:
    assert resolved(root_fd, "/etc/passwd") == ident_of(root / "etc" / "passwd")


def test_resolve_in_root_of_the_root_is_the_root(root: Path, root_fd: int) -> None:
    assert resolved(root_fd, "/") == ident_of(root)
    assert resolved(root_fd, "../..") == ident_of(root)


def test_resolve_in_root_follows_relative_symlinked_parents(root: Path, root_fd: int) -> None:
    (root / "usr" / "lib" / "libc.so").write_bytes(b"")
    assert resolved(root_fd, "lib/libc.so") == ident_of(root / "usr" / "lib" / "libc.so")


def test_resolve_in_root_clamps_absolute_symlinks_to_the_root(root: Path, root_fd: int) -> None:
    assert resolved(root_fd, "abs-etc/passwd") == ident_of(root / "etc" / "passwd")


def test_resolve_in_root_clamps_dotdot_symlinks_to_the_root(root: Path, root_fd: int) -> None:
    assert resolved(root_fd, "up/etc/passwd") == ident_of(root / "etc" / "passwd")
    with pytest.raises(FileNotFoundError):
        resolve_in_root(root_fd, "up/outside")


def test_resolve_in_root_does_not_follow_the_final_symlink_by_default(root: Path, root_fd: int) -> None:
    fd = resolve_in_root(root_fd, "etc/pw")
    try:
        assert stat.S_ISLNK(os.fstat(fd).st_mode)
    finally:
        os.close(fd)


def test_resolve_in_root_follows_the_final_symlink_when_asked(root: Path, root_fd: int) -> None:
    assert resolved(root_fd, "etc/pw", follow_final=True) == ident_of(root / "etc" / "passwd")
    assert resolved(root_fd, "abs-etc", follow_final=True) == ident_of(root / "etc")
    assert resolved(root_fd, "up", follow_final=True) == ident_of(root)


def test_resolve_in_root_of_a_dangling_symlink_followed_is_missing(root_fd: int) -> None:
    with pytest.raises(FileNotFoundError):
        resolve_in_root(root_fd, "dangling", follow_final=True)


def test_resolve_in_root_of_a_missing_path_raises_file_not_found(root_fd: int) -> None:
    with pytest.raises(FileNotFoundError):
        resolve_in_root(root_fd, "etc/missing")
    with pytest.raises(FileNotFoundError):
        resolve_in_root(root_fd, "missing/dir/file")


def test_resolve_in_root_below_a_file_raises_not_a_directory(root_fd: int) -> None:
    with pytest.raises(NotADirectoryError):
        resolve_in_root(root_fd, "etc/passwd/x")


def test_resolve_in_root_stops_symlink_loops(root_fd: int) -> None:
    with pytest.raises(OSError) as info:
        resolve_in_root(root_fd, "loop1/x")
    assert info.value.errno == errno.ELOOP


def test_safe_join_resolves_symlinks_inside_the_root(root: Path) -> None:
    assert safe_join(root, "abs-etc/passwd") == str(root / "etc" / "passwd")
    assert safe_join(root, "up/up/etc") == str(root / "etc")
    assert safe_join(root, "lib/x") == str(root / "usr" / "lib" / "x")


def test_safe_join_keeps_missing_components_lexically(root: Path) -> None:
    assert safe_join(root, "missing/a/../b") == str(root / "missing" / "b")
    assert safe_join(root, "dangling/x") == str(root / "nowhere" / "file" / "x")


def test_safe_join_does_not_follow_the_final_component(root: Path) -> None:
    assert safe_join(root, "abs-etc") == str(root / "abs-etc")


def test_safe_join_of_nothing_is_the_root(root: Path) -> None:
    assert safe_join(root, "../..") == str(root)
