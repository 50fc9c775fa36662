"""Images as root filesystems, through the CLI: unpack on import, ``images unpack|check|usage``,
``snapshots ls|info|rm|tree|usage``, ``images extract|flatten``, ``images mount|unmount``.

Output follows ctr 1.6: ``unpacking NAME (DIGEST)...done`` per unpacked image, ``images check``
columns ``REF TYPE DIGEST STATUS SIZE UNPACKED``, ``snapshots ls`` columns ``KEY PARENT KIND``.
A failed unpack during import is one error line, exit 1, and no image record changes.
Mount tests need root (they skip otherwise) and always unmount what they mounted.
"""

from __future__ import annotations

import errno
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from ctrpy.cli.render import human_size
from ctrpy.snapshots.mounts import is_mountpoint
from tests.builders import (
    ANNOTATION_IMAGE_NAME,
    BuiltImage,
    Layer,
    chain_ids,
    digest_hex,
    directory,
    file,
    hardlink,
    opaque,
    sha256_digest,
    symlink,
    whiteout,
)
from tests.helpers import Cli, host_image, mount_target, need_root, oci_archive, parse_table, usable
from tests.treecmp import diff, feature_layers, files, tar_tree, tree

APP = "docker.io/library/app:v1"
OTHER = "docker.io/library/other:v1"

BASE = [directory("etc"), file("etc/base", b"base\n"), file("etc/remove-me", b"x")]
APP_LAYER = [directory("app"), file("app/bin", b"app\n", 0o755), whiteout("etc/remove-me")]


def app_image() -> BuiltImage:
    return host_image(BASE, APP_LAYER).build()


def archive(run: Cli, *images: tuple[BuiltImage, str]) -> str:
    return run.write(oci_archive(*((img, {ANNOTATION_IMAGE_NAME: name}) for img, name in images)))


def imported(run: Cli, img: BuiltImage, name: str = APP, *args: str) -> BuiltImage:
    run.ok("images", "import", *args, archive(run, (img, name)))
    return img


def unpacking_line(name: str, img: BuiltImage) -> str:
    return f"unpacking {name} ({img.manifest.digest})...done"


def blob_file(run: Cli, digest: str) -> Path:
    return run.root / "content" / "blobs" / "sha256" / digest_hex(digest)


def listings(run: Cli) -> tuple[Any, Any]:
    return run.images_json(), json.loads(run.ok("content", "ls", "--json").stdout)["items"]


def lying_image(text: bytes = b"app") -> BuiltImage:
    """An image whose config gives its second layer a diffID the layer does not hash to."""
    return host_image(BASE, Layer([file("app/bin", text)], diff_id=sha256_digest(b"a lie"))).build()


# --------------------------------------------------------------------------- import unpacks
def test_import_unpacks_each_image_and_prints_ctrs_unpacking_lines(run: Cli) -> None:
    app, other = app_image(), host_image(BASE, [file("other", b"other")]).build()
    out = run.ok("images", "import", archive(run, (app, APP), (other, OTHER)))
    assert out.stdout.splitlines() == [unpacking_line(APP, app), unpacking_line(OTHER, other)]
    assert sorted(run.snapshot_keys()) == sorted({*chain_ids(app.diff_ids), *chain_ids(other.diff_ids)})


def test_import_with_no_unpack_prints_the_names_and_unpacks_nothing(run: Cli) -> None:
    out = run.ok("images", "import", "--no-unpack", archive(run, (app_image(), APP)))
    assert out.stdout.splitlines() == [APP]
    assert run.snapshot_keys("native") == []
    assert (run.root / "snapshots").exists() is False or not any((run.root / "snapshots").rglob("fs"))


def test_import_unpacks_with_the_snapshotter_given(run: Cli, snapshotter: str) -> None:
    img = imported(run, app_image(), APP, "--snapshotter", snapshotter)
    assert run.snapshot_keys(snapshotter) == sorted(chain_ids(img.diff_ids))
    other = "native" if snapshotter == "overlayfs" else "overlayfs"
    if usable(other, run.root.parent):
        assert run.snapshot_keys(other) == []


