"""The fixtures of every test (the plain helpers they use are in ``tests/helpers.py``).

- ``root`` (``<tmp>/root``, not created), ``workdir`` (``<tmp>/work``), ``run``: the CLI
  in-process on that root (``tests.helpers.Cli``); ``populated``: ``run`` on a store that
  already holds an unpacked image.
- ``procs``: ctrpy as real processes on ``root`` (``tests.helpers.Processes``: start
  without waiting, bounded waits, a stdout gate that stops a process at a line); whatever
  still runs at the end of the test is killed.
- ``rootfs``: an empty directory to apply layers into; ``box``: a ``Sandbox`` (a root next to
  an ``outside`` directory that must not change).
- ``client``: ``ctrpy.Client`` on ``<tmp>/root``; ``db``: a metadata database in ``<tmp>/metadata.db``.
- ``snapshotter``: each of ``native`` and ``overlayfs`` (overlayfs skipped where it cannot be
  mounted: it needs root).
- interop: ``containerd`` (a private daemon for the session), ``ctr`` (in a namespace of its
  own per test), ``ctrpy`` (``ctrpy --root <tmp>/root`` as a subprocess), ``skopeo``,
  ``umoci``, ``podman``, ``require_peer``. Each is skipped when missing (failed under
  CI=true). Every test under ``tests/interop/`` is marked ``interop``.
"""

from __future__ import annotations

import functools
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import TypeVar

import pytest

from ctrpy.client import Client
from ctrpy.metadata.db import Database
from tests import peers
from tests.builders import file
from tests.helpers import (
    SNAPSHOTTERS,
    Cli,
    Processes,
    Runner,
    Sandbox,
    host_image,
    named_archive,
    require_peer,
    unavailable,
    usable,
)
from tests.peers import Containerd, ContainerdStartError, Ctr, Ctrpy, mounts_under, short_tmpdir
from tests.registry.fixtures import (  # noqa: F401  the registry fixtures for every test (not `client`: see below)
    basic_registry,
    client_ca,
    client_pair,
    env,
    fault_proxy,
    mtls_registry,
    no_user_credentials,
    plain_registry,
    push,
    pushed_image,
    repo,
    tls_pair,
    tls_registry,
    token_pair,
    token_registry,
    token_server,
)

_INTEROP = Path(__file__).parent / "interop"
T = TypeVar("T")


@pytest.hookimpl(tryfirst=True)  # before -m deselects
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _INTEROP in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.interop)


def _closed(thing: T) -> Iterator[T]:
    with closing(thing):  # type: ignore[type-var]
        yield thing


# --------------------------------------------------------------------------- stores and the CLI
@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "root"


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "work").mkdir()
    return tmp_path / "work"


@pytest.fixture
def run(root: Path, workdir: Path) -> Cli:
    return Cli(root, workdir)


@pytest.fixture
def populated(run: Cli) -> Cli:
    """``run`` on a store with one image (unpacked) in it, so 'nothing changed' means something."""
    img = host_image([file("base.txt", b"baseline")]).build()
    run.ok("images", "import", run.write(named_archive((img, "base/line:1"))))
    return run


@pytest.fixture
def procs(root: Path) -> Iterator[Processes]:
    """ctrpy as real processes on ``root``; whatever still runs at the end is killed."""
    yield from _closed(Processes(root))


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    """An empty directory to apply layers into."""
    (tmp_path / "rootfs").mkdir()
    return tmp_path / "rootfs"


@pytest.fixture
def box(tmp_path: Path) -> Sandbox:
    return Sandbox(tmp_path)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    """A metadata database in ``<tmp>/metadata.db``."""
    yield from _closed(Database(tmp_path / "metadata.db"))


@pytest.fixture
def client(root: Path) -> Iterator[Client]:
    """The library's façade on ``<tmp>/root``."""
    yield from _closed(Client(root))


@pytest.fixture(params=SNAPSHOTTERS)
def snapshotter(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if not usable(request.param, tmp_path):
        pytest.skip("overlayfs needs root and a mountable overlay filesystem")
    return str(request.param)


@pytest.fixture
def no_env_snapshotter(monkeypatch: pytest.MonkeyPatch) -> None:
    """No CTRPY_SNAPSHOTTER inherited from the environment."""
    monkeypatch.delenv("CTRPY_SNAPSHOTTER", raising=False)


# --------------------------------------------------------------------------- interop peers
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
    return functools.partial(peers.run, "skopeo")


@pytest.fixture
def umoci() -> Runner:
    require_peer("umoci")
    return functools.partial(peers.run, "umoci")


@pytest.fixture
def podman() -> Iterator[Runner]:
    """podman with its own storage under a short temp dir (it refuses a --runroot longer than
    50 characters, which pytest's tmp_path usually is); removed afterwards."""
    require_peer("podman")
    base = short_tmpdir("pm-")
    try:
        yield functools.partial(
            peers.run,
            "podman",
            "--root", str(base / "root"),
            "--runroot", str(base / "run"),
            "--storage-driver", "vfs",
            "--cgroup-manager", "cgroupfs",
            "--events-backend", "file",
        )
    finally:
        for point in mounts_under(base):
            peers.run("umount", "-l", point, check=False)
        shutil.rmtree(base, ignore_errors=True)
