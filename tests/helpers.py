"""What the tests share: plain functions and classes, each defined once (fixtures are in
``tests/conftest.py``).

- the host platform and archives for it: ``HOST``, ``host_image``, ``oci_archive``,
  ``named_archive``, ``docker_archive``, ``big_archive``; a store's ``disk_usage`` and ``partial_writes``;
- running the CLI in-process: ``Cli`` (``run`` in conftest), ``CLEAN_ENV``, ``assert_error``;
- ctrpy as real processes: ``Processes`` (``procs`` in conftest), ``Finished``,
  ``StdoutGate``, ``wait_until``, ``killed_when_ready``;
- applying layers with ctrpy: ``apply_bytes``, ``Sandbox``, ``tree_state``, ``PipeLike``;
- snapshotters and mounts: ``SNAPSHOTTERS``, ``usable``, ``need_root``, ``mount_target``;
- the interop peers: ``Runner``, ``require_peer``, ``unavailable``.

The archive builders themselves (``tests.builders``) are the oracle and never import
ctrpy; everything here may.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

from ctrpy.cli.main import cli
from ctrpy.cli.render import MESSAGE_LINE
from ctrpy.oci import Platform
from ctrpy.snapshots.mounts import is_mountpoint
from ctrpy.snapshots.overlay import overlay_supported
from tests.applying import (  # re-exported: tests import every shared helper from tests.helpers
    DEEP_DIRS as DEEP_DIRS,
)
from tests.applying import (
    GNU_SPARSE_FORMATS as GNU_SPARSE_FORMATS,
)
from tests.applying import (
    PipeLike as PipeLike,
)
from tests.applying import (
    Sandbox as Sandbox,
)
from tests.applying import (
    apply_bytes as apply_bytes,
)
from tests.applying import (
    gnu_tar_create as gnu_tar_create,
)
from tests.applying import (
    removed_after as removed_after,
)
from tests.applying import (
    scratch_dir as scratch_dir,
)
from tests.applying import (
    sparse_tree as sparse_tree,
)
from tests.applying import (
    tree_state as tree_state,
)
from tests.builders import (
    ANNOTATION_IMAGE_NAME,
    ANNOTATION_REF_NAME,
    BuiltImage,
    Image,
    Layer,
    OCILayout,
    big_image,
    directory,
    docker_save_tar,
    file,
    sha256_digest,
    whiteout,
)
from tests.peers import have, in_ci
from tests.processes import (  # re-exported: tests import every shared helper from tests.helpers
    Finished as Finished,
)
from tests.processes import (
    Measured as Measured,
)
from tests.processes import (
    Processes as Processes,
)
from tests.processes import (
    StdoutGate as StdoutGate,
)
from tests.processes import (
    killed_when_ready as killed_when_ready,
)
from tests.processes import (
    run_measured as run_measured,
)
from tests.processes import (
    wait_until as wait_until,
)

# --------------------------------------------------------------------------- platforms, archives
HOST = Platform.host()
HOST_PLATFORM = str(HOST)  # "linux/amd64", "linux/arm/v7"
OTHER_ARCH = "s390x" if HOST.architecture != "s390x" else "ppc64le"  # an architecture that is not the host's
THIRD_ARCH = "ppc64le" if HOST.architecture != "ppc64le" else "riscv64"  # and another one


def host_image(*layers: Any, **kw: Any) -> Image:
    """An image for this machine's platform (so the host-default matcher selects it)."""
    kw.setdefault("architecture", HOST.architecture)
    kw.setdefault("variant", HOST.variant or None)
    return Image(layers=list(layers), **kw)


def text_image(text: bytes = b"app") -> BuiltImage:
    """A two-layer host image whose content, and so every digest, depends on ``text``."""
    return host_image([file("etc/app.txt", text)], [file("bin/app", text * 3)]).build()


def arch_image(arch: str, variant: str | None = None, text: bytes | None = None) -> BuiltImage:
    """A one-layer image for ``linux/<arch>[/<variant>]``."""
    return Image([[file("arch.txt", text or arch.encode())]], architecture=arch, variant=variant).build()


