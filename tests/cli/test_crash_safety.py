"""Crash and interrupt safety (issue 10): real ctrpy processes killed with SIGKILL, or
interrupted with SIGINT, at chosen moments of a ~150 MB import and unpack, of extract, and
of rm, prune (a collection) and tag.

The moments are chosen by watching the store (a partial write growing in ``content/ingest``,
a layer's blob in place, a snapshot tree filling up), or, for the moments between steps,
by giving the process a stdout pipe with room for just so many bytes: ctrpy's ``--progress
plain`` lines (``unpacking NAME (DIGEST)...`` when unpacking starts, ``done`` when it ends,
before the image is recorded) then block it in write(2) exactly there.

After a kill: every image that existed is intact and ``images check`` shows nothing newly
incomplete; the same command run again succeeds; and after the next collection (``content
prune --older-than 0s``) the root holds exactly what a fresh import leaves: no byte of the
killed run remains. After SIGINT: exit 130, ``ctrpy: interrupted``, and nothing half-done
is left even before a collection (no lease, no partial write, no snapshot of the
interrupted import).
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.builders import BuiltImage, chain_ids, directory, file
from tests.helpers import (
    Cli,
    Finished,
    Processes,
    StdoutGate,
    big_archive,
    blob_path,
    host_image,
    lying_image,
    named_archive,
    partial_writes,
    wait_until,
)
from tests.peers import Ctrpy

BIG = "docker.io/library/big:v1"
BASELINE = "docker.io/library/baseline:v1"
MANY = "docker.io/library/many:v1"
MiB = 1 << 20


# --------------------------------------------------------------------------- the big image
@dataclass(frozen=True)
class Big:
    """A ~150 MB two-layer image in an OCI archive, and what a fresh import of it leaves."""

    archive: Path
    manifest: str
    layers: tuple[str, ...]
    chain_ids: tuple[str, ...]
    blobs: frozenset[str]
    layer_files: tuple[frozenset[str], ...]  # the data/... files each layer adds
    fresh: dict[str, Any]  # store_files() of a fresh root after importing BASELINE then BIG


def baseline_archive() -> bytes:
    return named_archive((host_image([file("etc/motd", b"here before the crash\n")]).build(), BASELINE))


@pytest.fixture(scope="session")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Big]:
    """Built once per test session (shared by the xdist workers under a lock)."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    with open(shared / "crash-big.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        meta = shared / "crash-big.json"
        if not meta.exists():
            _build_big(shared / "crash-big", meta)
        data = json.loads(meta.read_text())
    yield Big(
        Path(data["archive"]), data["manifest"], tuple(data["layers"]), tuple(data["chain_ids"]),
        frozenset(data["blobs"]), tuple(frozenset(f) for f in data["layer_files"]), data["fresh"],
    )


def _build_big(work: Path, meta: Path) -> None:
    work.mkdir()
    archive = work / "big.tar"
    spec, built = big_archive(archive, BIG, 150 * MiB, 300, seed=10, layers=2)
    fresh_root = work / "fresh"
    ctrpy = Ctrpy(fresh_root)
    (work / "baseline.tar").write_bytes(baseline_archive())
    ctrpy("images", "import", work / "baseline.tar")
    ctrpy("images", "import", archive)
    data = {
        "archive": str(archive),
        "manifest": built.manifest.digest,
        "layers": [x.digest for x in built.layers],
        "chain_ids": chain_ids(built.diff_ids),
        "blobs": [b.digest for b in built.blobs()],
        "layer_files": [[f.name for f in layer.files] for layer in spec.layers],  # type: ignore[union-attr]
        "fresh": store_files(fresh_root),
    }
    subprocess.run(["rm", "-rf", str(fresh_root)], check=True)
    meta.write_text(json.dumps(data))


# --------------------------------------------------------------------------- looking at a store
def store_files(root: Path) -> dict[str, Any]:
    """Every file of the store but the database, as (kind, size); a snapshot's directory
    (a random name) is named by its snapshotter and key instead, so two stores holding the
    same content compare equal. Empty directories outside snapshot trees are left out."""
    keys: dict[tuple[str, str], str] = {}
    if (root / "metadata.db").exists():
        with sqlite3.connect(f"file:{root / 'metadata.db'}?mode=ro", uri=True) as conn:
            for sn, key, d in conn.execute("SELECT snapshotter, key, dir FROM snapshots"):
                keys[(sn, d)] = key
    out: dict[str, Any] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        parts = rel.parts
        if len(parts) >= 4 and parts[0] == "snapshots" and parts[2] == "snapshots":
            name = keys.get((parts[1], parts[3]), f"NO ROW {parts[3]}")
            shown = "/".join(["snapshots", parts[1], name, *parts[4:]])
            out[shown + "/"] = "dir"
        elif not dirnames and not filenames:
            continue
        for n in filenames:
            if not parts and n.startswith("metadata.db"):
                continue
            p = Path(dirpath, n)
            st = p.lstat()
            show = "/".join([*parts, n])
            if len(parts) >= 4 and parts[0] == "snapshots" and parts[2] == "snapshots":
                show = "/".join(["snapshots", parts[1], keys.get((parts[1], parts[3]), f"NO ROW {parts[3]}"), *parts[4:], n])
            out[show] = ["link", os.readlink(p)] if p.is_symlink() else ["file", st.st_size]
    return dict(sorted(out.items()))


