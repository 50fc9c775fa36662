"""``ctrpy images``: ls, tag, rm, label, inspect (import and export have files of their own)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from tests.builders import (
    ANNOTATION_IMAGE_NAME,
    ANNOTATION_REF_NAME,
    MT_OCI_INDEX,
    MT_OCI_LAYER,
    MT_OCI_MANIFEST,
    BuiltImage,
    Layer,
    Tar,
    file,
    index_of,
)
from tests.helpers import (
    DEEP_DIRS,
    HOST_PLATFORM,
    OTHER_ARCH,
    Cli,
    docker_archive,
    host_image,
    named_archive,
    oci_archive,
    parse_table,
    removed_after,
)


def app_image(text: bytes = b"app") -> BuiltImage:
    return host_image([file("app.txt", text)]).build()


def total_size(img: BuiltImage) -> int:
    return img.manifest.size + img.config.size + sum(layer.size for layer in img.layers)


def image_of_total_size(total: int) -> BuiltImage:
    """A host image whose manifest + config + layer come to exactly ``total`` bytes (the layer
    is filler; nothing is unpacked)."""

    def build(layer_size: int) -> BuiltImage:
        blob = b"\0" * layer_size
        layer = Layer(blob=blob, media_type=MT_OCI_LAYER, diff_id="sha256:" + hashlib.sha256(blob).hexdigest())
        return host_image(layer).build()

    img = build(0)
    for _ in range(5):  # the layer's size is written in the manifest: settle its digit count
        img = build(total - img.manifest.size - img.config.size)
        if total_size(img) == total:
            return img
    raise AssertionError(f"cannot build an image of {total} bytes")


def import_named(run: Cli, img: Any, name: str, *args: str) -> None:
    run.ok("images", "import", "--no-unpack", *args, run.write(oci_archive((img, {ANNOTATION_IMAGE_NAME: name}))))


# --------------------------------------------------------------------------- ls
def test_ls_prints_a_ctr_style_table(run: Cli) -> None:
    img = app_image()
    import_named(run, img, "docker.io/library/app:1", "--label", "team=infra", "--label", "a=1")
    out = run.ok("images", "ls").stdout
    size = f"{total_size(img)}.0 B"
    assert total_size(img) < 1000
    header = ["REF", "TYPE", "DIGEST", "SIZE", "PLATFORMS", "LABELS"]
    row = ["docker.io/library/app:1", MT_OCI_MANIFEST, img.manifest.digest, size, HOST_PLATFORM, "a=1,team=infra"]
    widths = [max(len(h), len(c)) + 1 for h, c in zip(header, row, strict=True)]
    assert out == "".join(
        "".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)) + "\n" for line in (header, row)
    )


def test_ls_header_has_ctr_columns(run: Cli) -> None:
    assert run.ok("images", "ls").stdout.splitlines() == ["REF TYPE DIGEST SIZE PLATFORMS LABELS "]


@pytest.mark.parametrize(
    ("total", "shown"),
    [
        (1023, "1023.0 B"),
        (1024, "1.0 KiB"),
        (3 * 1024, "3.0 KiB"),
        (1023 * 1024 + 920, "1023.9 KiB"),
        (1024 * 1024, "1.0 MiB"),
        (1536 * 1024, "1.5 MiB"),
    ],
)
def test_ls_shows_human_sizes(run: Cli, total: int, shown: str) -> None:
    import_named(run, image_of_total_size(total), "x/y:1")
    _header, row = run.ok("images", "ls").stdout.splitlines()
    assert f" {shown} " in row


def test_ls_shows_a_size_under_one_kib_in_bytes(run: Cli) -> None:
    import_named(run, image_of_total_size(817), "x/y:1")
    _header, row = run.ok("images", "ls").stdout.splitlines()
    assert " 817.0 B " in row


def test_ls_of_a_multi_platform_index_lists_its_platforms_and_the_index_type(run: Cli) -> None:
    idx = index_of([app_image(), host_image([file("a", b"a")], architecture=OTHER_ARCH).build()])
    import_named(run, idx, "multi:1")
    _header, row = run.ok("images", "ls").stdout.splitlines()
    cells = row.split()
    assert cells[1] == MT_OCI_INDEX
    assert cells[2] == idx.digest
    assert cells[5] == f"{HOST_PLATFORM},linux/{OTHER_ARCH}"


def test_ls_size_of_an_index_counts_the_index_and_the_host_platform_only(run: Cli) -> None:
    host = app_image()
    other = host_image([file("a", b"a" * 5000)], architecture=OTHER_ARCH).build()
    idx = index_of([host, other])
    import_named(run, idx, "multi:1")
    assert run.image("multi:1")["size"] == idx.size + total_size(host)


def test_ls_size_counts_a_layer_listed_twice_twice_as_ctr_does(run: Cli) -> None:
    img = host_image([file("same", b"x" * 3000)], [file("same", b"x" * 3000)]).build()
    assert img.layers[0].digest == img.layers[1].digest
    import_named(run, img, "twice:1")
    assert run.image("twice:1")["size"] == total_size(img)


def test_ls_shows_dashes_when_an_images_content_is_gone(run: Cli) -> None:
    img = app_image()
    import_named(run, img, "x/y:1")
    run.ok("content", "rm", img.manifest.digest)
    _header, row = run.ok("images", "ls").stdout.splitlines()
    cells = row.split()
    assert cells[0] == "x/y:1"
    assert cells[-3:] == ["-", "-", "-"]  # SIZE, PLATFORMS, LABELS


def test_ls_quiet_prints_names_sorted(run: Cli) -> None:
    img = app_image()
    for name in ["zz/z:1", "aa/a:1", "mm/m:1"]:
        import_named(run, img, name)
    assert run.ok("images", "ls", "-q").stdout == "aa/a:1\nmm/m:1\nzz/z:1\n"


def test_ls_json_is_a_versioned_envelope(run: Cli) -> None:
    img = app_image()
    import_named(run, img, "x/y:1", "--label", "k=v")
    out = json.loads(run.ok("images", "ls", "--json").stdout)
    assert out["schemaVersion"] == 1
    assert out["kind"] == "ImageList"
    (item,) = out["items"]
    assert item["name"] == "x/y:1"
    assert item["target"] == {"mediaType": MT_OCI_MANIFEST, "digest": img.manifest.digest, "size": img.manifest.size}
    assert item["size"] == total_size(img)
    assert item["platforms"] == [HOST_PLATFORM]
    assert item["labels"] == {"k": "v"}
    assert item["createdAt"] and item["updatedAt"]


@pytest.mark.parametrize("alias", [("image", "ls"), ("i", "ls"), ("images", "list")])
def test_images_ls_aliases(run: Cli, alias: tuple[str, str]) -> None:
    import_named(run, app_image(), "x/y:1")
    assert run.ok(*alias, "-q").stdout == "x/y:1\n"


def test_ls_shows_only_this_namespace(run: Cli) -> None:
    import_named(run, app_image(), "x/y:1")
    assert run.names("other") == []


# --------------------------------------------------------------------------- tag
@pytest.fixture
def busybox(run: Cli) -> BuiltImage:
    img = app_image(b"busybox")
    import_named(run, img, "docker.io/library/busybox:latest", "--label", "k=v")
    return img


def test_tag_creates_names_for_the_same_target_and_prints_them(run: Cli, busybox: BuiltImage) -> None:
    r = run.ok("images", "tag", "docker.io/library/busybox:latest", "busybox:mine", "registry.local/bb:1")
    assert r.stdout == "busybox:mine\nregistry.local/bb:1\n"
    for name in ("busybox:mine", "registry.local/bb:1"):
        assert run.image(name)["target"]["digest"] == busybox.manifest.digest
        assert run.image(name)["labels"] == {"k": "v"}


def test_tag_finds_the_source_by_its_short_name(run: Cli, busybox: BuiltImage) -> None:
    run.ok("images", "tag", "busybox", "copy:1")
    assert run.image("copy:1")["target"]["digest"] == busybox.manifest.digest


def test_tag_onto_an_existing_name_fails_without_force(run: Cli, busybox: BuiltImage) -> None:
    import_named(run, app_image(b"other"), "taken:1")
    before = run.state()
    run.fails("images", "tag", "busybox", "taken:1", match=("taken:1", "--force"))
    run.assert_unchanged(before)


def test_tag_force_replaces_an_existing_name(run: Cli, busybox: BuiltImage) -> None:
    import_named(run, app_image(b"other"), "taken:1")
    run.ok("images", "tag", "--force", "busybox", "taken:1")
    assert run.image("taken:1")["target"]["digest"] == busybox.manifest.digest


def test_tag_of_a_missing_source_fails(run: Cli, busybox: BuiltImage) -> None:
    before = run.state()
    run.fails("images", "tag", "nothing:1", "x:1", match=("nothing:1", "not found"))
    run.assert_unchanged(before)


def test_tag_without_a_target_is_a_usage_error(run: Cli, busybox: BuiltImage) -> None:
    run.usage_error("images", "tag", "busybox")


# --------------------------------------------------------------------------- rm
def test_rm_removes_the_image_and_prints_its_name(run: Cli, busybox: BuiltImage) -> None:
    r = run.ok("images", "rm", "docker.io/library/busybox:latest")
    assert r.stdout == "docker.io/library/busybox:latest\n"
    assert run.names() == []


def test_rm_frees_the_content_no_other_image_holds(run: Cli, busybox: BuiltImage) -> None:
    assert run.digests()
    r = run.ok("images", "rm", "docker.io/library/busybox:latest")
    assert run.digests() == []
    assert "ctrpy: freed" in r.stderr


def test_rm_collects_a_snapshot_thousands_of_levels_deep(run: Cli, snapshotter: str) -> None:
    """Measuring what it freed was an internal RecursionError (os.walk recurses)."""
    img = host_image(Tar().file(f"{DEEP_DIRS}/file", b"deep").build()).build()
    with removed_after(run.root):
        run.ok("images", "import", "--snapshotter", snapshotter, run.write(named_archive((img, "deep/tree:1"))))
        r = run.ok("images", "rm", "deep/tree:1")
        assert "freed 3 blobs and 1 snapshot (" in r.stderr
        assert run.snapshot_keys(snapshotter) == []
        assert not any(p.is_dir() for p in (run.root / "snapshots").glob("*/snapshots/*"))


def test_rm_keeps_the_content_another_name_of_the_image_holds(run: Cli, busybox: BuiltImage) -> None:
    digests = run.digests()
    run.ok("images", "tag", "docker.io/library/busybox:latest", "busybox:mine")
    run.ok("images", "rm", "docker.io/library/busybox:latest")
    assert run.digests() == digests


def test_rm_by_short_name_removes_the_normalised_image(run: Cli, busybox: BuiltImage) -> None:
    assert run.ok("images", "rm", "busybox").stdout == "docker.io/library/busybox:latest\n"
    assert run.names() == []


def test_rm_of_a_missing_image_warns_and_exits_0(run: Cli, busybox: BuiltImage) -> None:
    before = run.state()
    r = run.ok("images", "rm", "missing:1")
    assert r.stdout == ""
    assert r.stderr.splitlines() == ["ctrpy: warning: image 'missing:1' not found"]
    run.assert_unchanged(before)


def test_rm_of_missing_and_present_images_removes_the_present_ones(run: Cli, busybox: BuiltImage) -> None:
    r = run.ok("images", "rm", "missing:1", "busybox")
    assert r.stdout == "docker.io/library/busybox:latest\n"
    assert "missing:1" in r.stderr
    assert run.names() == []


@pytest.mark.parametrize("alias", ["remove", "delete", "del"])
def test_rm_aliases(run: Cli, busybox: BuiltImage, alias: str) -> None:
    run.ok("images", alias, "busybox")
    assert run.names() == []


def test_rm_without_a_name_is_a_usage_error(run: Cli) -> None:
    run.usage_error("images", "rm")


# --------------------------------------------------------------------------- label
def test_label_merges_and_prints_all_labels(run: Cli, busybox: BuiltImage) -> None:
    assert run.ok("images", "label", "busybox", "team=infra").stdout == "k=v,team=infra\n"
    assert run.image("docker.io/library/busybox:latest")["labels"] == {"k": "v", "team": "infra"}


def test_label_with_an_empty_value_removes_it(run: Cli, busybox: BuiltImage) -> None:
    assert run.ok("images", "label", "busybox", "k=").stdout == "-\n"
    assert run.image("docker.io/library/busybox:latest")["labels"] == {}


def test_label_keeps_created_at(run: Cli, busybox: BuiltImage) -> None:
    created = run.image("docker.io/library/busybox:latest")["createdAt"]
    run.ok("images", "label", "busybox", "x=1")
    assert run.image("docker.io/library/busybox:latest")["createdAt"] == created


def test_labels_show_in_ls(run: Cli, busybox: BuiltImage) -> None:
    run.ok("images", "label", "busybox", "b=2")
    _header, row = run.ok("images", "ls").stdout.splitlines()
    assert row.split()[-1] == "b=2,k=v"


def test_label_of_a_missing_image_fails(run: Cli, busybox: BuiltImage) -> None:
    before = run.state()
    run.fails("images", "label", "missing:1", "a=1", match="not found")
    run.assert_unchanged(before)


def test_a_label_without_a_key_is_a_usage_error(run: Cli, busybox: BuiltImage) -> None:
    before = run.state()
    run.usage_error("images", "label", "busybox", "=value")
    run.assert_unchanged(before)


def test_a_label_without_a_value_is_key_true_as_in_ctr(run: Cli, busybox: BuiltImage) -> None:
    assert "novalue=true" in run.ok("images", "label", "busybox", "novalue").stdout.strip().split(",")


# --------------------------------------------------------------------------- inspect
def test_inspect_prints_the_record_manifest_and_config(run: Cli, busybox: BuiltImage) -> None:
    out = json.loads(run.ok("images", "inspect", "busybox").stdout)
    assert out["name"] == "docker.io/library/busybox:latest"
    assert out["target"] == {
        "mediaType": MT_OCI_MANIFEST, "digest": busybox.manifest.digest, "size": busybox.manifest.size,
    }
    assert out["labels"] == {"k": "v"}
    assert out["createdAt"] and out["updatedAt"]
    assert out["manifest"] == json.loads(busybox.manifest.data)
    assert out["config"] == json.loads(busybox.config.data)
    assert "index" not in out


def test_inspect_of_an_index_shows_the_index_and_the_host_manifest(run: Cli) -> None:
    host = app_image()
    idx = index_of([host_image([file("a", b"a")], architecture=OTHER_ARCH).build(), host])
    import_named(run, idx, "multi:1")
    out = json.loads(run.ok("images", "inspect", "multi:1").stdout)
    assert out["index"] == json.loads(idx.data)
    assert out["manifest"] == json.loads(host.manifest.data)
    assert out["config"] == json.loads(host.config.data)


def test_inspect_of_a_missing_image_fails(run: Cli, busybox: BuiltImage) -> None:
    run.fails("images", "inspect", "missing:1", match="not found")


def test_ref_name_only_entry_is_listed_under_the_base_name(run: Cli) -> None:
    run.ok("images", "import", "--no-unpack", run.write(oci_archive((app_image(), {ANNOTATION_REF_NAME: "v1"}))))
    assert run.names() == ["unknown/unknown:v1"]


def test_ls_lists_the_platform_of_an_index_of_two_same_platform_images_once(run: Cli) -> None:
    """ctr 1.6 prints each platform once, sorted (a set of ``platforms.Format``)."""
    a = host_image([file("a", b"a")])
    b = host_image([file("b", b"b")])
    run.ok("images", "import", "--no-unpack", "--index-name", "idx:1", "-",
           input=docker_archive((a, ["a:1"]), (b, ["b:1"])))
    assert run.image("idx:1")["platforms"] == [HOST_PLATFORM]
    (row,) = [r for r in parse_table(run.ok("images", "ls").stdout) if r["REF"] == "idx:1"]
    assert row["PLATFORMS"] == HOST_PLATFORM
