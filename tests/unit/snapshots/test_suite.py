"""The snapshotter conformance suite (containerd's ``core/snapshots/testsuite`` habit).

Every snapshotter runs every test here, through the ``snapshotter`` fixture (``native``,
and ``overlayfs`` where root can mount it); a new snapshotter is added to
``tests.helpers.SNAPSHOTTERS`` and must pass the suite unchanged. A snapshot is *active*
while something is written into its ``fs`` directory, *committed* (immutable, usually keyed
by a chainID) after, and a *view* when it only holds its parent in place (a read-only
mount); its row lives in the store's SQLite database, per namespace and per snapshotter.
The suite covers prepare, commit, view, remove, list, stat, chain, usage and labels, the
errors (AlreadyExists, NotFound, FailedPrecondition for a parent with children or one not
committed) and what a failed prepare leaves (nothing).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from ctrpy.client import Client
from ctrpy.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, UnpackError
from ctrpy.snapshots import Snapshotter
from tests.helpers import raises_naming, usable

pytestmark = pytest.mark.usefixtures("no_env_snapshotter")


def overlay_usable(tmp_path: Path) -> bool:
    return usable("overlayfs", tmp_path)


@pytest.fixture
def sn(snapshotter: str, client: Client) -> Snapshotter:
    return client.snapshotter(snapshotter)


def committed(sn: Snapshotter, name: str, files: dict[str, bytes], parent: str = "") -> Path:
    """Prepare on ``parent``, write ``files`` into the new tree, commit as ``name``."""
    active = sn.prepare(f"active-{name}", parent)
    fs = sn.fs_path(active)
    for rel, data in files.items():
        (fs / rel).parent.mkdir(parents=True, exist_ok=True)
        (fs / rel).write_bytes(data)
    sn.commit(name, f"active-{name}")
    return fs


def stacked_names(sn: Snapshotter, key: str) -> set[str]:
    """Every relative path visible in the stack of a committed snapshot's directories."""
    out: set[str] = set()
    for d in sn.lowerdirs(key):
        out |= {p.relative_to(d).as_posix() for p in d.rglob("*")}
    return out


def snapshot_dirs(sn: Snapshotter) -> list[str]:
    base = sn.root / "snapshots"
    return sorted(os.listdir(base)) if base.is_dir() else []


# --------------------------------------------------------------------------- lifecycle
def test_prepare_gives_an_active_snapshot_with_an_empty_tree(sn: Snapshotter) -> None:
    active = sn.prepare("work")
    assert sn.stat("work").kind == "active"
    assert sn.fs_path(active).is_dir()
    assert list(sn.fs_path(active).iterdir()) == []


def test_commit_turns_the_active_snapshot_into_a_committed_one_under_the_new_name(sn: Snapshotter) -> None:
    fs = committed(sn, "layer-0", {"etc/hostname": b"box\n"})
    snap = sn.stat("layer-0")
    assert snap.kind == "committed"
    assert sn.fs_path(snap) == fs
    assert (fs / "etc" / "hostname").read_bytes() == b"box\n"
    with pytest.raises(NotFound):
        sn.stat("active-layer-0")


def test_commit_keeps_the_labels_of_prepare_and_adds_its_own(sn: Snapshotter) -> None:
    sn.prepare("work", labels={"a": "1"})
    sn.commit("done", "work", {"b": "2"})
    assert sn.stat("done").labels == {"a": "1", "b": "2"}


def test_a_committed_snapshot_cannot_be_committed_again(sn: Snapshotter) -> None:
    committed(sn, "layer-0", {})
    with pytest.raises(FailedPrecondition, match="not active"):
        sn.commit("layer-0-again", "layer-0")


def test_a_child_sees_its_parents_files_and_its_own(sn: Snapshotter) -> None:
    committed(sn, "base", {"etc/base": b"base"})
    committed(sn, "top", {"etc/top": b"top"}, parent="base")
    assert sn.stat("top").parent == "base"
    assert {"etc/base", "etc/top"} <= stacked_names(sn, "top")
    assert "etc/top" not in stacked_names(sn, "base")


def test_the_parent_must_be_committed(sn: Snapshotter) -> None:
    sn.prepare("still-active")
    with pytest.raises(FailedPrecondition, match="not committed"):
        sn.prepare("child", "still-active")
    with pytest.raises(NotFound):
        sn.stat("child")


