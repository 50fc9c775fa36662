"""A full disk (issue 10): the root on a 20 MiB tmpfs (root only: it is mounted for the
test and unmounted afterwards, whatever happens). What does not fit fails with one clean
error, the store stays usable, and after the failure and a collection the space is back."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.builders import file
from tests.helpers import Cli, Processes, big_archive, disk_usage, host_image, is_root, named_archive

pytestmark = pytest.mark.skipif(not is_root, reason="mounting a tmpfs needs root")

MiB = 1 << 20
BIG = "docker.io/library/big:v1"
BASELINE = "docker.io/library/baseline:v1"


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "disk"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.fixture
def store(disk: Path, workdir: Path) -> Cli:
    """A store on the small disk, holding one small image already."""
    run = Cli(disk / "root", workdir)
    run.ok("images", "import", run.write(named_archive((host_image([file("etc/motd", b"hi\n")]).build(), BASELINE))))
    return run


def archive_of(workdir: Path, size: int, seed: int) -> str:
    """An OCI archive (outside the small disk) of one layer of ``size`` random bytes."""
    path = workdir / f"big-{seed}.tar"
    big_archive(path, BIG, size, 8, seed=seed, compressible=0.0)
    return str(path)


def free(disk: Path) -> int:
    st = os.statvfs(disk)
    return st.f_bavail * st.f_frsize


@pytest.mark.parametrize("size", [30 * MiB, 12 * MiB], ids=["blobs", "unpack"])
def test_an_import_that_does_not_fit_fails_cleanly_and_a_collection_gives_the_space_back(
    store: Cli, procs: Processes, disk: Path, workdir: Path, size: int
) -> None:
    """30 MiB of blobs cannot be stored; 12 MiB can, but not unpacked beside them. (On a
    full disk a failed unpack cannot always record its own roll-back: its active snapshot
    may stay until the collection, which frees it.)"""
    archive = archive_of(workdir, size, seed=size)
    before, used = free(disk), disk_usage(store.root)
    failed = procs.run("images", "import", archive, root=store.root)
    assert failed.returncode == 1, str(failed)
    assert "No space left on device" in failed.error_line()
    assert store.names() == [BASELINE]
    store.ok("content", "prune", "--older-than", "0s")
    assert disk_usage(store.root) == used
    assert free(disk) >= before - MiB  # the database may have grown a little
    assert store.ok("images", "check", "-q").stdout.split() == [BASELINE]
    store.assert_store_works()


def test_a_disk_too_full_for_the_database_fails_cleanly_and_works_once_there_is_room(
    store: Cli, disk: Path
) -> None:
    """Not a byte left: a write fails with one error line naming the database (reads may
    too: SQLite must create its shared-memory file to open the database), and once there
    is room again the store is as it was and works."""
    before = store.state()
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for chunk in (MiB, 4096, 1):  # to the last byte
            while True:
                try:
                    os.write(fd, b"\0" * chunk)
                except OSError:
                    break
    finally:
        os.close(fd)
    line = store.fails("images", "tag", BASELINE, "docker.io/library/copy:v1").stderr
    assert "metadata database" in line
    filler.unlink()
    store.assert_unchanged(before)
    store.ok("images", "tag", BASELINE, "docker.io/library/copy:v1")
    assert store.names() == [BASELINE, "docker.io/library/copy:v1"]
