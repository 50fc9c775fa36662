"""``ctrpy snapshots prepare|view|commit|mounts|label|diff``: building a layer by hand, as
with ctr, through the CLI -- and an image made of it with ``content ingest``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.builders import chain_ids, decompress, tar_names
from tests.helpers import APP, Cli, app_image, apply_bytes
from tests.treecmp import files

NATIVE = ("snapshots", "--snapshotter", "native")


def based(run: Cli) -> str:
    """APP unpacked into native snapshots; its top chainID."""
    img = run.imported(app_image(), APP, "--snapshotter", "native")
    return chain_ids(img.diff_ids)[-1]


def source_of(run: Cli, key: str) -> Path:
    """The directory a native snapshot's bind mount names (where a rootless user edits)."""
    (line,) = run.ok(*NATIVE, "mounts", "/mnt/x", key).stdout.splitlines()
    return Path(line.split()[3])


# --------------------------------------------------------------------------- prepare, view, commit
def test_prepare_prints_nothing_without_a_target(run: Cli) -> None:
    out = run.ok(*NATIVE, "prepare", "work", based(run))
    assert out.stdout == "" and out.stderr == ""
    assert "work" in run.snapshot_keys("native")


def test_prepare_with_a_target_prints_the_mount_commands(run: Cli) -> None:
    out = run.ok(*NATIVE, "prepare", "--target", "/mnt/work", "work", based(run))
    (line,) = out.stdout.splitlines()
    assert line.startswith("mount -t bind ") and line.endswith(" /mnt/work -o rw,rbind")


def test_a_prepared_snapshot_holds_its_parents_tree(run: Cli) -> None:
    run.ok(*NATIVE, "prepare", "work", based(run))
    assert files(source_of(run, "work")) == {"app": None, "app/bin": b"app\n", "etc": None, "etc/base": b"base\n"}


def test_a_prepared_snapshot_survives_the_removal_of_its_image(run: Cli) -> None:
    top = based(run)
    run.ok(*NATIVE, "prepare", "work", top)
    run.ok("images", "rm", APP)
    assert sorted(run.snapshot_keys("native")) == sorted([*chain_ids(app_image().diff_ids), "work"])


def test_view_prints_a_read_only_mount_of_its_parent(run: Cli) -> None:
    top = based(run)
    out = run.ok(*NATIVE, "view", "--target", "/mnt/look", "look", top).stdout
    assert out.endswith(" /mnt/look -o ro,rbind\n")
    info = json.loads(run.ok(*NATIVE, "info", "look").stdout)
    assert (info["Kind"], info["Parent"]) == ("View", top)


def test_commit_makes_a_committed_snapshot_a_new_one_can_stand_on(run: Cli) -> None:
    run.ok(*NATIVE, "prepare", "work", based(run))
    (source_of(run, "work") / "added").write_bytes(b"added")
    run.ok(*NATIVE, "commit", "mine", "work")
    run.ok(*NATIVE, "prepare", "next", "mine")
    assert (source_of(run, "next") / "added").read_bytes() == b"added"
    assert json.loads(run.ok(*NATIVE, "info", "mine").stdout)["Kind"] == "Committed"


def test_mounts_of_a_committed_snapshot_is_an_error_naming_it(run: Cli) -> None:
    top = based(run)
    run.fails(*NATIVE, "mounts", "/mnt/x", top, match=(top, "committed"))


def test_label_prints_the_labels_and_k_equals_removes(run: Cli) -> None:
    run.ok(*NATIVE, "prepare", "work")
    assert "team=infra" in run.ok(*NATIVE, "label", "work", "team=infra").stdout
    assert "team" not in run.ok(*NATIVE, "label", "work", "team=").stdout


def test_giving_up_gc_root_lets_the_next_collection_take_the_snapshot(run: Cli) -> None:
    run.ok(*NATIVE, "prepare", "work")
    run.ok(*NATIVE, "label", "work", "containerd.io/gc.root=")
    run.ok("content", "prune")
    assert run.snapshot_keys("native") == []


@pytest.mark.parametrize(
    "args",
    [("prepare", "work", "missing"), ("view", "look", "missing"), ("commit", "x", "missing"),
     ("mounts", "/mnt", "missing"), ("label", "missing", "a=b"), ("diff", "missing")],
    ids=["prepare", "view", "commit", "mounts", "label", "diff"],
)
def test_a_missing_snapshot_is_one_error_line_naming_it(run: Cli, args: tuple[str, ...]) -> None:
    run.fails(*NATIVE, *args, match="'missing'")


def test_view_needs_its_parent(run: Cli) -> None:
    run.usage_error(*NATIVE, "view", "look")


