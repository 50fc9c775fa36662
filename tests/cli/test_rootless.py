"""ctrpy as a user without root: import (unpacking with the native snapshotter by default),
unpack, extract and flatten all work in a root directory the user owns.

Without root, owners from the image are not applied (files belong to the user), device
nodes are skipped with one warning per image that names them, and what needs root (the overlayfs snapshotter,
mounting) is refused with a clear error. The CLI runs as a real unprivileged process:
``setpriv`` to uid/gid 65534 (nobody), with HOME and XDG_DATA_HOME in a directory that user
owns. That directory is made under /tmp, not under ``tmp_path``: pytest creates its temp
tree 0700 for root, so no other user can reach anything inside it.

The whole file needs root (to switch users); it also needs the interpreter and the repo to
be usable by that user, else it skips (and fails under CI, where they are).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.builders import (
    ANNOTATION_IMAGE_NAME,
    BuiltImage,
    OCILayout,
    blockdev,
    chain_ids,
    chardev,
    directory,
    fifo,
    file,
    symlink,
)
from tests.helpers import host_image
from tests.peers import Ctrpy, ctrpy_command, in_ci
from tests.treecmp import files, tar_tree

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="switching to another user needs root")

NOBODY = 65534
IMAGE = "docker.io/library/rootless:v1"


def image(*layers: list) -> BuiltImage:  # type: ignore[type-arg]
    return host_image(*layers).build()


PLAIN = [directory("etc"), file("etc/motd", b"hello\n")]
FEATURES = [
    directory("dev"),
    chardev("dev/null", 1, 3),
    blockdev("dev/loop0", 7, 0),
    fifo("dev/pipe"),
    file("owned", b"owned by 1000", 0o4755, uid=1000, gid=1000),
    directory("locked", 0o555),
    file("locked/inside", b"in a read-only directory"),
]


class Nobody:
    """Runs ``ctrpy`` as uid/gid 65534 with HOME and XDG_DATA_HOME under ``home``."""

    def __init__(self, home: Path):
        self.home = home
        self.data = home / "data"

    @property
    def store(self) -> Path:
        """The default root for this user: $XDG_DATA_HOME/ctrpy."""
        return self.data / "ctrpy"

    def env(self) -> dict[str, str]:
        env = Ctrpy.env()  # the environment less CTRPY_*/CONTAINERD_*
        env.update(HOME=str(self.home), XDG_DATA_HOME=str(self.data), CTRPY_PROGRESS="plain")
        env.pop("FORCE_COLOR", None)
        return env

    def __call__(
        self, *args: str | os.PathLike[str], env: dict[str, str] | None = None, text: bool = True
    ) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
        cmd = [
            "setpriv",
            f"--reuid={NOBODY}",
            f"--regid={NOBODY}",
            "--clear-groups",
            *ctrpy_command(),
            *(os.fspath(a) for a in args),
        ]
        return subprocess.run(
            cmd,
            env={**self.env(), **(env or {})},
            cwd=self.home,
            capture_output=True,
            text=text,
            check=False,
        )

    def ok(self, *args: str | os.PathLike[str], **kw: object) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
        proc = self(*args, **kw)  # type: ignore[arg-type]
        assert proc.returncode == 0, f"ctrpy {args} exited {proc.returncode}: {proc.stderr!r}"
        return proc

    def fails(self, *args: str | os.PathLike[str], match: str, **kw: object) -> str:
        """Exit 1 with one ``ctrpy: error:`` line containing ``match``; returns that line."""
        proc = self(*args, **kw)  # type: ignore[arg-type]
        assert proc.returncode == 1, f"exit {proc.returncode}: {proc.stderr!r}"
        lines = [line for line in proc.stderr.splitlines() if not line.startswith("ctrpy: warning: ")]
        assert len(lines) == 1 and lines[0].startswith("ctrpy: error: "), proc.stderr
        assert match in lines[0], lines[0]
        return str(lines[0])

    def mkdir(self, path: Path) -> Path:
        path.mkdir()
        os.chown(path, NOBODY, NOBODY)
        return path

    def write_archive(self, *images: tuple[BuiltImage, str]) -> Path:
        layout = OCILayout()
        for img, name in images:
            layout.add_manifest(img, {ANNOTATION_IMAGE_NAME: name})
        path = self.home / f"archive-{len(os.listdir(self.home))}.tar"
        layout.write_tar(path)
        os.chown(path, NOBODY, NOBODY)
        return path


@pytest.fixture(scope="module")
def _user_can_run_ctrpy() -> None:
    if shutil.which("setpriv") is None:
        reason = "setpriv (util-linux) is not installed"
    else:
        probe = subprocess.run(
            [
                "setpriv",
                f"--reuid={NOBODY}",
                f"--regid={NOBODY}",
                "--clear-groups",
                *ctrpy_command(),
                "--version",
            ],
            cwd="/",
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.returncode == 0:
            return
        reason = (
            f"uid {NOBODY} cannot run {' '.join(ctrpy_command())} (is the interpreter or the repo "
            f"under a directory only root can read, e.g. /root?): {probe.stderr.strip()[-300:]}"
        )
    if in_ci():
        pytest.fail(reason + " (CI=true: the repo must be usable by other users)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def nobody(_user_can_run_ctrpy: None) -> Iterator[Nobody]:
    home = Path(tempfile.mkdtemp(prefix="ctrpy-rootless-"))
    try:
        os.chown(home, NOBODY, NOBODY)
        user = Nobody(home)
        user.mkdir(user.data)
        yield user
    finally:
        shutil.rmtree(home)  # as root: read-only directories from images do not stop it


def snapshot_trees(user: Nobody) -> list[Path]:
    base = user.store / "snapshots" / "native" / "snapshots"
    return sorted(p / "fs" for p in base.iterdir()) if base.is_dir() else []


# --------------------------------------------------------------------------- import, unpack
def test_import_unpacks_with_the_native_snapshotter_by_default(nobody: Nobody) -> None:
    img = image(PLAIN, [file("etc/motd", b"upper\n")])
    out = nobody.ok("images", "import", nobody.write_archive((img, IMAGE)))
    assert out.stdout.splitlines() == [f"unpacking {IMAGE} ({img.manifest.digest})...done"]
    assert nobody.ok("snapshots", "ls", "-q").stdout.split() == sorted(chain_ids(img.diff_ids))
    assert nobody.ok("snapshots", "--snapshotter", "native", "ls", "-q").stdout.split() == sorted(
        chain_ids(img.diff_ids)
    )


def test_the_store_is_made_in_xdg_data_home_and_belongs_to_the_user(nobody: Nobody) -> None:
    nobody.ok("images", "import", nobody.write_archive((image(PLAIN), IMAGE)))
    owners = {(p.lstat().st_uid, p.lstat().st_gid) for p in [nobody.store, *nobody.store.rglob("*")]}
    assert owners == {(NOBODY, NOBODY)}


def test_the_default_root_is_made_even_when_xdg_data_home_does_not_exist_yet(nobody: Nobody) -> None:
    nobody.data.rmdir()
    nobody.ok("images", "import", "--no-unpack", nobody.write_archive((image(PLAIN), IMAGE)))
    assert nobody.store.is_dir()


def test_an_explicit_root_owned_by_the_user_works(nobody: Nobody) -> None:
    root = nobody.home / "elsewhere"
    nobody.ok("--root", root, "images", "import", nobody.write_archive((image(PLAIN), IMAGE)))
    assert nobody.ok("--root", root, "images", "ls", "-q").stdout.split() == [IMAGE]
    assert not nobody.store.exists()


def test_images_unpack_works(nobody: Nobody) -> None:
    img = image(PLAIN)
    nobody.ok("images", "import", "--no-unpack", nobody.write_archive((img, IMAGE)))
    assert nobody.ok("snapshots", "ls", "-q").stdout == ""
    out = nobody.ok("images", "unpack", IMAGE)
    assert out.stdout.splitlines() == [f"unpacking {IMAGE} ({img.manifest.digest})...done"]
    (fs,) = snapshot_trees(nobody)
    assert files(fs) == {"etc": None, "etc/motd": b"hello\n"}


def test_unpacked_files_belong_to_the_user_with_their_modes_kept(nobody: Nobody) -> None:
    nobody.ok("images", "import", nobody.write_archive((image(FEATURES), IMAGE)))
    (fs,) = snapshot_trees(nobody)
    st = (fs / "owned").lstat()
    assert (st.st_uid, st.st_gid) == (NOBODY, NOBODY)
    assert st.st_mode & 0o7777 == 0o4755
    assert (fs / "locked").stat().st_mode & 0o777 == 0o555
    assert (fs / "locked" / "inside").read_bytes() == b"in a read-only directory"


def warnings(proc: subprocess.CompletedProcess) -> list[str]:  # type: ignore[type-arg]
    return [line for line in proc.stderr.splitlines() if line.startswith("ctrpy: warning: ")]


def test_device_nodes_are_skipped_with_one_warning_that_names_them(nobody: Nobody) -> None:
    out = nobody.ok("images", "import", nobody.write_archive((image(FEATURES), IMAGE)))
    (warning,) = warnings(out)
    assert IMAGE in warning and "2 device nodes" in warning and "dev/loop0, dev/null" in warning
    (fs,) = snapshot_trees(nobody)
    assert sorted(os.listdir(fs / "dev")) == ["pipe"]  # a fifo needs no privilege


def test_snapshots_rm_removes_a_tree_with_read_only_directories(nobody: Nobody) -> None:
    img = image(FEATURES)
    nobody.ok("images", "import", nobody.write_archive((img, IMAGE)))
    nobody.ok("snapshots", "rm", chain_ids(img.diff_ids)[0])
    assert snapshot_trees(nobody) == []


# --------------------------------------------------------------------------- extract, flatten
def test_extract_works_without_root(nobody: Nobody) -> None:
    nobody.ok("images", "import", "--no-unpack", nobody.write_archive((image(FEATURES), IMAGE)))
    dest = nobody.home / "rootfs"
    out = nobody.ok("images", "extract", IMAGE, dest)
    (warning,) = warnings(out)
    assert "2 device nodes" in warning and "dev/loop0, dev/null" in warning
    assert files(dest) == {
        "dev": None,
        "dev/pipe": None,
        "locked": None,
        "locked/inside": b"in a read-only directory",
        "owned": b"owned by 1000",
    }
    st = (dest / "owned").lstat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (NOBODY, NOBODY, 0o4755)


def test_flatten_without_root_is_the_tree_extract_makes_without_root(nobody: Nobody) -> None:
    """flatten writes what extract writes (README): without root the owners are the user's
    and device nodes are skipped with a warning, exactly as in the extracted tree."""
    nobody.ok("images", "import", "--no-unpack", nobody.write_archive((image(FEATURES), IMAGE)))
    out = nobody.ok("images", "flatten", IMAGE, "-", text=False)
    t = tar_tree(out.stdout)
    assert (t["owned"].uid, t["owned"].gid, t["owned"].mode) == (NOBODY, NOBODY, 0o4755)
    assert "dev/null" not in t and "dev/loop0" not in t


# --------------------------------------------------------------------------- what needs root
def test_overlayfs_asked_for_on_import_is_a_clear_error_and_imports_nothing(nobody: Nobody) -> None:
    archive = nobody.write_archive((image(PLAIN), IMAGE))
    nobody.fails(
        "images",
        "import",
        "--snapshotter",
        "overlayfs",
        archive,
        match="the overlayfs snapshotter needs root (use --snapshotter native)",
    )
    assert nobody.ok("images", "ls", "-q").stdout == ""


def test_overlayfs_from_ctrpy_snapshotter_is_a_clear_error(nobody: Nobody) -> None:
    archive = nobody.write_archive((image(PLAIN), IMAGE))
    nobody.fails(
        "images",
        "import",
        archive,
        env={"CTRPY_SNAPSHOTTER": "overlayfs"},
        match="the overlayfs snapshotter needs root",
    )


def test_overlayfs_asked_for_on_unpack_is_a_clear_error(nobody: Nobody) -> None:
    nobody.ok("images", "import", "--no-unpack", nobody.write_archive((image(PLAIN), IMAGE)))
    nobody.fails("images", "unpack", "--snapshotter", "overlayfs", IMAGE, match="needs root")


def test_mount_is_a_clear_error(nobody: Nobody) -> None:
    nobody.ok("images", "import", nobody.write_archive((image(PLAIN), IMAGE)))
    target = nobody.mkdir(nobody.home / "mnt")
    nobody.fails("images", "mount", IMAGE, target, match="mounting needs root")
    assert list(target.iterdir()) == []


# --------------------------------------------------------------------------- directories that deny search
DENYING = [directory("d", 0o644), file("d/inside", b"in a directory without search permission")]


def test_a_directory_of_mode_0644_is_copied_into_the_next_native_snapshot(nobody: Nobody) -> None:
    """cp -a cannot read inside it as a plain user: ctrpy opens it up for the copy and puts
    its mode back in both trees (umoci unpack --rootless does the same)."""
    img = image(DENYING, [file("d/new", b"written by the upper layer")])
    nobody.ok("images", "import", nobody.write_archive((img, IMAGE)))
    trees = snapshot_trees(nobody)
    assert len(trees) == 2
    assert [(t / "d").stat().st_mode & 0o777 for t in trees] == [0o644, 0o644]
    # (the test runs as root, so it can look inside)
    assert sorted(sorted(os.listdir(t / "d")) for t in trees) == [["inside"], ["inside", "new"]]


def test_an_upper_layer_writes_into_a_0644_directory_of_a_lower_one_on_extract(nobody: Nobody) -> None:
    img = image(DENYING, [file("d/new", b"written by the upper layer")])
    nobody.ok("images", "import", "--no-unpack", nobody.write_archive((img, IMAGE)))
    out = nobody.home / "rootfs"
    nobody.ok("images", "extract", IMAGE, out)
    assert (out / "d").stat().st_mode & 0o777 == 0o644
    os.chmod(out / "d", 0o755)  # as root we could read it anyway; this just makes the check plain
    assert sorted(p.name for p in (out / "d").iterdir()) == ["inside", "new"]


def test_removing_snapshots_with_0644_directories_works_without_root(nobody: Nobody) -> None:
    nobody.ok("images", "import", nobody.write_archive((image(DENYING), IMAGE)))
    nobody.ok("images", "rm", IMAGE)
    assert snapshot_trees(nobody) == []


def test_removing_a_tree_never_changes_a_directory_outside_it_that_a_symlink_names(nobody: Nobody) -> None:
    """A symlink in an image may name any directory of the user's: removing the snapshot
    (or a flatten's scratch tree) must not chmod it, let alone empty it."""
    outside = nobody.mkdir(nobody.home / "outside")
    (outside / "keep").write_text("mine")
    os.chown(outside / "keep", NOBODY, NOBODY)
    os.chmod(outside, 0o750)
    img = image([symlink("link", str(outside)), directory("ro", 0o555), file("ro/f", b"1")])
    nobody.ok("images", "import", nobody.write_archive((img, IMAGE)))
    nobody.ok("images", "flatten", IMAGE, nobody.home / "flat.tar")
    nobody.ok("images", "rm", IMAGE)
    assert snapshot_trees(nobody) == []
    assert outside.stat().st_mode & 0o777 == 0o750
    assert (outside / "keep").read_text() == "mine"