def test_import_unpacks_with_the_snapshotter_from_ctrpy_snapshotter(run: Cli) -> None:
    img = app_image()
    run.ok("images", "import", archive(run, (img, APP)), env={"CTRPY_SNAPSHOTTER": "native"})
    assert run.snapshot_keys("native") == sorted(chain_ids(img.diff_ids))


def test_import_with_an_unknown_snapshotter_fails_before_storing_anything(run: Cli) -> None:
    imported(run, host_image(BASE).build(), OTHER, "--no-unpack")
    path = archive(run, (app_image(), APP))
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
        archive(run, (bad, APP)),
        match=(f"layer 1 ({bad.layers[1].digest}) of {APP}", "config says diffID"),
        stdout=None,
    )
    assert listings(run) == before
    assert not set(run.snapshot_keys()) & set(chain_ids(bad.diff_ids)[1:])


def test_a_reimport_whose_unpack_fails_leaves_the_existing_image_as_it_was(run: Cli) -> None:
    good = imported(run, app_image(), APP, "--label", "team=infra")
    before = listings(run)
    run.fails(
        "images",
        "import",
        "--label",
        "team=other",
        archive(run, (lying_image(b"v2"), APP)),
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
        archive(run, (app_image(), APP), (lying_image(), OTHER)),
        match=f"of {OTHER}",
        stdout=None,
    )
    assert listings(run) == before


# --------------------------------------------------------------------------- images unpack
def test_images_unpack_unpacks_an_imported_image_and_prints_ctrs_line(run: Cli, snapshotter: str) -> None:
    img = imported(run, app_image(), APP, "--no-unpack")
    out = run.ok("images", "unpack", "--snapshotter", snapshotter, APP)
    assert out.stdout.splitlines() == [unpacking_line(APP, img)]
    assert run.snapshot_keys(snapshotter) == sorted(chain_ids(img.diff_ids))


def test_images_unpack_again_changes_nothing(run: Cli) -> None:
    img = imported(run, app_image(), APP, "--no-unpack")
    run.ok("images", "unpack", "--snapshotter", "native", APP)
    before = run.ok("snapshots", "--snapshotter", "native", "ls", "--json").stdout
    out = run.ok("images", "unpack", "--snapshotter", "native", APP)
    assert out.stdout.splitlines() == [unpacking_line(APP, img)]
    assert run.ok("snapshots", "--snapshotter", "native", "ls", "--json").stdout == before


def test_images_unpack_finds_an_image_by_its_short_name(run: Cli) -> None:
    img = imported(run, app_image(), APP, "--no-unpack")
    run.ok("images", "unpack", "--snapshotter", "native", "app:v1")
    assert run.snapshot_keys("native") == sorted(chain_ids(img.diff_ids))


def test_images_unpack_of_a_missing_image_fails(run: Cli) -> None:
    run.fails("images", "unpack", "--snapshotter", "native", "nothing:here", match="not found")


def test_images_unpack_of_a_lying_image_fails_and_keeps_no_snapshot_of_the_bad_layer(run: Cli) -> None:
    bad = imported(run, lying_image(), APP, "--no-unpack")
    run.fails("images", "unpack", "--snapshotter", "native", APP, match="config says diffID", stdout=None)
    assert not set(run.snapshot_keys("native")) & set(chain_ids(bad.diff_ids)[1:])


# --------------------------------------------------------------------------- images check
def test_images_check_has_ctrs_columns(run: Cli) -> None:
    imported(run, app_image(), APP, "--no-unpack")
    assert run.ok("images", "check").stdout.splitlines()[0].split() == [
        "REF",
        "TYPE",
        "DIGEST",
        "STATUS",
        "SIZE",
        "UNPACKED",
    ]


def status(row: dict[str, str]) -> tuple[str, int, int]:
    """``complete (n/m)`` as ("complete", n, m)."""
    m = re.fullmatch(r"(complete|incomplete) \((\d+)/(\d+)\)", row["STATUS"])
    assert m, row["STATUS"]
    return m[1], int(m[2]), int(m[3])


