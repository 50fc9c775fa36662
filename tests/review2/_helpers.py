"""Small helpers for the second review's tests: build archives, run ctrpy in-process.

Same approach as ``tests/review/_helpers.py`` (copied, so the two review suites stay apart).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from ctrpy.oci import Platform
from ctrpy.snapshots.mounts import is_mountpoint
from ctrpy.snapshots.overlay import overlay_supported
from tests.builders import ANNOTATION_IMAGE_NAME, Image, OCILayout, docker_save_tar
from tests.review._helpers import CLEAN_ENV, Run  # noqa: F401 - shared with tests/review

HOST = Platform.host()
SNAPSHOTTERS = ["native", "overlayfs"]


def host_image(layers: list[list[Any]], **kw: Any) -> Image:
    kw.setdefault("architecture", HOST.architecture)
    kw.setdefault("variant", HOST.variant or None)
    return Image(layers=layers, **kw)


def oci_archive(name: str, img: Any) -> bytes:
    """An oci-archive with one image named ``name`` (``img``: an Image or a BuiltImage)."""
    layout = OCILayout()
    layout.add_manifest(img, {ANNOTATION_IMAGE_NAME: name})
    return layout.tar_bytes()


def docker_archive(*images: tuple[Any, list[str]]) -> bytes:
    """A ``podman save`` style docker archive of ``(image, tags)`` pairs."""
    return docker_save_tar(list(images), variant="podman")


def need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting needs root")


def usable(snapshotter: str, tmp_path: Path) -> bool:
    if snapshotter == "overlayfs":
        return os.geteuid() == 0 and overlay_supported(tmp_path / "probe")
    return True


@contextmanager
def mount_target(tmp_path: Path, name: str = "mnt") -> Iterator[Path]:
    """A fresh mount point, lazily unmounted afterwards whatever the test did."""
    target = tmp_path / name
    target.mkdir()
    try:
        yield target
    finally:
        for _ in range(4):
            if not is_mountpoint(target):
                break
            subprocess.run(["umount", "-l", str(target)], check=False)