def stored(root: Path, digests: tuple[str, ...]) -> list[str]:
    return [d for d in digests if blob_path(root, d).exists()]


def filling_trees(root: Path, names: frozenset[str], at_least: int = 20) -> list[Path]:
    """Snapshot trees holding at least ``at_least`` of ``names`` (a layer being applied)."""
    found = []
    for trees in root.glob("snapshots/*/snapshots/*/fs"):
        n = sum(1 for name in names if (trees / name).exists())
        if n >= at_least:
            found.append(trees)
    return found


def assert_nothing_lost(run: Cli, names: list[str]) -> None:
    """Exactly the images that existed, each complete and unpacked, every blob intact."""
    assert run.names() == names
    checked = json.loads(run.ok("images", "check", "--json").stdout)["items"]
    assert [(c["name"], c["complete"], c["unpacked"]) for c in checked] == [(n, True, True) for n in names]
    run.ok("content", "verify", "--all")


def assert_collected_to(run: Cli, root: Path, want: dict[str, Any]) -> None:
    """After the next collection, the root holds what ``want`` says, to the byte."""
    run.ok("content", "prune", "--older-than", "0s")
    assert run.ok("leases", "ls", "-q").stdout == ""
    got = store_files(root)
    extra = {k: v for k, v in got.items() if k not in want}
    missing = {k: v for k, v in want.items() if k not in got}
    assert not extra and not missing, f"left over: {list(extra)[:10]}; missing: {list(missing)[:10]}"
    assert got == want


def assert_interrupted(done: Finished) -> None:
    assert done.returncode == 130, str(done)
    assert done.stderr.splitlines()[-1:] == ["ctrpy: interrupted"], str(done)
    assert "Traceback" not in done.stderr


# --------------------------------------------------------------------------- the moments of an import
@dataclass(frozen=True)
class Moment:
    """When to stop an import of BIG: ``room`` for its stdout (None: a plain pipe) and
    what the store (or the process) shows at that moment."""

    room: Callable[[Big], int | None]
    reached: Callable[[Path, Big, subprocess.Popen[bytes]], object]


MOMENTS = {
    "reading the archive": Moment(
        lambda big: None, lambda root, big, proc: partial_writes(root, 4 * MiB) and not stored(root, big.layers)
    ),
    "storing blobs": Moment(
        lambda big: None, lambda root, big, proc: stored(root, big.layers) and partial_writes(root, 4 * MiB)
    ),
    "unpacking layer 1": Moment(
        lambda big: None, lambda root, big, proc: filling_trees(root, big.layer_files[0])
    ),
    "the final record": Moment(  # unpacked, blocked writing "done" before the record
        lambda big: StdoutGate.until_unpacked(BIG, big.manifest), lambda root, big, proc: StdoutGate.blocked(proc)
    ),
}


@pytest.fixture
def store(run: Cli) -> Cli:
    """A store holding BASELINE (unpacked) before anything is killed."""
    run.ok("images", "import", run.write(baseline_archive()))
    return run


def start_import(procs: Processes, big: Big, moment: Moment) -> tuple[subprocess.Popen[bytes], StdoutGate | None]:
    args = ("--progress", "plain", "images", "import", str(big.archive))
    room = moment.room(big)
    if room is None:
        return procs.start(*args), None
    return procs.start_gated(room, *args)


@pytest.mark.parametrize("moment", list(MOMENTS))
def test_an_import_killed_while_leaves_a_store_a_collection_cleans(
    store: Cli, procs: Processes, big: Big, root: Path, moment: str
) -> None:
    proc, _gate = start_import(procs, big, MOMENTS[moment])
    wait_until(lambda: MOMENTS[moment].reached(root, big, proc), f"an import {moment}", proc)
    proc.kill()
    assert proc.wait(timeout=60) == -signal.SIGKILL
    assert_nothing_lost(store, [BASELINE])
    assert len(store.ok("leases", "ls", "-q").stdout.split()) == 1  # the killed import's, dead
    store.ok("images", "import", str(big.archive))  # the same command again, straight after
    assert_nothing_lost(store, [BASELINE, BIG])
    assert_collected_to(store, root, big.fresh)