def test_images_check_reports_a_complete_unpacked_image(run: Cli, snapshotter: str) -> None:
    img = imported(run, app_image(), APP, "--snapshotter", snapshotter)
    (row,) = parse_table(run.ok("images", "check", "--snapshotter", snapshotter).stdout)
    assert row["REF"] == APP
    assert row["TYPE"] == "application/vnd.oci.image.manifest.v1+json"
    assert row["DIGEST"] == img.manifest.digest
    word, present, required = status(row)
    assert (word, present) == ("complete", required)
    assert row["UNPACKED"] == "true"


def test_images_check_reports_an_image_imported_without_unpacking_as_not_unpacked(run: Cli) -> None:
    imported(run, app_image(), APP, "--no-unpack")
    (row,) = parse_table(run.ok("images", "check", "--snapshotter", "native").stdout)
    assert status(row)[0] == "complete"
    assert row["UNPACKED"] == "false"


def test_images_check_reports_an_image_with_a_removed_layer_blob_as_incomplete(run: Cli) -> None:
    img = imported(run, app_image(), APP, "--no-unpack")
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
    img = imported(run, app_image(), APP, "--no-unpack")
    (row,) = parse_table(run.ok("images", "check").stdout)
    needed = img.config.size + sum(b.size for b in img.layers)
    assert (row["STATUS"], row["SIZE"]) == ("complete (3/3)", f"{human_size(needed)}/{human_size(needed)}")
    run.ok("content", "rm", img.layers[1].digest)
    (row,) = parse_table(run.ok("images", "check").stdout)
    assert row["STATUS"] == "incomplete (2/3)"


def test_images_check_reports_an_unpacked_image_with_a_removed_blob_as_unpacked_as_ctr_does(run: Cli) -> None:
    img = imported(run, app_image(), APP, "--snapshotter", "native")
    run.ok("content", "rm", img.layers[1].digest)
    (row,) = parse_table(run.ok("images", "check", "--snapshotter", "native").stdout)
    assert status(row)[0] == "incomplete"
    assert row["UNPACKED"] == "true"


def test_images_check_quiet_lists_only_complete_images(run: Cli) -> None:
    imported(run, app_image(), APP, "--no-unpack")
    other = imported(run, host_image(BASE, [file("o", b"o")]).build(), OTHER, "--no-unpack")
    run.ok("content", "rm", other.layers[1].digest)
    assert run.ok("images", "check", "-q").stdout.splitlines() == [APP]


# --------------------------------------------------------------------------- images usage
def test_images_usage_lists_each_layers_snapshot_and_a_total(run: Cli, snapshotter: str) -> None:
    img = imported(run, app_image(), APP, "--snapshotter", snapshotter)
    rows = parse_table(run.ok("images", "usage", "--snapshotter", snapshotter, APP).stdout)
    assert [r["SNAPSHOT"] for r in rows] == [*chain_ids(img.diff_ids), "TOTAL"]
    assert all(r["SIZE"].endswith("B") and int(r["INODES"]) > 0 for r in rows)
    assert int(rows[-1]["INODES"]) == sum(int(r["INODES"]) for r in rows[:-1])


def test_images_usage_of_a_layer_not_unpacked_shows_dashes(run: Cli) -> None:
    img = imported(run, app_image(), APP, "--no-unpack")
    rows = parse_table(run.ok("images", "usage", "--snapshotter", "native", APP).stdout)
    assert [(r["SNAPSHOT"], r["SIZE"], r["INODES"]) for r in rows] == [
        (chain_ids(img.diff_ids)[0], "-", "-"),
        (chain_ids(img.diff_ids)[1], "-", "-"),
        ("TOTAL", "0.0 B", "0"),
    ]


# --------------------------------------------------------------------------- snapshots
def test_snapshots_ls_shows_key_parent_and_kind(run: Cli, snapshotter: str) -> None:
    img = imported(run, app_image(), APP, "--snapshotter", snapshotter)
    base, top = chain_ids(img.diff_ids)
    out = run.ok("snapshots", "--snapshotter", snapshotter, "ls").stdout
    assert out.splitlines()[0].split() == ["KEY", "PARENT", "KIND"]
    assert sorted((r["KEY"], r["PARENT"], r["KIND"]) for r in parse_table(out)) == sorted(
        [(base, "", "Committed"), (top, base, "Committed")]
    )


