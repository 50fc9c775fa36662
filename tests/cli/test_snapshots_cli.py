"""``ctrpy snapshots``: ls (columns ``KEY PARENT KIND``), info, rm, tree and usage."""

from __future__ import annotations

import json

from tests.builders import Tar, chain_ids, file
from tests.helpers import (
    APP,
    BASE_LAYER,
    DEEP_DIRS,
    OTHER,
    Cli,
    app_image,
    host_image,
    parse_table,
    removed_after,
)


# --------------------------------------------------------------------------- snapshots
def test_snapshots_ls_shows_key_parent_and_kind(run: Cli, snapshotter: str) -> None:
    img = run.imported(app_image(), APP, "--snapshotter", snapshotter)
    base, top = chain_ids(img.diff_ids)
    out = run.ok("snapshots", "--snapshotter", snapshotter, "ls").stdout
    assert out.splitlines()[0].split() == ["KEY", "PARENT", "KIND"]
    assert sorted((r["KEY"], r["PARENT"], r["KIND"]) for r in parse_table(out)) == sorted(
        [(base, "", "Committed"), (top, base, "Committed")]
    )


def test_snapshots_info_prints_the_snapshot_as_json(run: Cli, snapshotter: str) -> None:
    img = run.imported(app_image(), APP, "--snapshotter", snapshotter)
    base, top = chain_ids(img.diff_ids)
    info = json.loads(run.ok("snapshots", "--snapshotter", snapshotter, "info", top).stdout)
    assert {k: info[k] for k in ("Kind", "Name", "Parent", "Snapshotter")} == {
        "Kind": "Committed",
        "Name": top,
        "Parent": base,
        "Snapshotter": snapshotter,
    }
    assert info["Labels"] == {"ctrpy.io/unpacked-from": APP}
    assert info["Created"] and info["Updated"]


def test_snapshots_info_of_a_missing_key_fails(run: Cli) -> None:
    run.fails("snapshots", "--snapshotter", "native", "info", "nothing", match="snapshot 'nothing' not found")


def test_snapshots_rm_refuses_a_snapshot_with_a_child(run: Cli, snapshotter: str) -> None:
    img = run.imported(app_image(), APP, "--snapshotter", snapshotter)
    base, top = chain_ids(img.diff_ids)
    run.fails("snapshots", "--snapshotter", snapshotter, "rm", base, match=f"has a child '{top}'")
    assert sorted(run.snapshot_keys(snapshotter)) == sorted([base, top])


def test_snapshots_rm_removes_children_then_parents_and_prints_the_keys(run: Cli, snapshotter: str) -> None:
    img = run.imported(app_image(), APP, "--snapshotter", snapshotter)
    base, top = chain_ids(img.diff_ids)
    out = run.ok("snapshots", "--snapshotter", snapshotter, "rm", top, base)
    assert out.stdout.splitlines() == [top, base]
    assert run.snapshot_keys(snapshotter) == []
    assert not any((run.root / "snapshots" / snapshotter / "snapshots").iterdir())


def test_after_snapshots_rm_the_image_is_not_unpacked_and_unpacks_again(run: Cli) -> None:
    img = run.imported(app_image(), APP, "--snapshotter", "native")
    base, top = chain_ids(img.diff_ids)
    run.ok("snapshots", "--snapshotter", "native", "rm", top)
    (row,) = parse_table(run.ok("images", "check", "--snapshotter", "native").stdout)
    assert row["UNPACKED"] == "false"
    run.ok("images", "unpack", "--snapshotter", "native", APP)
    assert sorted(run.snapshot_keys("native")) == sorted([base, top])


def test_snapshots_tree_shows_children_under_their_parents(run: Cli) -> None:
    app = run.imported(app_image(), APP, "--snapshotter", "native")
    other = run.imported(host_image(BASE_LAYER, [file("other", b"o")]).build(), OTHER, "--snapshotter", "native")
    base, app_top = chain_ids(app.diff_ids)
    other_top = chain_ids(other.diff_ids)[1]
    out = run.ok("snapshots", "--snapshotter", "native", "tree").stdout
    assert out.splitlines() == [f" {base}", *(f"  \\_ {k}" for k in sorted([app_top, other_top]))]


def test_snapshots_usage_lists_key_size_and_inodes(run: Cli) -> None:
    img = run.imported(app_image(), APP, "--snapshotter", "native")
    out = run.ok("snapshots", "--snapshotter", "native", "usage").stdout
    assert out.splitlines()[0].split() == ["KEY", "SIZE", "INODES"]
    rows = parse_table(out)
    assert sorted(r["KEY"] for r in rows) == sorted(chain_ids(img.diff_ids))
    by_key = {r["KEY"]: int(r["INODES"]) for r in rows}
    # native trees are complete: the root, etc/, etc/base (+ app/, app/bin on top)
    assert by_key == {chain_ids(img.diff_ids)[0]: 4, chain_ids(img.diff_ids)[1]: 5}


def test_snapshots_usage_of_a_tree_thousands_of_levels_deep(run: Cli) -> None:
    """It was an internal RecursionError (os.walk recurses, one frame per level)."""
    img = host_image(Tar().file(f"{DEEP_DIRS}/file", b"deep").build()).build()
    with removed_after(run.root):
        run.imported(img, APP, "--snapshotter", "native")
        (row,) = parse_table(run.ok("snapshots", "--snapshotter", "native", "usage").stdout)
        assert int(row["INODES"]) == 1 + 2100 + 1  # the root, every directory, the file


def test_snapshots_usage_of_one_key(run: Cli) -> None:
    img = run.imported(app_image(), APP, "--snapshotter", "native")
    base = chain_ids(img.diff_ids)[0]
    rows = parse_table(run.ok("snapshots", "--snapshotter", "native", "usage", base).stdout)
    assert [r["KEY"] for r in rows] == [base]


