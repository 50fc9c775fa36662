"""`images export OUT` / `images flatten OUT` write through what OUT is.

A regular OUT appears atomically; a symlink OUT is followed (the link stays); a device or
FIFO OUT (`/dev/null`, a named pipe) is written through, never replaced (ctrpy/util.py
output_file).  Found in review: the first version replaced all of them with a new file.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.builders import file
from tests.review._helpers import Run, archive


def _image(run: Run, tmp_path: Path) -> str:
    path = tmp_path / "in.tar"
    path.write_bytes(archive("docker.io/library/out:v1", [[file("a", b"a")]]))
    run.ok("images", "import", "--no-unpack", str(path))
    return "out:v1"


def test_export_through_symlink(run: Run, tmp_path: Path) -> None:
    name = _image(run, tmp_path)
    real = tmp_path / "real.tar"
    link = tmp_path / "link.tar"
    link.symlink_to(real)
    run.ok("images", "export", str(link), name)
    assert link.is_symlink()
    assert real.exists() and real.stat().st_size > 0


def test_flatten_through_symlink(run: Run, tmp_path: Path) -> None:
    name = _image(run, tmp_path)
    real = tmp_path / "real.tar"
    link = tmp_path / "link.tar"
    link.symlink_to(real)
    run.ok("images", "flatten", name, str(link))
    assert link.is_symlink()
    assert real.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="mknod needs root")
def test_export_to_char_device(run: Run, tmp_path: Path) -> None:
    name = _image(run, tmp_path)
    null = tmp_path / "null"
    os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # a private /dev/null
    run.ok("images", "export", str(null), name)
    assert stat.S_ISCHR(null.lstat().st_mode)