def test_snapshots_info_prints_the_snapshot_as_json(run: Cli, snapshotter: str) -> None:
    img = imported(run, app_image(), APP, "--snapshotter", snapshotter)
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
    img = imported(run, app_image(), APP, "--snapshotter", snapshotter)
    base, top = chain_ids(img.diff_ids)
    run.fails("snapshots", "--snapshotter", snapshotter, "rm", base, match=f"has a child '{top}'")
    assert sorted(run.snapshot_keys(snapshotter)) == sorted([base, top])


def test_snapshots_rm_removes_children_then_parents_and_prints_the_keys(run: Cli, snapshotter: str) -> None:
    img = imported(run, app_image(), APP, "--snapshotter", snapshotter)
    base, top = chain_ids(img.diff_ids)
    out = run.ok("snapshots", "--snapshotter", snapshotter, "rm", top, base)
    assert out.stdout.splitlines() == [top, base]
    assert run.snapshot_keys(snapshotter) == []
    assert not any((run.root / "snapshots" / snapshotter / "snapshots").iterdir())


def test_after_snapshots_rm_the_image_is_not_unpacked_and_unpacks_again(run: Cli) -> None:
    img = imported(run, app_image(), APP, "--snapshotter", "native")
    base, top = chain_ids(img.diff_ids)
    run.ok("snapshots", "--snapshotter", "native", "rm", top)
    (row,) = parse_table(run.ok("images", "check", "--snapshotter", "native").stdout)
    assert row["UNPACKED"] == "false"
    run.ok("images", "unpack", "--snapshotter", "native", APP)
    assert sorted(run.snapshot_keys("native")) == sorted([base, top])


def test_snapshots_tree_shows_children_under_their_parents(run: Cli) -> None:
    app = imported(run, app_image(), APP, "--snapshotter", "native")
    other = imported(run, host_image(BASE, [file("other", b"o")]).build(), OTHER, "--snapshotter", "native")
    base, app_top = chain_ids(app.diff_ids)
    other_top = chain_ids(other.diff_ids)[1]
    out = run.ok("snapshots", "--snapshotter", "native", "tree").stdout
    assert out.splitlines() == [base, *(f" \\_ {k}" for k in sorted([app_top, other_top]))]


def test_snapshots_usage_lists_key_size_and_inodes(run: Cli) -> None:
    img = imported(run, app_image(), APP, "--snapshotter", "native")
    out = run.ok("snapshots", "--snapshotter", "native", "usage").stdout
    assert out.splitlines()[0].split() == ["KEY", "SIZE", "INODES"]
    rows = parse_table(out)
    assert sorted(r["KEY"] for r in rows) == sorted(chain_ids(img.diff_ids))
    by_key = {r["KEY"]: int(r["INODES"]) for r in rows}
    # native trees are complete: the root, etc/, etc/base (+ app/, app/bin on top)
    assert by_key == {chain_ids(img.diff_ids)[0]: 4, chain_ids(img.diff_ids)[1]: 5}


def test_snapshots_usage_of_one_key(run: Cli) -> None:
    img = imported(run, app_image(), APP, "--snapshotter", "native")
    base = chain_ids(img.diff_ids)[0]
    rows = parse_table(run.ok("snapshots", "--snapshotter", "native", "usage", base).stdout)
    assert [r["KEY"] for r in rows] == [base]


# --------------------------------------------------------------------------- extract
def test_extract_writes_the_merged_tree_into_a_new_directory(run: Cli, tmp_path: Path) -> None:
    imported(run, app_image(), APP, "--no-unpack")
    run.ok("images", "extract", APP, str(tmp_path / "rootfs"))
    assert files(tmp_path / "rootfs") == {
        "app": None,
        "app/bin": b"app\n",
        "etc": None,
        "etc/base": b"base\n",
    }
    assert (tmp_path / "rootfs" / "app" / "bin").stat().st_mode & 0o777 == 0o755