# --------------------------------------------------------------------------- diff
def test_diff_prints_the_digest_of_a_stored_layer_labelled_as_ctr_labels_it(run: Cli) -> None:
    run.ok(*NATIVE, "prepare", "work", based(run))
    tree = source_of(run, "work")
    (tree / "etc" / "new").write_bytes(b"new\n")
    (tree / "app" / "bin").unlink()
    digest = run.ok(*NATIVE, "diff", "work").stdout.strip()
    assert digest in run.digests()
    (item,) = [i for i in json.loads(run.ok("content", "ls", "--json").stdout)["items"] if i["digest"] == digest]
    assert item["labels"]["containerd.io/uncompressed"].startswith("sha256:")
    assert "containerd.io/gc.root" in item["labels"]
    layer = run.ok("content", "get", digest).stdout_bytes
    assert tar_names(decompress(layer)) == ["app", "app/.wh.bin", "etc", "etc/new"]


def test_diff_media_type_zstd_and_labels(run: Cli) -> None:
    run.ok(*NATIVE, "prepare", "work")
    (source_of(run, "work") / "f").write_bytes(b"f")
    digest = run.ok(*NATIVE, "diff", "--keep", "--label", "team=infra", "--media-type",
                    "application/vnd.oci.image.layer.v1.tar+zstd", "work").stdout.strip()
    assert run.ok("content", "get", digest).stdout_bytes.startswith(b"\x28\xb5\x2f\xfd")
    assert "team=infra" in run.ok("content", "ls").stdout


def test_an_unknown_diff_media_type_is_a_usage_error(run: Cli) -> None:
    run.ok(*NATIVE, "prepare", "work")
    run.usage_error(*NATIVE, "diff", "--media-type", "application/x-tar", "work")


def test_the_diff_blob_survives_collections(run: Cli) -> None:
    run.ok(*NATIVE, "prepare", "work")
    digest = run.ok(*NATIVE, "diff", "work").stdout.strip()
    run.ok(*NATIVE, "rm", "work")
    run.ok("content", "prune")
    assert digest in run.digests()


# --------------------------------------------------------------------------- an image by hand
def ingest(run: Cli, doc: dict[str, Any]) -> tuple[str, int]:
    data = json.dumps(doc, separators=(",", ":")).encode()
    return run.ok("content", "ingest", "doc", input=data).stdout.strip(), len(data)


def test_a_layer_made_by_hand_becomes_an_image_with_content_ingest(run: Cli, tmp_path: Path) -> None:
    """The README's workflow: prepare on an image's top snapshot, change the tree, diff,
    write a config and a manifest naming the new layer, ingest them, export and import."""
    base = app_image()
    run.ok(*NATIVE, "prepare", "work", based(run))
    (source_of(run, "work") / "etc" / "motd").write_bytes(b"made by hand\n")
    layer = run.ok(*NATIVE, "diff", "work").stdout.strip()
    items = {i["digest"]: i for i in json.loads(run.ok("content", "ls", "--json").stdout)["items"]}
    diff_id = items[layer]["labels"]["containerd.io/uncompressed"]

    config = json.loads(base.config.data)
    config["rootfs"]["diff_ids"].append(diff_id)
    config_digest, config_size = ingest(run, config)
    manifest = json.loads(base.manifest.data)
    manifest["config"] = {**manifest["config"], "digest": config_digest, "size": config_size}
    manifest["layers"].append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                               "digest": layer, "size": items[layer]["size"]})
    manifest_digest, _ = ingest(run, manifest)

    archive = tmp_path / "new.tar"
    run.ok("images", "export", "--manifest", manifest_digest, str(archive), "docker.io/library/app:hand")
    run.ok("images", "import", "--snapshotter", "native", str(archive))
    run.ok("images", "extract", "docker.io/library/app:hand", str(tmp_path / "rootfs"))
    assert (tmp_path / "rootfs" / "etc" / "motd").read_bytes() == b"made by hand\n"
    assert (tmp_path / "rootfs" / "app" / "bin").read_bytes() == b"app\n"


def test_the_diff_applied_on_the_parent_gives_the_changed_tree(run: Cli, tmp_path: Path) -> None:
    run.ok(*NATIVE, "prepare", "work", based(run))
    tree = source_of(run, "work")
    (tree / "etc" / "base").write_bytes(b"changed\n")
    (tree / "app" / "bin").unlink()
    layer = run.ok(*NATIVE, "diff", "work").stdout.strip()
    out = tmp_path / "applied"
    run.ok("images", "extract", APP, str(out))
    apply_bytes(out, decompress(run.ok("content", "get", layer).stdout_bytes))
    assert files(out) == files(tree)
