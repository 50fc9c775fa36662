"""Unpacking through the CLI: on import, ``images unpack``, ``images check`` and
``images usage``, with both snapshotters.

Output follows ctr 1.6: ``unpacking NAME (DIGEST)...done`` per unpacked image, ``images check``
columns ``REF TYPE DIGEST STATUS SIZE UNPACKED``. A failed unpack during import is one error
line, exit 1, and no image record changes."""

from __future__ import annotations

import json
import re
from typing import Any

from ctrpy.cli.render import human_size
from tests.builders import chain_ids, file
from tests.helpers import (
    APP,
    BASE_LAYER,
    OTHER,
    Cli,
    app_image,
    host_image,
    lying_image,
    named_archive,
    parse_table,
    unpacking_line,
    usable,
)


def listings(run: Cli) -> tuple[Any, Any]:
    return run.images_json(), json.loads(run.ok("content", "ls", "--json").stdout)["items"]

# --------------------------------------------------------------------------- import unpacks
def test_import_unpacks_each_image_and_prints_ctrs_unpacking_lines(run: Cli) -> None:
    app, other = app_image(), host_image(BASE_LAYER, [file("other", b"other")]).build()
    out = run.ok("images", "import", run.write(named_archive((app, APP), (other, OTHER))))
    assert out.stdout.splitlines() == [unpacking_line(APP, app), unpacking_line(OTHER, other)]
    assert sorted(run.snapshot_keys()) == sorted({*chain_ids(app.diff_ids), *chain_ids(other.diff_ids)})


def test_import_with_no_unpack_prints_the_names_and_unpacks_nothing(run: Cli) -> None:
    out = run.ok("images", "import", "--no-unpack", run.write(named_archive((app_image(), APP))))
    assert out.stdout.splitlines() == [APP]
    assert run.snapshot_keys("native") == []
    assert (run.root / "snapshots").exists() is False or not any((run.root / "snapshots").rglob("fs"))


def test_import_unpacks_with_the_snapshotter_given(run: Cli, snapshotter: str) -> None:
    img = run.imported(app_image(), APP, "--snapshotter", snapshotter)
    assert run.snapshot_keys(snapshotter) == sorted(chain_ids(img.diff_ids))
    other = "native" if snapshotter == "overlayfs" else "overlayfs"
    if usable(other, run.root.parent):
        assert run.snapshot_keys(other) == []


def test_import_unpacks_with_the_snapshotter_from_ctrpy_snapshotter(run: Cli) -> None:
    img = app_image()
    run.ok("images", "import", run.write(named_archive((img, APP))), env={"CTRPY_SNAPSHOTTER": "native"})
    assert run.snapshot_keys("native") == sorted(chain_ids(img.diff_ids))


def test_import_with_an_unknown_snapshotter_fails_before_storing_anything(run: Cli) -> None:
    run.imported(host_image(BASE_LAYER).build(), OTHER, "--no-unpack")
    path = run.write(named_archive((app_image(), APP)))
    before = run.state()
    run.fails(
        "images",
        "import",
        "--snapshotter",
        "zfs",
        path,
        match="unknown snapshotter 'zfs'; valid snapshotters: native, overlayfs",
    )
    run.assert_unchanged(before)


def test_an_import_whose_unpack_fails_exits_1_with_one_error_line_and_creates_no_image(run: Cli) -> None:
    bad = lying_image()
    before = listings(run)
    run.fails(
        "images",
        "import",
        run.write(named_archive((bad, APP))),
        match=(f"layer 1 ({bad.layers[1].digest}) of {APP}", "config says diffID"),
        stdout=None,
    )
    assert listings(run) == before
    assert not set(run.snapshot_keys()) & set(chain_ids(bad.diff_ids)[1:])


def test_a_reimport_whose_unpack_fails_leaves_the_existing_image_as_it_was(run: Cli) -> None:
    good = run.imported(app_image(), APP, "--label", "team=infra")
    before = listings(run)
    run.fails(
        "images",
        "import",
        "--label",
        "team=other",
        run.write(named_archive((lying_image(b"v2"), APP))),
        match="config says diffID",
        stdout=None,
    )
    assert listings(run) == before
    assert run.image(APP)["target"]["digest"] == good.manifest.digest