INTERRUPTIONS = ["storing blobs", "unpacking layer 1", "the final record"]


@pytest.mark.parametrize("moment", INTERRUPTIONS)
def test_an_import_interrupted_while_undoes_itself(
    store: Cli, procs: Processes, big: Big, root: Path, moment: str
) -> None:
    """Ctrl-C: exit 130, and before any collection no lease, no partial write and no
    snapshot of the interrupted import is left (the blobs it stored wait for the next one)."""
    before = store_files(root)
    proc, gate = start_import(procs, big, MOMENTS[moment])
    wait_until(lambda: MOMENTS[moment].reached(root, big, proc), f"an import {moment}", proc)
    proc.send_signal(signal.SIGINT)
    if gate is not None:
        gate.drain()  # the interrupted write, and what is flushed at exit
    done = procs.wait(proc)
    assert_interrupted(done)
    assert_nothing_lost(store, [BASELINE])
    assert store.ok("leases", "ls", "-q").stdout == ""
    left = {k for k in store_files(root) if k not in before}
    assert all(k.startswith("content/blobs/sha256/") for k in left), sorted(left)
    store.ok("images", "import", str(big.archive))
    assert_collected_to(store, root, big.fresh)


# --------------------------------------------------------------------------- unpack
def test_an_unpack_killed_while_applying_layer_2_leaves_a_store_a_collection_cleans(
    store: Cli, procs: Processes, big: Big, root: Path
) -> None:
    """native: layer 2's snapshot is a copy of layer 1's tree plus layer 2; killed once the
    copy is done and layer 2's own files are arriving."""
    store.ok("images", "import", "--no-unpack", str(big.archive))
    before = store_files(root)
    proc = procs.start("images", "unpack", "--snapshotter", "native", BIG)
    wait_until(lambda: filling_trees(root, big.layer_files[1]), "layer 2 being applied", proc)
    proc.kill()
    assert proc.wait(timeout=60) == -signal.SIGKILL
    assert store.names() == [BASELINE, BIG]
    checked = {c["name"]: c for c in json.loads(store.ok("images", "check", "--json").stdout)["items"]}
    assert checked[BIG]["complete"] and checked[BASELINE]["complete"]
    store.ok("images", "unpack", "--snapshotter", "native", BIG)
    assert store.ok("images", "check", "--snapshotter", "native", "-q").stdout.split() == [BASELINE, BIG]
    store.ok("images", "rm", BIG)  # collects: back to BASELINE alone, imported before
    store.ok("images", "import", "--no-unpack", str(big.archive))
    assert_collected_to(store, root, before)