def test_extract_into_an_existing_empty_directory_works(run: Cli, tmp_path: Path) -> None:
    imported(run, app_image(), APP, "--no-unpack")
    (tmp_path / "empty").mkdir()
    run.ok("images", "extract", APP, str(tmp_path / "empty"))
    assert (tmp_path / "empty" / "etc" / "base").read_bytes() == b"base\n"


def test_extract_refuses_a_non_empty_directory_and_leaves_it_alone(run: Cli, tmp_path: Path) -> None:
    imported(run, app_image(), APP, "--no-unpack")
    dest = tmp_path / "busy"
    dest.mkdir()
    (dest / "mine").write_bytes(b"keep")
    run.fails("images", "extract", APP, str(dest), match="exists and is not an empty directory")
    assert files(dest) == {"mine": b"keep"}


def test_extract_needs_no_unpacked_snapshots(run: Cli, tmp_path: Path) -> None:
    imported(run, app_image(), APP, "--no-unpack")
    run.ok("images", "extract", APP, str(tmp_path / "rootfs"))
    assert run.snapshot_keys("native") == []


def test_extract_of_a_lying_image_fails(run: Cli, tmp_path: Path) -> None:
    imported(run, lying_image(), APP, "--no-unpack")
    run.fails("images", "extract", APP, str(tmp_path / "rootfs"), match="config says diffID")


# --------------------------------------------------------------------------- flatten
def need_root_for_trees() -> None:
    if os.geteuid() != 0:
        pytest.skip("extracting owners and device nodes needs root")


def test_flatten_to_a_file_holds_the_extracted_tree(run: Cli, tmp_path: Path) -> None:
    need_root_for_trees()
    imported(run, host_image(*feature_layers(replace_hardlinked_file=False)).build(), APP, "--no-unpack")
    run.ok("images", "extract", APP, str(tmp_path / "rootfs"))
    run.ok("images", "flatten", APP, str(tmp_path / "flat.tar"))
    expected, got = tree(tmp_path / "rootfs"), tar_tree((tmp_path / "flat.tar").read_bytes())
    assert got == expected, diff(got, expected, ("flatten", "extract"))


def test_flatten_to_stdout_holds_the_extracted_tree(run: Cli, tmp_path: Path) -> None:
    need_root_for_trees()
    imported(run, host_image(*feature_layers(replace_hardlinked_file=False)).build(), APP, "--no-unpack")
    run.ok("images", "extract", APP, str(tmp_path / "rootfs"))
    out = run.ok("images", "flatten", APP, "-")
    expected, got = tree(tmp_path / "rootfs"), tar_tree(out.stdout_bytes)
    assert got == expected, diff(got, expected, ("flatten -", "extract"))


def test_flatten_applies_whiteouts_opaque_dirs_hardlinks_and_symlinks(run: Cli) -> None:
    lower = [
        directory("etc"),
        file("etc/gone", b"x"),
        file("etc/kept", b"kept"),
        directory("opt"),
        file("opt/old", b"old"),
        directory("opt/sub"),
        file("opt/sub/deeper", b"d"),
        file("bin-a", b"binary", 0o755),
    ]
    upper = [
        whiteout("etc/gone"),
        opaque("opt"),
        file("opt/new", b"new"),
        hardlink("bin-b", "bin-a", 0o755),
        symlink("etc/abs", "/bin-a"),
        symlink("etc/rel", "../bin-a"),
    ]
    imported(run, host_image(lower, upper).build(), APP, "--no-unpack")
    t = tar_tree(run.ok("images", "flatten", APP, "-").stdout_bytes)
    assert sorted(t) == ["bin-a", "bin-b", "etc", "etc/abs", "etc/kept", "etc/rel", "opt", "opt/new"]
    assert t["bin-b"].hardlink == t["bin-a"].hardlink == "bin-a"
    assert t["bin-b"].sha256 == t["bin-a"].sha256
    assert (t["etc/abs"].linkname, t["etc/rel"].linkname) == ("/bin-a", "../bin-a")