def test_an_archive_whose_second_image_fails_to_unpack_records_neither(run: Cli) -> None:
    before = listings(run)
    run.fails(
        "images",
        "import",
        run.write(named_archive((app_image(), APP), (lying_image(), OTHER))),
        match=f"of {OTHER}",
        stdout=None,
    )
    assert listings(run) == before


# --------------------------------------------------------------------------- images unpack
def test_images_unpack_unpacks_an_imported_image_and_prints_ctrs_line(run: Cli, snapshotter: str) -> None:
    img = run.imported(app_image(), APP, "--no-unpack")
    out = run.ok("images", "unpack", "--snapshotter", snapshotter, APP)
    assert out.stdout.splitlines() == [unpacking_line(APP, img)]
    assert run.snapshot_keys(snapshotter) == sorted(chain_ids(img.diff_ids))


def test_images_unpack_again_changes_nothing(run: Cli) -> None:
    img = run.imported(app_image(), APP, "--no-unpack")
    run.ok("images", "unpack", "--snapshotter", "native", APP)
    before = run.ok("snapshots", "--snapshotter", "native", "ls", "--json").stdout
    out = run.ok("images", "unpack", "--snapshotter", "native", APP)
    assert out.stdout.splitlines() == [unpacking_line(APP, img)]
    assert run.ok("snapshots", "--snapshotter", "native", "ls", "--json").stdout == before


def test_images_unpack_finds_an_image_by_its_short_name(run: Cli) -> None:
    img = run.imported(app_image(), APP, "--no-unpack")
    run.ok("images", "unpack", "--snapshotter", "native", "app:v1")
    assert run.snapshot_keys("native") == sorted(chain_ids(img.diff_ids))


def test_images_unpack_of_a_missing_image_fails(run: Cli) -> None:
    run.fails("images", "unpack", "--snapshotter", "native", "nothing:here", match="not found")


def test_images_unpack_of_a_lying_image_fails_and_keeps_no_snapshot_of_the_bad_layer(run: Cli) -> None:
    bad = run.imported(lying_image(), APP, "--no-unpack")
    run.fails("images", "unpack", "--snapshotter", "native", APP, match="config says diffID", stdout=None)
    assert not set(run.snapshot_keys("native")) & set(chain_ids(bad.diff_ids)[1:])


# --------------------------------------------------------------------------- images check
def test_images_check_has_ctrs_columns(run: Cli) -> None:
    run.imported(app_image(), APP, "--no-unpack")
    assert run.ok("images", "check").stdout.splitlines()[0].split() == [
        "REF",
        "TYPE",
        "DIGEST",
        "STATUS",
        "SIZE",
        "UNPACKED",
    ]


def test_images_check_rows_end_without_padding_as_ctrs(run: Cli) -> None:
    run.imported(app_image(), APP, "--no-unpack")
    header, row = run.ok("images", "check").stdout.splitlines()
    assert header.endswith("UNPACKED ")
    assert row.endswith(" false")


def test_images_check_of_an_empty_store_prints_nothing_as_ctr(run: Cli) -> None:
    assert run.ok("images", "check").stdout == ""


def status(row: dict[str, str]) -> tuple[str, int, int]:
    """``complete (n/m)`` as ("complete", n, m)."""
    m = re.fullmatch(r"(complete|incomplete) \((\d+)/(\d+)\)", row["STATUS"])
    assert m, row["STATUS"]
    return m[1], int(m[2]), int(m[3])


def test_images_check_reports_a_complete_unpacked_image(run: Cli, snapshotter: str) -> None:
    img = run.imported(app_image(), APP, "--snapshotter", snapshotter)
    (row,) = parse_table(run.ok("images", "check", "--snapshotter", snapshotter).stdout)
    assert row["REF"] == APP
    assert row["TYPE"] == "application/vnd.oci.image.manifest.v1+json"
    assert row["DIGEST"] == img.manifest.digest
    word, present, required = status(row)
    assert (word, present) == ("complete", required)
    assert row["UNPACKED"] == "true"


def test_images_check_reports_an_image_imported_without_unpacking_as_not_unpacked(run: Cli) -> None:
    run.imported(app_image(), APP, "--no-unpack")
    (row,) = parse_table(run.ok("images", "check", "--snapshotter", "native").stdout)
    assert status(row)[0] == "complete"
    assert row["UNPACKED"] == "false"