def oci_archive(
    *entries: tuple[Any, dict[str, str] | None], platform: bool = False, **tar_options: Any
) -> bytes:
    """An oci-archive of ``(item, annotations)`` index entries (see OCILayout.add_manifest;
    ``platform``: the entries carry their image's platform)."""
    layout = OCILayout()
    for item, entry_annotations in entries:
        layout.add_manifest(item, entry_annotations, platform=platform)
    return layout.tar_bytes(**tar_options)


def named_archive(*images: tuple[Any, str], **options: Any) -> bytes:
    """An oci-archive of ``(image, name)`` pairs, each named by ``io.containerd.image.name``."""
    return oci_archive(*((img, {ANNOTATION_IMAGE_NAME: name}) for img, name in images), **options)


def docker_archive(*images: tuple[Any, list[str] | None]) -> bytes:
    """A ``podman save`` style docker archive of ``(image, tags)`` pairs."""
    return docker_save_tar(list(images), variant="podman")


# digests that must never become a path: traversal, wrong case, length, algorithm, framing
INVALID_DIGESTS = [
    "sha256:../../x",
    "sha256:../../../../etc/passwd",
    "sha256:" + "A" * 64,  # uppercase hex
    "sha256:" + "a" * 63,
    "sha256:" + "a" * 65,
    "sha256:" + "g" * 64,
    "sha512:" + "a" * 128,
    "md5:" + "a" * 32,
    "sha256:" + "a" * 64 + "\n",
    "sha256:" + "a" * 63 + "/",
    "/sha256:" + "a" * 64,
    "a" * 64,
]


def blob_path(root: Path, digest: str) -> Path:
    """Where a store under ``root`` keeps the bytes of ``digest``."""
    return root / "content" / "blobs" / "sha256" / digest.split(":", 1)[1]