def test_a_missing_parent_is_not_found(sn: Snapshotter) -> None:
    with pytest.raises(NotFound):
        sn.prepare("child", "sha256:" + "0" * 64)
    assert sn.list() == []


def test_keys_are_unique_among_active_and_committed_snapshots(sn: Snapshotter) -> None:
    committed(sn, "layer-0", {})
    sn.prepare("work")
    with pytest.raises(AlreadyExists):
        sn.prepare("work")
    with pytest.raises(AlreadyExists):
        sn.prepare("layer-0")
    assert len(snapshot_dirs(sn)) == 2  # the refused prepares left no directory behind


def test_committing_onto_an_existing_name_is_refused_and_keeps_the_active_snapshot(sn: Snapshotter) -> None:
    committed(sn, "layer-0", {})
    active = sn.prepare("work")
    (sn.fs_path(active) / "kept").write_bytes(b"x")
    with pytest.raises(AlreadyExists):
        sn.commit("layer-0", "work")
    assert sn.stat("work").kind == "active"
    assert (sn.fs_path(sn.stat("work")) / "kept").read_bytes() == b"x"


def test_an_empty_key_is_refused(sn: Snapshotter) -> None:
    with pytest.raises(InvalidArgument):
        sn.prepare("")


def test_remove_deletes_the_row_and_the_directory(sn: Snapshotter) -> None:
    fs = committed(sn, "layer-0", {"f": b"x"})
    sn.remove("layer-0")
    assert sn.list() == []
    assert not fs.exists()
    assert snapshot_dirs(sn) == []


def test_remove_refuses_a_snapshot_with_children(sn: Snapshotter) -> None:
    base_fs = committed(sn, "base", {"f": b"x"})
    committed(sn, "top", {}, parent="base")
    with pytest.raises(FailedPrecondition, match="child 'top'"):
        sn.remove("base")
    assert sn.stat("base").kind == "committed"
    assert (base_fs / "f").read_bytes() == b"x"


def test_an_active_child_also_protects_its_parent(sn: Snapshotter) -> None:
    committed(sn, "base", {})
    sn.prepare("work", "base")
    with pytest.raises(FailedPrecondition):
        sn.remove("base")


def test_removing_children_first_then_the_parent_works(sn: Snapshotter) -> None:
    committed(sn, "base", {})
    committed(sn, "top", {}, parent="base")
    sn.remove("top")
    sn.remove("base")
    assert sn.list() == []


def test_removing_a_missing_snapshot_is_not_found(sn: Snapshotter) -> None:
    with pytest.raises(NotFound):
        sn.remove("nothing")


def test_committing_a_missing_snapshot_is_not_found(sn: Snapshotter) -> None:
    with pytest.raises(NotFound):
        sn.commit("done", "nothing")
    assert sn.list() == []


def test_an_active_snapshot_can_be_removed(sn: Snapshotter) -> None:
    active = sn.prepare("work")
    (sn.fs_path(active) / "scratch").write_bytes(b"x")
    sn.remove("work")
    assert sn.list() == []
    assert snapshot_dirs(sn) == []


def test_commit_may_re_parent_only_where_layers_are_independent(sn: Snapshotter) -> None:
    committed(sn, "a", {"a": b"a"})
    committed(sn, "b", {"b": b"b"})
    sn.prepare("work", "a")
    if sn.independent_layers:
        assert sn.commit("top", "work", parent="b").parent == "b"
    else:
        with pytest.raises(FailedPrecondition, match="'work'"):
            sn.commit("top", "work", parent="b")
        assert sn.stat("work").kind == "active"


# --------------------------------------------------------------------------- views
def test_a_view_is_recorded_as_a_child_of_its_parent(sn: Snapshotter) -> None:
    committed(sn, "base", {"f": b"x"})
    view = sn.prepare("mount:/mnt", "base", kind="view")
    assert (view.kind, view.parent) == ("view", "base")
    assert sn.stat("mount:/mnt").kind == "view"
    assert not sn.exists("mount:/mnt")  # not a committed snapshot


def test_a_view_keeps_its_parent_from_being_removed(sn: Snapshotter) -> None:
    base_fs = committed(sn, "base", {"f": b"x"})
    sn.prepare("mount:/mnt", "base", kind="view")
    with pytest.raises(FailedPrecondition, match="'mount:/mnt'"):
        sn.remove("base")
    assert (base_fs / "f").read_bytes() == b"x"
    sn.remove("mount:/mnt")
    sn.remove("base")
    assert sn.list() == []