def test_flatten_keeps_a_lower_hardlink_to_a_file_an_upper_layer_replaced(run: Cli) -> None:
    lower = [file("a", b"old"), hardlink("b", "a")]
    upper = [file("a", b"new")]
    imported(run, host_image(lower, upper).build(), APP, "--no-unpack")
    t = tar_tree(run.ok("images", "flatten", APP, "-").stdout_bytes)
    assert t["b"].sha256 == sha256_digest(b"old").split(":")[1]
    assert t["a"].hardlink is None


def test_a_failed_flatten_leaves_no_partial_output_file(run: Cli, tmp_path: Path) -> None:
    imported(run, lying_image(), APP, "--no-unpack")
    before = sorted(os.listdir(tmp_path))
    run.fails("images", "flatten", APP, str(tmp_path / "flat.tar"), match="config says diffID")
    assert sorted(os.listdir(tmp_path)) == before  # no flat.tar, no temporary file either


def test_flatten_detects_a_corrupted_layer_blob(run: Cli, tmp_path: Path) -> None:
    img = imported(run, app_image(), APP, "--no-unpack")
    path = blob_file(run, img.layers[0].digest)
    data = bytearray(path.read_bytes())
    data[4:8] = b"\x01\x02\x03\x04"  # gzip header MTIME: the tar inside is unchanged
    os.chmod(path, 0o644)
    path.write_bytes(bytes(data))
    run.fails("images", "flatten", APP, str(tmp_path / "flat.tar"), match="corrupt")
    assert not (tmp_path / "flat.tar").exists()


# --------------------------------------------------------------------------- mount
@pytest.mark.parametrize("layers", [1, 2], ids=["one-layer", "two-layers"])
def test_mount_is_read_only_with_the_images_files_readable(
    run: Cli, tmp_path: Path, snapshotter: str, layers: int
) -> None:
    need_root()
    img = host_image(*[BASE, APP_LAYER][:layers]).build()
    imported(run, img, APP, "--no-unpack")
    with mount_target(tmp_path) as target:
        out = run.ok("images", "mount", "--snapshotter", snapshotter, APP, str(target))
        assert out.stdout.strip() == str(target)
        assert (target / "etc" / "base").read_bytes() == b"base\n"
        assert (target / "etc" / "remove-me").exists() is (layers == 1)
        with pytest.raises(OSError) as err:
            (target / "new-file").write_bytes(b"x")
        assert err.value.errno == errno.EROFS
        with pytest.raises(OSError) as err:
            (target / "etc" / "base").write_bytes(b"changed")
        assert err.value.errno == errno.EROFS
        assert run.ok("images", "unmount", "--snapshotter", snapshotter, str(target)).stdout.strip() == str(
            target
        )
        assert not is_mountpoint(target)
        assert list(target.iterdir()) == []


def test_mount_unpacks_the_image_first(run: Cli, tmp_path: Path, snapshotter: str) -> None:
    need_root()
    img = imported(run, app_image(), APP, "--no-unpack")
    with mount_target(tmp_path) as target:
        run.ok("images", "mount", "--snapshotter", snapshotter, APP, str(target))
        view = f"mount:{target.resolve()}"  # the read-only mount's view snapshot
        assert sorted(run.snapshot_keys(snapshotter)) == sorted([*chain_ids(img.diff_ids), view])
        run.ok("images", "unmount", "--snapshotter", snapshotter, str(target))
        assert sorted(run.snapshot_keys(snapshotter)) == sorted(chain_ids(img.diff_ids))