def tamper(path: Path, data: bytes | None = None) -> None:
    """Replace a (read-only) blob file's bytes: ``data``, or the same bytes with the middle one flipped."""
    if data is None:
        body = bytearray(path.read_bytes())
        body[len(body) // 2] ^= 0xFF
        data = bytes(body)
    path.chmod(0o644)
    path.write_bytes(data)
    path.chmod(0o444)


@contextmanager
def raises_naming(exc: type[BaseException], *fragments: str) -> Iterator[pytest.ExceptionInfo[Any]]:
    """``pytest.raises(exc)``, and the message names every fragment (the entry, digest, name
    or offset involved), whatever the rest of its wording."""
    with pytest.raises(exc) as info:
        yield info
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def big_archive(path: Path, name: str, total: int, files: int, seed: int, **options: Any) -> tuple[Image, BuiltImage]:
    """An OCI archive at ``path`` of a reproducible big image for this machine's platform
    (``tests.builders.big_image(total, files, seed, **options)``, streamed, never held in
    memory) named ``name``; returns the image's spec (its layers list their files) and the
    built image (its digests)."""
    spec = dataclasses.replace(
        big_image(total, files, seed=seed, workdir=path.parent, **options),
        architecture=HOST.architecture, variant=HOST.variant or None,
    )
    built = spec.build()
    layout = OCILayout()
    layout.add_manifest(built, {ANNOTATION_IMAGE_NAME: name}, platform=True)
    layout.write_tar(path)
    return spec, built


def partial_writes(root: Path, at_least: int = 0) -> list[Path]:
    """A store's partial writes (in ``content/ingest``, named after their lease:
    ``<lease>@...``) of at least that many bytes, as they are now."""
    found = []
    for p in (root / "content" / "ingest").glob("*@*"):
        try:
            if p.stat().st_size >= at_least:
                found.append(p)
        except FileNotFoundError:  # committed meanwhile
            pass
    return found


def disk_usage(root: Path) -> int:
    """Bytes the files of a store take on disk (allocated blocks), its database aside."""
    total = 0
    for dirpath, dirnames, filenames in os.walk(root):
        for n in (*dirnames, *filenames):
            if Path(dirpath) == root and n.startswith("metadata.db"):
                continue
            total += os.lstat(os.path.join(dirpath, n)).st_blocks * 512
    return total


# --------------------------------------------------------------------------- images as root filesystems
# the CLI tests of unpack, snapshots, extract, flatten and mount share this two-layer image
APP = "docker.io/library/app:v1"
OTHER = "docker.io/library/other:v1"
BASE_LAYER = [directory("etc"), file("etc/base", b"base\n"), file("etc/remove-me", b"x")]
APP_LAYER = [directory("app"), file("app/bin", b"app\n", 0o755), whiteout("etc/remove-me")]


def app_image() -> BuiltImage:
    """``BASE_LAYER`` then ``APP_LAYER`` (which removes etc/remove-me), for the host."""
    return host_image(BASE_LAYER, APP_LAYER).build()


def lying_image(text: bytes = b"app") -> BuiltImage:
    """An image whose config gives its second layer a diffID the layer does not hash to."""
    return host_image(BASE_LAYER, Layer([file("app/bin", text)], diff_id=sha256_digest(b"a lie"))).build()


def unpacking_line(name: str, img: BuiltImage) -> str:
    """What ctr (and ctrpy) print for an image unpacked on import or by ``images unpack``."""
    return f"unpacking {name} ({img.manifest.digest})...done"


# --------------------------------------------------------------------------- the CLI, in-process
def walk_commands(cmd: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    """Every command of the tree, with its path of names from the root (the root is ``()``)."""
    yield path, cmd
    if isinstance(cmd, click.Group):
        ctx = click.Context(cmd)
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            assert sub is not None
            yield from walk_commands(sub, (*path, name))


COMMAND_TREE = list(walk_commands(cli))
COMMAND_IDS = [" ".join(path) or "ctrpy" for path, _cmd in COMMAND_TREE]


# the environment every invocation starts from: nothing inherited that changes behaviour
CLEAN_ENV: dict[str, str | None] = {
    "CTRPY_ROOT": None,
    "CTRPY_NAMESPACE": None,
    "CONTAINERD_NAMESPACE": None,
    "CTRPY_DEBUG": None,
    "CTRPY_SNAPSHOTTER": None,
    "CTRPY_PROGRESS": None,
    "FORCE_COLOR": None,
    "NO_COLOR": None,
}

_DB_FILES = {"metadata.db", "metadata.db-wal", "metadata.db-shm", "metadata.db-journal"}


@dataclass(frozen=True)
class StoreState:
    """What a user can see of a store, and its files (metadata.db aside)."""

    listings: dict[str, Any]
    files: dict[str, tuple[str, int, int, int, int]]  # path -> (kind, size, mtime_ns, inode, mode)


class Cli:
    """``ctrpy --root ROOT ...`` in-process (click's CliRunner; stdout and stderr apart).

    ``run(*args, input=None, env=None)`` returns click's ``Result``. ``run.ok(...)`` also
    asserts exit 0; ``run.fails(..., match=...)`` asserts the error contract (exit 1, exactly
    one ``ctrpy: error: ...`` line on stderr, no traceback, no internal error);
    ``run.usage_error(...)`` asserts exit 2. ``run.state()`` snapshots everything a user can
    see (``images ls``, ``content ls`` and ``namespaces ls`` as JSON, in every namespace) plus
    every file of the store; ``run.assert_unchanged(before)`` compares, and
    ``run.assert_store_works()`` imports and reads back a fresh image.
    """

    def __init__(self, root: Path, workdir: Path):
        self.root = root
        self.workdir = workdir
        self.runner = CliRunner()
        self._serial = 0

    # running ----------------------------------------------------------------
    def invoke(
        self,
        args: tuple[str, ...] | list[str],
        *,
        input: bytes | str | None = None,
        env: Mapping[str, str | None] | None = None,
        root: bool = True,
    ) -> Result:
        argv = ["--root", str(self.root), *args] if root else list(args)
        return self.runner.invoke(cli, argv, input=input, env={**CLEAN_ENV, **(env or {})})

    def __call__(self, *args: str, **kw: Any) -> Result:
        return self.invoke(args, **kw)

    def ok(self, *args: str, **kw: Any) -> Result:
        r = self.invoke(args, **kw)
        assert r.exit_code == 0, f"ctrpy {' '.join(args)} exited {r.exit_code}:\n{r.stderr}\n{r.exception!r}"
        assert "Traceback" not in r.stderr
        return r

    def fails(
        self, *args: str, match: str | tuple[str, ...] = (), stdout: str | None = "", warnings: bool = False,
        **kw: Any,
    ) -> Result:
        """Assert the error contract; ``match``: fragments the error line must contain."""
        r = self.invoke(args, **kw)
        assert_error(r, match, stdout=stdout, warnings=warnings)
        return r

    def usage_error(self, *args: str, **kw: Any) -> Result:
        r = self.invoke(args, **kw)
        assert r.exit_code == 2, f"exit {r.exit_code}, stderr:\n{r.stderr}"
        assert isinstance(r.exception, SystemExit)
        assert "Traceback" not in r.stderr
        assert "Usage:" in r.stderr
        return r

    # files ------------------------------------------------------------------
    def write(self, data: bytes, name: str | None = None) -> str:
        """Write ``data`` to a new file outside the root; returns its path."""
        self._serial += 1
        path = self.workdir / (name or f"archive-{self._serial}.tar")
        path.write_bytes(data)
        return str(path)

    def imported(self, img: BuiltImage, name: str = APP, *args: str) -> BuiltImage:
        """``images import ARGS`` of an archive holding ``img`` named ``name``; returns ``img``."""
        self.ok("images", "import", *args, self.write(named_archive((img, name))))
        return img

    # looking ------------------------------------------------------------------
    def names(self, namespace: str = "default") -> list[str]:
        return self.ok("-n", namespace, "images", "ls", "-q").stdout.split()

    def digests(self, namespace: str = "default") -> list[str]:
        return self.ok("-n", namespace, "content", "ls", "-q").stdout.split()

    def images_json(self, namespace: str = "default") -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = json.loads(self.ok("-n", namespace, "images", "ls", "--json").stdout)["items"]
        return items

    def image(self, name: str, namespace: str = "default") -> dict[str, Any]:
        (item,) = [i for i in self.images_json(namespace) if i["name"] == name]
        return item

    def inspect(self, name: str, namespace: str = "default") -> dict[str, Any]:
        out: dict[str, Any] = json.loads(self.ok("-n", namespace, "images", "inspect", name).stdout)
        return out

    def snapshot_keys(self, snapshotter: str | None = None) -> list[str]:
        args = ["snapshots", *(["--snapshotter", snapshotter] if snapshotter else []), "ls", "-q"]
        return self.ok(*args).stdout.split()

    def state(self) -> StoreState:
        listings: dict[str, Any] = {}
        if self.root.exists():
            nss = json.loads(self.ok("namespaces", "ls", "--json").stdout)["items"]
            listings["namespaces"] = nss
            for ns in sorted({"default", *(n["name"] for n in nss)}):
                listings[f"images/{ns}"] = self.images_json(ns)
                listings[f"content/{ns}"] = json.loads(self.ok("-n", ns, "content", "ls", "--json").stdout)["items"]
        files: dict[str, tuple[str, int, int, int, int]] = {}
        if self.root.exists():
            for dirpath, dirnames, filenames in os.walk(self.root):
                for n in dirnames + filenames:
                    p = Path(dirpath) / n
                    rel = str(p.relative_to(self.root))
                    if rel in _DB_FILES:
                        continue
                    st = p.lstat()
                    kind = "dir" if p.is_dir() and not p.is_symlink() else "file"
                    size = 0 if kind == "dir" else st.st_size
                    mtime = 0 if kind == "dir" else st.st_mtime_ns
                    files[rel] = (kind, size, mtime, st.st_ino, st.st_mode)
        return StoreState(listings, files)

    def assert_unchanged(self, before: StoreState) -> None:
        """Nothing a user can see changed, no file of the store changed or went away, and
        nothing new appeared but verified, unreferenced blobs (which the README allows a
        failed import to leave) and empty directories (a snapshotter's empty layout, made
        when ``--snapshotter`` names one the store had not used; never a snapshot's tree)."""
        after = self.state()
        assert after.listings == before.listings
        for path, meta in before.files.items():
            assert path in after.files, f"{path} disappeared"
            assert after.files[path] == meta, f"{path} changed"
        for path in sorted(set(after.files) - set(before.files)):
            kind = after.files[path][0]
            if kind == "dir":
                inside = [path, *(str(p.relative_to(self.root)) for p in (self.root / path).rglob("*"))]
                assert all(after.files[p][0] == "dir" for p in inside), f"new non-empty directory {path}"
                assert not [p for p in inside if re.fullmatch(r"snapshots/[^/]+/snapshots/[^/]+", p)], \
                    f"new snapshot directory under {path}"
            else:
                assert path.startswith("content/blobs/sha256/"), f"new file {path}"

    def rejects_import(
        self, data: bytes, *args: str, match: str | tuple[str, ...] = (), stdin: bool = False,
        stdout: str | None = "",
    ) -> None:
        """Importing ``data`` fails by the contract, changes nothing, and the store still works
        (``stdout=None``: whatever it printed, e.g. the ``unpacking NAME (DIGEST)...`` of a
        layer that fails to unpack)."""
        before = self.state()
        if stdin:
            self.fails("images", "import", *args, "-", input=data, match=match, stdout=stdout)
        else:
            self.fails("images", "import", *args, self.write(data), match=match, stdout=stdout)
        self.assert_unchanged(before)
        self.assert_store_works()

    def assert_store_works(self) -> None:
        """The store still imports, lists and reads back an image after whatever happened."""
        self._serial += 1
        n = self._serial
        built = host_image([file("ok.txt", f"still works {n}".encode())]).build()
        path = self.write(oci_archive((built, {ANNOTATION_REF_NAME: f"ok{n}"})))
        self.ok("images", "import", "--oci-name", "check/store", path)
        assert f"check/store:ok{n}" in self.names()
        assert self.ok("content", "get", built.manifest.digest).stdout_bytes == built.manifest.data


def assert_error(
    r: Result, match: str | tuple[str, ...] = (), *, stdout: str | None = "", warnings: bool = False
) -> str:
    """exit 1; one line ``ctrpy: error: ...`` on stderr (after warnings, if allowed), at most
    MESSAGE_LINE characters; no traceback; a deliberate error, not an internal one. Returns
    the error line."""
    assert r.exit_code == 1, f"exit {r.exit_code}; stdout {r.stdout!r}; stderr {r.stderr!r}; {r.exception!r}"
    assert isinstance(r.exception, SystemExit), repr(r.exception)
    lines = r.stderr.splitlines()
    if warnings:
        lines = [line for line in lines if not line.startswith("ctrpy: warning: ")]
    assert len(lines) == 1, f"want one error line, got {r.stderr!r}"
    assert lines[0].startswith("ctrpy: error: "), lines[0]
    assert "Traceback" not in r.stderr
    assert "internal error" not in lines[0], lines[0]
    assert len(lines[0]) <= MESSAGE_LINE, f"a {len(lines[0])}-character error line"
    for fragment in (match,) if isinstance(match, str) else match:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    if stdout is not None:
        assert r.stdout == stdout
    return lines[0]


def parse_table(out: str) -> list[dict[str, str]]:
    """A ctrpy table (left-aligned columns under a header) as one dict per row."""
    header, *rows = out.splitlines()
    names = header.split()
    starts = [header.index(n if i == 0 else f" {n} ") + (0 if i == 0 else 1) for i, n in enumerate(names)]
    bounds = [*starts[1:], None]
    return [{n: row[s:e].strip() for n, s, e in zip(names, starts, bounds, strict=True)} for row in rows]


# --------------------------------------------------------------------------- snapshotters, mounts
SNAPSHOTTERS = ["native", "overlayfs"]
is_root = os.geteuid() == 0
needs_root = pytest.mark.skipif(not is_root, reason="needs root")


def usable(snapshotter: str, tmp_path: Path) -> bool:
    """overlayfs needs root and a filesystem it can mount on; native works everywhere."""
    if snapshotter == "overlayfs":
        return os.geteuid() == 0 and overlay_supported(tmp_path / "probe")
    return True


def need_root(why: str = "mounting needs root") -> None:
    if os.geteuid() != 0:
        pytest.skip(why)


@contextmanager
def mount_target(tmp_path: Path, name: str = "mnt") -> Iterator[Path]:
    """A fresh mount point, lazily unmounted afterwards whatever the test did."""
    target = tmp_path / name
    target.mkdir()
    try:
        yield target
    finally:
        for _ in range(4):  # a stacked mount (a test mounting twice) needs more than one
            if not is_mountpoint(target):
                break
            subprocess.run(["umount", "-l", str(target)], check=False)


# --------------------------------------------------------------------------- interop peers
Runner = Callable[..., CompletedProcess[Any]]


def unavailable(reason: str) -> None:
    """Skip the test, or fail it under CI where every peer must be there and work."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: interop peers must be available)", pytrace=False)
    pytest.skip(reason)


def require_peer(*tools: str) -> None:
    for tool in tools:
        if not have(tool):
            unavailable(f"{tool} is not installed (run `make peers`)")