def test_a_view_cannot_be_committed_or_be_a_parent(sn: Snapshotter) -> None:
    committed(sn, "base", {})
    sn.prepare("mount:/mnt", "base", kind="view")
    with pytest.raises(FailedPrecondition, match="not active"):
        sn.commit("again", "mount:/mnt")
    with pytest.raises(FailedPrecondition, match="not committed"):
        sn.prepare("child", "mount:/mnt")


# --------------------------------------------------------------------------- chain
def test_chain_is_the_snapshot_and_its_ancestors_topmost_first(sn: Snapshotter) -> None:
    committed(sn, "l0", {})
    committed(sn, "l1", {}, parent="l0")
    committed(sn, "l2", {}, parent="l1")
    sn.prepare("work", "l2")
    assert [s.key for s in sn.chain("work")] == ["work", "l2", "l1", "l0"]
    assert [s.key for s in sn.chain("l0")] == ["l0"]


def test_chain_of_a_missing_snapshot_is_not_found(sn: Snapshotter) -> None:
    with pytest.raises(NotFound, match="'nothing'"):
        sn.chain("nothing")


def test_the_stack_of_a_committed_snapshot_is_its_chains_trees(sn: Snapshotter) -> None:
    committed(sn, "l0", {"zero": b"0"})
    committed(sn, "l1", {"one": b"1"}, parent="l0")
    assert {"zero", "one"} <= stacked_names(sn, "l1")
    assert len(sn.lowerdirs("l1")) == (2 if sn.independent_layers else 1)


# --------------------------------------------------------------------------- labels
def test_labels_given_to_prepare_are_kept(sn: Snapshotter) -> None:
    sn.prepare("work", labels={"a": "1", "containerd.io/gc.root": "x"})
    assert sn.stat("work").labels == {"a": "1", "containerd.io/gc.root": "x"}
    assert [s.labels for s in sn.list()] == [{"a": "1", "containerd.io/gc.root": "x"}]


def test_commit_labels_win_over_prepare_labels_of_the_same_key(sn: Snapshotter) -> None:
    sn.prepare("work", labels={"a": "1", "b": "1"})
    assert sn.commit("done", "work", {"b": "2"}).labels == {"a": "1", "b": "2"}


def test_a_snapshot_without_labels_has_none(sn: Snapshotter) -> None:
    committed(sn, "layer-0", {})
    assert sn.stat("layer-0").labels == {}


# --------------------------------------------------------------------------- list, stat, usage
def test_list_gives_every_snapshot_sorted_by_key_with_parent_and_kind(sn: Snapshotter) -> None:
    committed(sn, "b-base", {})
    committed(sn, "c-top", {}, parent="b-base")
    sn.prepare("a-work", "c-top")
    assert [(s.key, s.parent, s.kind) for s in sn.list()] == [
        ("a-work", "c-top", "active"),
        ("b-base", "", "committed"),
        ("c-top", "b-base", "committed"),
    ]


def test_stat_gives_labels_and_timestamps(sn: Snapshotter) -> None:
    sn.prepare("work", labels={"k": "v"})
    snap = sn.stat("work")
    assert snap.labels == {"k": "v"}
    assert snap.created_at.endswith("Z")
    assert snap.updated_at >= snap.created_at


def test_stat_of_a_missing_snapshot_is_not_found(sn: Snapshotter) -> None:
    with pytest.raises(NotFound, match="'nothing'"):
        sn.stat("nothing")


def test_a_committed_snapshot_whose_tree_was_lost_is_forgotten(sn: Snapshotter) -> None:
    fs = committed(sn, "layer-0", {})
    assert not sn.forget_broken("layer-0")  # its tree is there: kept
    fs.rmdir()
    assert sn.forget_broken("layer-0")
    assert sn.find("layer-0") is None
    assert not sn.forget_broken("nothing")


def test_exists_is_true_only_for_a_committed_snapshot_whose_tree_is_there(sn: Snapshotter) -> None:
    fs = committed(sn, "layer-0", {})
    sn.prepare("work")
    assert sn.exists("layer-0")
    assert not sn.exists("work")
    assert sn.exists("work", kind="active")
    assert not sn.exists("nothing")
    fs.rmdir()  # a tree lost behind the database's back is not trusted
    assert not sn.exists("layer-0")