# --------------------------------------------------------------------------- extract
@pytest.fixture(scope="module")
def extracting(big: Big, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    """A store holding BIG (not unpacked: extract reads the layers), shared by the extract
    tests, which only read it."""
    tmp = tmp_path_factory.mktemp("extract")
    (tmp / "work").mkdir()
    run = Cli(tmp / "root", tmp / "work")
    run.ok("images", "import", "--no-unpack", str(big.archive))
    return run


def start_extract(procs: Processes, extracting: Cli, dest: Path) -> subprocess.Popen[bytes]:
    return procs.start("images", "extract", BIG, str(dest), root=extracting.root)


@pytest.mark.parametrize("existed", [False, True], ids=["new directory", "empty directory"])
def test_an_interrupted_extract_leaves_no_tree(
    extracting: Cli, procs: Processes, big: Big, tmp_path: Path, existed: bool
) -> None:
    """SIGINT: a directory extract created is removed; one that existed (empty) is left empty."""
    dest = tmp_path / "rootfs"
    if existed:
        dest.mkdir()
    proc = start_extract(procs, extracting, dest)
    wait_until(lambda: sum((dest / n).exists() for n in big.layer_files[0]) >= 20, "files extracted", proc)
    proc.send_signal(signal.SIGINT)
    assert_interrupted(procs.wait(proc))
    assert (list(dest.iterdir()) == []) if existed else not dest.exists()


@pytest.mark.parametrize("existed", [False, True], ids=["new directory", "empty directory"])
def test_a_failed_extract_leaves_no_tree(run: Cli, tmp_path: Path, existed: bool) -> None:
    """A layer whose bytes are not its diffID fails after the first layer was written."""
    run.imported(lying_image(), "docker.io/library/liar:v1", "--no-unpack")
    dest = tmp_path / "rootfs"
    if existed:
        dest.mkdir()
    run.fails("images", "extract", "docker.io/library/liar:v1", str(dest), match="diffID")
    assert (list(dest.iterdir()) == []) if existed else not dest.exists()


def test_a_killed_extract_leaves_its_partial_tree_and_the_store_intact(
    extracting: Cli, procs: Processes, big: Big, tmp_path: Path
) -> None:
    """kill -9 gives no chance to clean: the partial tree stays, and extract refuses it
    (it is not empty) until it is removed; the store is untouched."""
    dest = tmp_path / "rootfs"
    before = store_files(extracting.root)
    proc = start_extract(procs, extracting, dest)
    wait_until(lambda: sum((dest / n).exists() for n in big.layer_files[0]) >= 20, "files extracted", proc)
    proc.kill()
    assert proc.wait(timeout=60) == -signal.SIGKILL
    assert any(dest.iterdir())
    extracting.fails("images", "extract", BIG, str(dest), match=(str(dest), "not an empty directory"))
    subprocess.run(["rm", "-rf", str(dest)], check=True)
    extracting.ok("images", "extract", BIG, str(dest))
    assert all((dest / n).is_file() for layer in big.layer_files for n in layer)
    assert store_files(extracting.root) == before


# --------------------------------------------------------------------------- rm, prune (a collection), tag
def many_files_image() -> BuiltImage:
    """An image whose one layer is 15000 empty files: removing its tree takes a while."""
    entries = [directory("many"), *(file(f"many/f{i:05d}", b"") for i in range(15000))]
    return host_image(entries).build()


def freeing(root: Path) -> bool:
    """A collection is deleting trees it took (they are in its trash)."""
    return any(any(t.iterdir()) for t in root.glob("tmp/trash-*"))


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_rm_stopped_while_freeing_an_image_leaves_a_store_a_collection_cleans(
    store: Cli, procs: Processes, root: Path, sig: signal.Signals
) -> None:
    """The image record is gone before the collection starts; what the stopped collection
    did not free, the next one does."""
    before = store_files(root)
    store.imported(many_files_image(), MANY)
    proc = procs.start("images", "rm", MANY)
    wait_until(lambda: freeing(root), "rm freeing the snapshot", proc, timeout=300)
    proc.send_signal(sig)
    done = procs.wait(proc)
    if sig == signal.SIGINT and done.returncode != 0:  # or it finished first: nothing to undo
        assert_interrupted(done)
    assert_nothing_lost(store, [BASELINE])
    r = store.ok("images", "rm", MANY)  # the same command again: it is gone, a warning
    (line,) = r.stderr.splitlines()  # (a "did you mean" may follow)
    assert line.startswith(f"ctrpy: warning: image {MANY!r} not found")
    assert_collected_to(store, root, before)


def test_a_collection_killed_while_freeing_leaves_a_store_the_next_one_cleans(
    store: Cli, procs: Processes, root: Path
) -> None:
    """An import killed before its record leaves a committed snapshot under a dead lease;
    the prune that frees it is killed while deleting it; the next prune finishes."""
    before = store_files(root)
    img = many_files_image()
    room = StdoutGate.until_unpacked(MANY, img.manifest.digest)
    archive = store.write(named_archive((img, MANY)))
    proc, _gate = procs.start_gated(room, "--progress", "plain", "images", "import", archive)
    wait_until(lambda: StdoutGate.blocked(proc), "the import unpacked, before its record", proc, timeout=300)
    proc.kill()
    proc.wait(timeout=60)
    prune = procs.start("content", "prune", "--older-than", "0s")
    wait_until(lambda: freeing(root), "prune freeing the snapshot", prune, timeout=300)
    prune.kill()
    prune.wait(timeout=60)
    assert_nothing_lost(store, [BASELINE])
    assert_collected_to(store, root, before)


def test_tag_killed_while_it_waits_to_write_changes_nothing(store: Cli, procs: Processes, root: Path) -> None:
    before = store.state()
    with sqlite3.connect(root / "metadata.db", isolation_level=None) as conn:
        conn.execute("BEGIN IMMEDIATE")  # another writer holds the database
        proc = procs.start("images", "tag", BASELINE, "docker.io/library/copy:v1")
        wait_until(lambda: waiting_for_lock(proc), "tag waiting for the write lock", proc)
        proc.kill()
        proc.wait(timeout=60)
        conn.execute("ROLLBACK")
    store.assert_unchanged(before)
    assert_nothing_lost(store, [BASELINE])
    store.ok("images", "tag", BASELINE, "docker.io/library/copy:v1")
    assert store.names() == [BASELINE, "docker.io/library/copy:v1"]


def waiting_for_lock(proc: subprocess.Popen[bytes]) -> bool:
    """Has ``proc`` opened the database and gone to sleep in SQLite's busy handler?"""
    try:
        opened = any(os.readlink(f"/proc/{proc.pid}/fd/{fd}").endswith("metadata.db")
                     for fd in os.listdir(f"/proc/{proc.pid}/fd"))
        with open(f"/proc/{proc.pid}/wchan") as f:
            return opened and "nanosleep" in f.read()
    except OSError:
        return False
