"""Fixtures for the interop tests: real peers, each skipped when missing (failed under CI=true).

- ``containerd``: a private containerd daemon for the session (``tests.peers.Containerd``);
  ``ctr``: ``ctr`` bound to a fresh namespace of it, one per test.
- ``ctrpy``: ``ctrpy --root <tmp_path>/root`` as a subprocess (``tests.peers.Ctrpy``).
- ``skopeo``, ``umoci``: run the tool (``tests.peers.run``: output captured as text, raises
  ``CommandError`` with the stderr on failure; pass ``check=False`` to look at a failure).
- ``podman``: ``podman --root/--runroot <short tmp dir>/... --storage-driver vfs``.
- ``require_peer(tool)``: skip (fail under CI) unless ``tool`` is installed.

Every test under this directory is marked ``interop``.
"""

from __future__ import annotations

import functools
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import pytest

from tests.peers import (
    Containerd,
    ContainerdStartError,
    Ctr,
    Ctrpy,
    have,
    in_ci,
    mounts_under,
    run,
    short_tmpdir,
)

_HERE = Path(__file__).parent

Runner = Callable[..., CompletedProcess[Any]]


@pytest.hookimpl(tryfirst=True)  # before -m deselects
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.interop)


def unavailable(reason: str) -> None:
    """Skip the test, or fail it under CI where every peer must be there and work."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: interop peers must be available)", pytrace=False)
    pytest.skip(reason)


def require_peer(*tools: str) -> None:
    for tool in tools:
        if not have(tool):
            unavailable(f"{tool} is not installed (run `make peers`)")


@pytest.fixture(name="require_peer")
def require_peer_fixture() -> Callable[..., None]:
    return require_peer


@pytest.fixture(scope="session")
def containerd() -> Iterator[Containerd]:
    require_peer("containerd", "ctr")
    if os.geteuid() != 0:
        unavailable("the private containerd needs root")
    daemon = Containerd()
    try:
        daemon.start()
    except ContainerdStartError as e:
        unavailable(f"containerd did not start: {e}")
    try:
        yield daemon
    finally:
        daemon.stop()


@pytest.fixture
def ctr(containerd: Containerd) -> Ctr:
    """``ctr`` in a namespace of its own, so tests sharing the daemon never see each other."""
    return containerd.in_namespace(f"t-{uuid.uuid4().hex[:12]}")


@pytest.fixture
def ctrpy(tmp_path: Path) -> Ctrpy:
    return Ctrpy(tmp_path / "root")


@pytest.fixture
def skopeo() -> Runner:
    require_peer("skopeo")
    return functools.partial(run, "skopeo")


@pytest.fixture
def umoci() -> Runner:
    require_peer("umoci")
    return functools.partial(run, "umoci")


@pytest.fixture
def podman() -> Iterator[Runner]:
    """podman with its own storage under a short temp dir (it refuses a --runroot longer than
    50 characters, which pytest's tmp_path usually is); removed afterwards."""
    require_peer("podman")
    base = short_tmpdir("pm-")
    try:
        yield functools.partial(
            run,
            "podman",
            "--root", str(base / "root"),
            "--runroot", str(base / "run"),
            "--storage-driver", "vfs",
            "--cgroup-manager", "cgroupfs",
            "--events-backend", "file",
        )
    finally:
        for point in mounts_under(base):
            run("umount", "-l", point, check=False)
        shutil.rmtree(base, ignore_errors=True)
