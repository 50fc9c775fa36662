"""Fixtures for the CLI tests: ``run`` invokes ``ctrpy --root <tmp>/root ...`` in-process.

``run(*args, input=None, env=None)`` returns click's ``Result`` (stdout and stderr apart).
``run.ok(...)`` also asserts exit 0; ``run.fails(..., match=...)`` asserts the error contract
(exit 1, exactly one ``ctrpy: error: ...`` line on stderr, no traceback, no internal error);
``run.usage_error(...)`` asserts exit 2.  ``run.state()`` snapshots everything a user can see
(``images ls``, ``content ls`` and ``namespaces ls`` as JSON, in every namespace) plus every
file of the store; ``run.assert_unchanged(before)`` compares, and ``run.assert_store_works()``
imports and reads back a fresh image.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from ctrpy.cli.main import cli
from ctrpy.oci import Platform
from tests.builders import ANNOTATION_REF_NAME, Image, OCILayout, file

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

HOST = Platform.host()
_DB_FILES = {"metadata.db", "metadata.db-wal", "metadata.db-shm", "metadata.db-journal"}


def host_image(*layers: Any, **kw: Any) -> Image:
    """A single-platform image for this machine (so the host-default matcher selects it)."""
    kw.setdefault("architecture", HOST.architecture)
    kw.setdefault("variant", HOST.variant or None)
    return Image(layers=list(layers), **kw)


def oci_archive(*entries: tuple[Any, dict[str, str] | None], **tar_options: Any) -> bytes:
    """An oci-archive of ``(item, annotations)`` index entries (see OCILayout.add_manifest)."""
    layout = OCILayout()
    for item, entry_annotations in entries:
        layout.add_manifest(item, entry_annotations)
    return layout.tar_bytes(**tar_options)


@dataclass(frozen=True)
class StoreState:
    """What a user can see of a store, and its files (metadata.db aside)."""

    listings: dict[str, Any]
    files: dict[str, tuple[str, int, int, int, int]]  # path -> (kind, size, mtime_ns, inode, mode)


class Cli:
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
        failed import to leave) and empty directories."""
        after = self.state()
        assert after.listings == before.listings
        for path, meta in before.files.items():
            assert path in after.files, f"{path} disappeared"
            assert after.files[path] == meta, f"{path} changed"
        for path in sorted(set(after.files) - set(before.files)):
            kind = after.files[path][0]
            if kind == "dir":
                assert not any((self.root / path).iterdir()), f"new non-empty directory {path}"
            else:
                assert path.startswith("content/blobs/sha256/"), f"new file {path}"

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
) -> None:
    """exit 1; one line ``ctrpy: error: ...`` on stderr (after warnings, if allowed); no
    traceback; a deliberate error, not an internal one."""
    assert r.exit_code == 1, f"exit {r.exit_code}; stdout {r.stdout!r}; stderr {r.stderr!r}; {r.exception!r}"
    assert isinstance(r.exception, SystemExit), repr(r.exception)
    lines = r.stderr.splitlines()
    if warnings:
        lines = [line for line in lines if not line.startswith("ctrpy: warning: ")]
    assert len(lines) == 1, f"want one error line, got {r.stderr!r}"
    assert lines[0].startswith("ctrpy: error: "), lines[0]
    assert "Traceback" not in r.stderr
    assert "internal error" not in lines[0], lines[0]
    for fragment in (match,) if isinstance(match, str) else match:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    if stdout is not None:
        assert r.stdout == stdout


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "root"


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    d = tmp_path / "work"
    d.mkdir()
    return d


@pytest.fixture
def run(root: Path, workdir: Path) -> Iterator[Cli]:
    yield Cli(root, workdir)