def test_images_check_reports_an_image_with_a_removed_layer_blob_as_incomplete(run: Cli) -> None:
    img = run.imported(app_image(), APP, "--no-unpack")
    (row,) = parse_table(run.ok("images", "check").stdout)
    _, _, required = status(row)
    run.ok("content", "rm", img.layers[1].digest)
    (row,) = parse_table(run.ok("images", "check", "--snapshotter", "native").stdout)
    assert status(row) == ("incomplete", required - 1, required)
    present_size, required_size = row["SIZE"].split("/")  # present/required, config + layers
    needed = img.config.size + sum(b.size for b in img.layers)
    assert required_size == human_size(needed)
    assert present_size == human_size(needed - img.layers[1].size)


def test_images_check_counts_the_config_and_the_layers_as_ctr_does(run: Cli) -> None:
    img = run.imported(app_image(), APP, "--no-unpack")
    (row,) = parse_table(run.ok("images", "check").stdout)
    needed = img.config.size + sum(b.size for b in img.layers)
    assert (row["STATUS"], row["SIZE"]) == ("complete (3/3)", f"{human_size(needed)}/{human_size(needed)}")
    run.ok("content", "rm", img.layers[1].digest)
    (row,) = parse_table(run.ok("images", "check").stdout)
    assert row["STATUS"] == "incomplete (2/3)"


def test_images_check_reports_an_unpacked_image_with_a_removed_blob_as_unpacked_as_ctr_does(run: Cli) -> None:
    img = run.imported(app_image(), APP, "--snapshotter", "native")
    run.ok("content", "rm", img.layers[1].digest)
    (row,) = parse_table(run.ok("images", "check", "--snapshotter", "native").stdout)
    assert status(row)[0] == "incomplete"
    assert row["UNPACKED"] == "true"


def test_images_check_quiet_lists_only_complete_images(run: Cli) -> None:
    run.imported(app_image(), APP, "--no-unpack")
    other = run.imported(host_image(BASE_LAYER, [file("o", b"o")]).build(), OTHER, "--no-unpack")
    run.ok("content", "rm", other.layers[1].digest)
    assert run.ok("images", "check", "-q").stdout.splitlines() == [APP]


# --------------------------------------------------------------------------- images usage
def test_images_usage_lists_each_layers_snapshot_and_a_total(run: Cli, snapshotter: str) -> None:
    img = run.imported(app_image(), APP, "--snapshotter", snapshotter)
    rows = parse_table(run.ok("images", "usage", "--snapshotter", snapshotter, APP).stdout)
    assert [r["SNAPSHOT"] for r in rows] == [*chain_ids(img.diff_ids), "TOTAL"]
    assert all(r["SIZE"].endswith("B") and int(r["INODES"]) > 0 for r in rows)
    assert int(rows[-1]["INODES"]) == sum(int(r["INODES"]) for r in rows[:-1])


def test_images_usage_of_a_layer_not_unpacked_shows_dashes(run: Cli) -> None:
    img = run.imported(app_image(), APP, "--no-unpack")
    rows = parse_table(run.ok("images", "usage", "--snapshotter", "native", APP).stdout)
    assert [(r["SNAPSHOT"], r["SIZE"], r["INODES"]) for r in rows] == [
        (chain_ids(img.diff_ids)[0], "-", "-"),
        (chain_ids(img.diff_ids)[1], "-", "-"),
        ("TOTAL", "0.0 B", "0"),
    ]




def test_a_failed_import_removes_the_snapshots_it_committed_and_changes_nothing(run: Cli) -> None:
    """An archive whose first image unpacks and whose second fails its diffID check: the
    first image's snapshots, committed during the import, are removed again, and the store
    is as it was (and still works)."""
    kept = run.imported(host_image([file("kept", b"kept\n")]).build(), OTHER, "--snapshotter", "native")
    before = run.state()
    good = host_image([file("g", b"good\n")], [file("g2", b"good too\n")]).build()
    bad = lying_image()
    path = run.write(named_archive((good, "docker.io/library/good:v1"), (bad, "docker.io/library/bad:v1")))
    run.fails(
        "images", "import", "--snapshotter", "native", path,
        match=(f"layer 1 ({bad.layers[1].digest})", "docker.io/library/bad:v1", "diffID"),
        stdout=None,  # the good image's "unpacking ...done" line came before the failure
    )
    assert run.snapshot_keys("native") == chain_ids(kept.diff_ids)  # good's and bad's layer 0 went
    run.assert_unchanged(before)
    run.assert_store_works()