def test_usage_counts_allocated_bytes_and_inodes_with_hardlinks_once(sn: Snapshotter) -> None:
    active = sn.prepare("work")
    fs = sn.fs_path(active)
    (fs / "big").write_bytes(os.urandom(1 << 20))
    os.link(fs / "big", fs / "big-link")
    (fs / "dir").mkdir()
    sn.commit("layer-0", "work")
    u = sn.usage("layer-0")
    assert u.inodes == 3  # the tree's root, the file (two names), the directory
    assert 1 << 20 <= u.size < 2 << 20


def test_usage_of_a_missing_snapshot_is_not_found(sn: Snapshotter) -> None:
    with pytest.raises(NotFound):
        sn.usage("nothing")


# --------------------------------------------------------------------------- failures
class PopulateFailed(Exception):
    pass


def test_a_failed_populate_leaves_no_row_and_no_directory(
    sn: Snapshotter, monkeypatch: pytest.MonkeyPatch
) -> None:
    committed(sn, "base", {"f": b"x"})
    before = snapshot_dirs(sn)

    def half_done(snap: object, parent: str) -> None:
        fs = sn.root / "snapshots" / snap.dir / "fs"  # type: ignore[attr-defined]
        fs.mkdir()
        (fs / "partial").write_bytes(b"half")
        raise PopulateFailed

    monkeypatch.setattr(sn, "_populate", half_done)
    with pytest.raises(PopulateFailed):
        sn.prepare("child", "base")
    assert [s.key for s in sn.list()] == ["base"]
    assert snapshot_dirs(sn) == before


def test_an_interrupted_populate_is_cleaned_up_too(sn: Snapshotter, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(snap: object, parent: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(sn, "_populate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        sn.prepare("work")
    assert sn.list() == []
    assert snapshot_dirs(sn) == []


def test_native_prepare_fails_cleanly_when_the_parent_tree_is_gone(client: Client) -> None:
    sn = client.snapshotter("native")
    fs = committed(sn, "base", {"f": b"x"})
    (fs / "f").unlink()
    fs.rmdir()
    with raises_naming(UnpackError, str(fs)):
        sn.prepare("child", "base")
    assert [s.key for s in sn.list()] == ["base"]
    assert len(snapshot_dirs(sn)) == 1


# --------------------------------------------------------------------------- metadata
def test_snapshot_rows_live_in_the_database_per_namespace_and_snapshotter(
    sn: Snapshotter, client: Client
) -> None:
    committed(sn, "layer-0", {})
    db = sqlite3.connect(client.root.path / "metadata.db")
    try:
        rows = db.execute("SELECT snapshotter, namespace, key, kind FROM snapshots").fetchall()
    finally:
        db.close()
    assert rows == [(sn.name, "default", "layer-0", "committed")]


def test_snapshots_outlive_the_client(sn: Snapshotter, tmp_path: Path) -> None:
    committed(sn, "layer-0", {"f": b"x"})
    again = Client(tmp_path / "root")
    try:
        reopened = again.snapshotter(sn.name)
        assert [s.key for s in reopened.list()] == ["layer-0"]
        assert (reopened.fs_path(reopened.stat("layer-0")) / "f").read_bytes() == b"x"
    finally:
        again.close()


def test_other_namespaces_do_not_see_a_snapshot_and_may_use_the_same_key(
    sn: Snapshotter, tmp_path: Path
) -> None:
    committed(sn, "layer-0", {"f": b"default"})
    other = Client(tmp_path / "root", namespace="other")
    try:
        osn = other.snapshotter(sn.name)
        assert osn.list() == []
        with pytest.raises(NotFound):
            osn.stat("layer-0")
        ofs = committed(osn, "layer-0", {"f": b"other"})
        assert (ofs / "f").read_bytes() == b"other"
        osn.remove("layer-0")
    finally:
        other.close()
    assert (sn.fs_path(sn.stat("layer-0")) / "f").read_bytes() == b"default"


def test_each_snapshotter_has_its_own_snapshots(client: Client, tmp_path: Path) -> None:
    native = client.snapshotter("native")
    committed(native, "layer-0", {})
    if overlay_usable(tmp_path):
        assert client.snapshotter("overlayfs").list() == []
    assert native.root == client.root.path / "snapshots" / "native"