def test_a_rw_mount_writes_into_an_active_snapshot_that_unmount_rm_removes(
    run: Cli, tmp_path: Path, snapshotter: str
) -> None:
    need_root()
    img = imported(run, app_image(), APP, "--snapshotter", snapshotter)
    top = chain_ids(img.diff_ids)[-1]
    with mount_target(tmp_path) as target:
        run.ok("images", "mount", "--rw", "--snapshotter", snapshotter, APP, str(target))
        (target / "written").write_bytes(b"by the test")
        (target / "etc" / "base").write_bytes(b"changed\n")
        rows = parse_table(run.ok("snapshots", "--snapshotter", snapshotter, "ls").stdout)
        active = [r for r in rows if r["KIND"] == "Active"]
        assert [(r["KEY"], r["PARENT"]) for r in active] == [(f"mount:{target.resolve()}", top)]
        run.ok("images", "unmount", "--snapshotter", snapshotter, str(target))
        assert [
            r["KEY"]
            for r in parse_table(run.ok("snapshots", "--snapshotter", snapshotter, "ls").stdout)
            if r["KIND"] == "Active"
        ] == [f"mount:{target.resolve()}"]
        # the committed image is untouched: a read-only mount shows the original
        run.ok("images", "mount", "--snapshotter", snapshotter, APP, str(target))
        assert not (target / "written").exists()
        assert (target / "etc" / "base").read_bytes() == b"base\n"
        run.ok("images", "unmount", "--snapshotter", snapshotter, str(target))


def test_unmount_rm_removes_the_writable_snapshot(run: Cli, tmp_path: Path, snapshotter: str) -> None:
    need_root()
    img = imported(run, app_image(), APP, "--snapshotter", snapshotter)
    with mount_target(tmp_path) as target:
        run.ok("images", "mount", "--rw", "--snapshotter", snapshotter, APP, str(target))
        (target / "written").write_bytes(b"x")
        run.ok("images", "unmount", "--rm", "--snapshotter", snapshotter, str(target))
        assert not is_mountpoint(target)
    assert sorted(run.snapshot_keys(snapshotter)) == sorted(chain_ids(img.diff_ids))


def test_mounting_on_a_mount_point_is_an_error(run: Cli, tmp_path: Path, snapshotter: str) -> None:
    need_root()
    imported(run, app_image(), APP, "--snapshotter", snapshotter)
    with mount_target(tmp_path) as target:
        run.ok("images", "mount", "--snapshotter", snapshotter, APP, str(target))
        run.fails(
            "images",
            "mount",
            "--snapshotter",
            snapshotter,
            APP,
            str(target),
            match=f"{target} is already a mount point",
        )
        run.ok("images", "unmount", "--snapshotter", snapshotter, str(target))
        assert not is_mountpoint(target)


def test_mounting_rw_twice_is_an_error_and_leaves_one_active_snapshot(
    run: Cli, tmp_path: Path, snapshotter: str
) -> None:
    need_root()
    imported(run, app_image(), APP, "--snapshotter", snapshotter)
    with mount_target(tmp_path) as target:
        run.ok("images", "mount", "--rw", "--snapshotter", snapshotter, APP, str(target))
        run.fails(
            "images",
            "mount",
            "--rw",
            "--snapshotter",
            snapshotter,
            APP,
            str(target),
            match="already a mount point",
        )
        rows = parse_table(run.ok("snapshots", "--snapshotter", snapshotter, "ls").stdout)
        assert len([r for r in rows if r["KIND"] == "Active"]) == 1
        run.ok("images", "unmount", "--rm", "--snapshotter", snapshotter, str(target))


def test_unmount_of_a_directory_that_is_not_mounted_is_an_error(run: Cli, tmp_path: Path) -> None:
    need_root()
    (tmp_path / "plain").mkdir()
    run.fails("images", "unmount", str(tmp_path / "plain"), match="is not a mount point")


def test_mount_on_a_missing_directory_is_an_error(run: Cli, tmp_path: Path) -> None:
    need_root()
    imported(run, app_image(), APP, "--snapshotter", "native")
    run.fails(
        "images",
        "mount",
        "--snapshotter",
        "native",
        APP,
        str(tmp_path / "nowhere"),
        match="is not a directory",
    )


def test_mount_as_a_non_root_user_is_a_clear_error(
    run: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    imported(run, app_image(), APP, "--no-unpack")
    (tmp_path / "mnt").mkdir()
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    run.fails("images", "mount", APP, str(tmp_path / "mnt"), match="mounting needs root")
    run.fails("images", "unmount", str(tmp_path / "mnt"), match="unmounting needs root")
