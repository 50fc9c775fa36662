"""``ctrpy images export``: OCI image-layout archives, as ``ctr images export`` writes them
(index.json annotations, Docker manifest.json, platforms, reproducible tar, atomic output)."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tarfile
from pathlib import Path
from typing import Any

import pytest

from tests.builders import (
    ANNOTATION_IMAGE_NAME,
    MT_DOCKER_MANIFEST,
    MT_OCI_INDEX,
    MT_OCI_MANIFEST,
    BuiltImage,
    IndexBlob,
    Layer,
    OCILayout,
    file,
    index_of,
    read_tar,
)
from tests.helpers import HOST, OTHER_ARCH, THIRD_ARCH, Cli, arch_image, host_image, oci_archive, text_image

BUSYBOX = "docker.io/library/busybox:latest"
ND_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"


def store(run: Cli, item: Any, name: str, *args: str, omit: list[str] | None = None) -> None:
    layout = OCILayout()
    layout.add_manifest(item, {ANNOTATION_IMAGE_NAME: name})
    run.ok("images", "import", "--no-unpack", *args, run.write(layout.tar_bytes(omit_blobs=omit or [])))


def export(run: Cli, *args: str) -> bytes:
    """``images export - ARGS`` (to stdout); returns the archive bytes."""
    return run.ok("images", "export", "-", *args).stdout_bytes


def members(data: bytes) -> dict[str, bytes]:
    return {ti.name: body for ti, body in read_tar(data) if ti.isreg()}


def index_json(data: bytes) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(members(data)["index.json"])
    return out


def blob_names(data: bytes) -> set[str]:
    return {n.rsplit("/", 1)[1] for n in members(data) if n.startswith("blobs/sha256/")}


def hexes(*blobs: Any) -> set[str]:
    return {b.digest.split(":", 1)[1] for b in blobs}


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp") or p.name.startswith("."))


@pytest.fixture
def busybox(run: Cli) -> BuiltImage:
    img = text_image(b"busybox")
    store(run, img, BUSYBOX)
    return img


# --------------------------------------------------------------------------- index.json and oci-layout
def test_export_writes_an_oci_layout(run: Cli, busybox: BuiltImage) -> None:
    files = members(export(run, BUSYBOX))
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    idx = json.loads(files["index.json"])
    assert idx["schemaVersion"] == 2
    assert idx["mediaType"] == MT_OCI_INDEX


def test_index_json_descriptor_is_annotated_with_tag_and_full_name(run: Cli, busybox: BuiltImage) -> None:
    (desc,) = index_json(export(run, BUSYBOX))["manifests"]
    assert desc["mediaType"] == MT_OCI_MANIFEST
    assert desc["digest"] == busybox.manifest.digest
    assert desc["size"] == busybox.manifest.size
    assert desc["annotations"] == {
        "io.containerd.image.name": BUSYBOX,
        "org.opencontainers.image.ref.name": "latest",
    }


@pytest.mark.parametrize(
    ("name", "ref_name"),
    [("localhost:5000/team/app:v1.2", "v1.2"), ("quay.io/a/b:2", "2"), ("x/app", None)],
)
def test_ref_name_is_the_tag_part_of_the_name(run: Cli, name: str, ref_name: str | None) -> None:
    store(run, text_image(), name)
    (desc,) = index_json(export(run, name))["manifests"]
    assert desc["annotations"]["io.containerd.image.name"] == name
    assert desc["annotations"].get("org.opencontainers.image.ref.name") == ref_name


def test_oci_ref_name_overrides_the_ref_name(run: Cli, busybox: BuiltImage) -> None:
    (desc,) = index_json(export(run, "--oci-ref-name", "custom", BUSYBOX))["manifests"]
    assert desc["annotations"]["org.opencontainers.image.ref.name"] == "custom"
    assert desc["annotations"]["io.containerd.image.name"] == BUSYBOX


def test_one_descriptor_per_image_argument_in_order(run: Cli) -> None:
    a, b = text_image(b"a"), text_image(b"b")
    store(run, a, "x/a:1")
    store(run, b, "x/b:1")
    data = export(run, "x/b:1", "x/a:1")
    assert [d["digest"] for d in index_json(data)["manifests"]] == [b.manifest.digest, a.manifest.digest]
    assert blob_names(data) == hexes(*a.blobs(), *b.blobs())


def test_image_is_found_by_its_short_name_and_exported_under_its_full_name(
    run: Cli, busybox: BuiltImage
) -> None:
    (desc,) = index_json(export(run, "busybox"))["manifests"]
    assert desc["annotations"]["io.containerd.image.name"] == BUSYBOX


def test_every_blob_of_the_image_is_written_once_and_verified(run: Cli) -> None:
    a, b = text_image(b"a"), host_image([file("etc/app.txt", b"a")], [file("other", b"b")]).build()
    store(run, a, "x/a:1")
    store(run, b, "x/b:1")  # shares its first layer with a
    data = export(run, "x/a:1", "x/b:1")
    names = [ti.name for ti, _ in read_tar(data)]
    assert len(names) == len(set(names))
    for name, body in members(data).items():
        if name.startswith("blobs/sha256/"):
            assert hashlib.sha256(body).hexdigest() == name.rsplit("/", 1)[1]
    assert blob_names(data) == hexes(*a.blobs(), *b.blobs())


# --------------------------------------------------------------------------- manifest.json
def test_manifest_json_lists_repo_tags_in_familiar_form(run: Cli, busybox: BuiltImage) -> None:
    (entry,) = json.loads(members(export(run, BUSYBOX))["manifest.json"])
    assert entry == {
        "Config": f"blobs/sha256/{busybox.config.hex}",
        "RepoTags": ["busybox:latest"],
        "Layers": [f"blobs/sha256/{layer.hex}" for layer in busybox.layers],
    }


@pytest.mark.parametrize(
    ("name", "tag"),
    [("docker.io/me/app:1", "me/app:1"), ("registry.local:5000/a/b:2", "registry.local:5000/a/b:2")],
)
def test_manifest_json_repo_tag_forms(run: Cli, name: str, tag: str) -> None:
    store(run, text_image(), name)
    (entry,) = json.loads(members(export(run, name))["manifest.json"])
    assert entry["RepoTags"] == [tag]


def test_two_names_of_one_manifest_share_one_manifest_json_entry(run: Cli, busybox: BuiltImage) -> None:
    run.ok("images", "tag", BUSYBOX, "docker.io/library/busybox:1.36")
    (entry,) = json.loads(members(export(run, BUSYBOX, "docker.io/library/busybox:1.36"))["manifest.json"])
    assert entry["RepoTags"] == ["busybox:latest", "busybox:1.36"]


def test_skip_manifest_json(run: Cli, busybox: BuiltImage) -> None:
    files = members(export(run, "--skip-manifest-json", BUSYBOX))
    assert "manifest.json" not in files
    assert {"index.json", "oci-layout"} <= set(files)


# --------------------------------------------------------------------------- --manifest
def test_manifest_digest_is_exported_with_the_given_type(run: Cli, busybox: BuiltImage) -> None:
    data = export(run, "--manifest", busybox.manifest.digest, "--manifest-type", MT_OCI_MANIFEST)
    (desc,) = index_json(data)["manifests"]
    assert desc == {"mediaType": MT_OCI_MANIFEST, "digest": busybox.manifest.digest, "size": busybox.manifest.size}
    assert blob_names(data) == hexes(*busybox.blobs())


def test_manifest_digest_with_a_name(run: Cli, busybox: BuiltImage) -> None:
    data = export(run, "--manifest", busybox.manifest.digest, "x/named:3")
    (desc,) = index_json(data)["manifests"]
    assert desc["annotations"] == {
        "io.containerd.image.name": "x/named:3", "org.opencontainers.image.ref.name": "3",
    }


def test_manifest_type_is_written_as_given(run: Cli) -> None:
    img = host_image([file("d", b"docker")], media_types="docker").build()
    store(run, img, "x/docker:1")
    data = export(run, "--manifest", img.manifest.digest, "--manifest-type", MT_DOCKER_MANIFEST)
    (desc,) = index_json(data)["manifests"]
    assert desc["mediaType"] == MT_DOCKER_MANIFEST
    assert blob_names(data) == hexes(*img.blobs())


def test_manifest_digest_not_in_the_store_fails(run: Cli, busybox: BuiltImage, workdir: Path) -> None:
    out = workdir / "out.tar"
    run.fails("images", "export", "--manifest", "sha256:" + "0" * 64, str(out), match="not found")
    assert not out.exists()
    assert leftovers(workdir) == []


def test_invalid_manifest_digest_fails(run: Cli, busybox: BuiltImage, workdir: Path) -> None:
    out = workdir / "out.tar"
    run.fails("images", "export", "--manifest", "sha256:../../x", str(out), match="invalid digest")
    assert not out.exists()


# --------------------------------------------------------------------------- platforms
@pytest.fixture
def multi(run: Cli) -> tuple[IndexBlob, BuiltImage, BuiltImage]:
    host, other = text_image(), arch_image(OTHER_ARCH)
    idx = index_of([host, other])
    store(run, idx, "x/multi:1", "--all-platforms")
    return idx, host, other


def test_export_of_an_index_writes_the_host_platform_by_default(
    run: Cli, multi: tuple[IndexBlob, BuiltImage, BuiltImage]
) -> None:
    idx, host, _other = multi
    data = export(run, "x/multi:1")
    (desc,) = index_json(data)["manifests"]
    assert (desc["mediaType"], desc["digest"]) == (MT_OCI_INDEX, idx.digest)
    assert blob_names(data) == hexes(idx, *host.blobs())


def test_platform_selects_what_is_written(run: Cli, multi: tuple[IndexBlob, BuiltImage, BuiltImage]) -> None:
    idx, _host, other = multi
    data = export(run, "--platform", f"linux/{OTHER_ARCH}", "x/multi:1")
    assert index_json(data)["manifests"][0]["digest"] == idx.digest
    assert blob_names(data) == hexes(idx, *other.blobs())
    (entry,) = json.loads(members(data)["manifest.json"])
    assert entry["Config"] == f"blobs/sha256/{other.config.hex}"


def test_platform_is_repeatable(run: Cli, multi: tuple[IndexBlob, BuiltImage, BuiltImage]) -> None:
    idx, host, other = multi
    data = export(run, "--platform", f"linux/{OTHER_ARCH}", "--platform", f"linux/{HOST.architecture}", "x/multi:1")
    assert blob_names(data) == hexes(idx, *host.blobs(), *other.blobs())


def test_all_platforms_writes_every_platform(run: Cli, multi: tuple[IndexBlob, BuiltImage, BuiltImage]) -> None:
    idx, host, other = multi
    assert blob_names(export(run, "--all-platforms", "x/multi:1")) == hexes(idx, *host.blobs(), *other.blobs())


def test_all_platforms_with_a_platform_missing_from_the_store_fails_and_writes_nothing(
    run: Cli, workdir: Path
) -> None:
    host, other = text_image(), arch_image(OTHER_ARCH)
    store(run, index_of([host, other]), "x/partial:1", omit=[b.digest for b in other.blobs()])
    out = workdir / "out.tar"
    run.fails(
        "images", "export", "--all-platforms", str(out), "x/partial:1",
        match=(other.manifest.digest, "--all-platforms"),
    )
    assert not out.exists()
    assert leftovers(workdir) == []


def test_default_export_of_a_partial_index_needs_only_the_host_content(run: Cli) -> None:
    host, other = text_image(), arch_image(OTHER_ARCH)
    idx = index_of([host, other])
    store(run, idx, "x/partial:1", omit=[b.digest for b in other.blobs()])
    assert blob_names(export(run, "x/partial:1")) == hexes(idx, *host.blobs())


@pytest.mark.parametrize("arch", [OTHER_ARCH, THIRD_ARCH])
def test_export_for_a_platform_with_no_content_in_the_store_fails(run: Cli, workdir: Path, arch: str) -> None:
    host, other = text_image(), arch_image(OTHER_ARCH)
    store(run, index_of([host, other]), "x/partial:1", omit=[b.digest for b in other.blobs()])
    out = workdir / "out.tar"
    run.fails("images", "export", "--platform", f"linux/{arch}", str(out), "x/partial:1", match=f"linux/{arch}")
    assert not out.exists()


def test_invalid_platform_fails(run: Cli, busybox: BuiltImage, workdir: Path) -> None:
    run.fails("images", "export", "--platform", "linux//x", str(workdir / "out.tar"), BUSYBOX,
              match="invalid platform")
    assert leftovers(workdir) == [] and not (workdir / "out.tar").exists()


# --------------------------------------------------------------------------- non-distributable layers
@pytest.fixture
def restricted(run: Cli) -> tuple[BuiltImage, Any]:
    img = host_image([file("base", b"base")], Layer(content=[file("win", b"restricted")], media_type=ND_GZIP)).build()
    store(run, img, "x/nd:1")
    return img, img.layers[1]


def test_non_distributable_layers_are_exported_by_default(run: Cli, restricted: tuple[BuiltImage, Any]) -> None:
    img, _nd = restricted
    assert blob_names(export(run, "x/nd:1")) == hexes(*img.blobs())


def test_skip_non_distributable_leaves_them_out(run: Cli, restricted: tuple[BuiltImage, Any]) -> None:
    img, nd = restricted
    data = export(run, "--skip-non-distributable", "x/nd:1")
    assert blob_names(data) == hexes(*img.blobs()) - hexes(nd)


# --------------------------------------------------------------------------- the tar itself
def test_entries_are_sorted_by_name(run: Cli, multi: tuple[IndexBlob, BuiltImage, BuiltImage]) -> None:
    names = [ti.name for ti, _ in read_tar(export(run, "--all-platforms", "x/multi:1"))]
    assert names == sorted(names)
    assert names[:2] == ["blobs", "blobs/sha256"] or names[:2] == ["blobs/", "blobs/sha256/"]


def test_entries_have_mtime_0_and_owner_0(run: Cli, busybox: BuiltImage) -> None:
    for ti, _ in read_tar(export(run, BUSYBOX)):
        assert (ti.mtime, ti.uid, ti.gid, ti.uname, ti.gname) == (0, 0, 0, "", ""), ti.name


def test_files_are_mode_0444_and_directories_0755(run: Cli, busybox: BuiltImage) -> None:
    for ti, _ in read_tar(export(run, BUSYBOX)):
        if ti.isdir():
            assert ti.mode == 0o755, ti.name
        else:
            assert ti.isreg(), ti.name
            assert ti.mode == 0o444, ti.name


def test_output_is_an_uncompressed_tar_padded_to_whole_records(run: Cli, busybox: BuiltImage) -> None:
    data = export(run, BUSYBOX)
    assert len(data) % tarfile.RECORDSIZE == 0
    assert data[-1024:] == b"\0" * 1024


def test_export_is_byte_reproducible(run: Cli, busybox: BuiltImage) -> None:
    assert export(run, BUSYBOX) == export(run, BUSYBOX)


def test_export_from_another_store_gives_the_same_bytes(run: Cli, busybox: BuiltImage, tmp_path: Path) -> None:
    first = export(run, BUSYBOX)
    other = Cli(tmp_path / "other-root", run.workdir)
    store(other, busybox, BUSYBOX)
    assert export(other, BUSYBOX) == first


def test_stdout_output_equals_file_output(run: Cli, busybox: BuiltImage, workdir: Path) -> None:
    out = workdir / "out.tar"
    r = run.ok("images", "export", str(out), BUSYBOX)
    assert r.stdout == ""
    assert out.read_bytes() == export(run, BUSYBOX)
    assert leftovers(workdir) == []


def test_export_to_a_relative_path_writes_into_the_working_directory(
    run: Cli, busybox: BuiltImage, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(workdir)
    run.ok("images", "export", "out.tar", BUSYBOX)
    assert (workdir / "out.tar").read_bytes() == export(run, BUSYBOX)


def test_exported_file_mode_follows_the_umask(run: Cli, busybox: BuiltImage, workdir: Path) -> None:
    out = workdir / "out.tar"
    old = os.umask(0o022)
    try:
        run.ok("images", "export", str(out), BUSYBOX)
    finally:
        os.umask(old)
    assert out.stat().st_mode & 0o777 == 0o644


# --------------------------------------------------------------------------- failures
def test_export_of_a_missing_image_fails_and_writes_nothing(run: Cli, busybox: BuiltImage, workdir: Path) -> None:
    out = workdir / "out.tar"
    before = run.state()
    run.fails("images", "export", str(out), BUSYBOX, "missing:1", match=("missing:1", "not found"))
    assert not out.exists()
    assert leftovers(workdir) == []
    run.assert_unchanged(before)


def test_export_without_an_image_is_a_usage_error(run: Cli, workdir: Path) -> None:
    run.usage_error("images", "export", str(workdir / "out.tar"))
    assert not (workdir / "out.tar").exists()


def test_export_into_a_missing_directory_fails(run: Cli, busybox: BuiltImage, workdir: Path) -> None:
    run.fails("images", "export", str(workdir / "no" / "dir" / "out.tar"), BUSYBOX, match=str(workdir / "no" / "dir"))
    assert not (workdir / "no").exists()


def test_export_onto_a_directory_fails_and_leaves_no_temp_file(run: Cli, busybox: BuiltImage, workdir: Path) -> None:
    target = workdir / "a-dir"
    target.mkdir()
    run.fails("images", "export", str(target), BUSYBOX, match=str(target))
    assert target.is_dir() and list(target.iterdir()) == []
    assert leftovers(workdir) == []


def corrupt(root: Path, blob: Any, data: bytes | None = None) -> None:
    path = root / "content" / "blobs" / "sha256" / blob.hex
    path.chmod(0o644)
    if data is None:
        body = bytearray(path.read_bytes())
        body[len(body) // 2] ^= 0xFF
        data = bytes(body)
    path.write_bytes(data)


@pytest.mark.parametrize("damage", ["flipped", "truncated", "extended"])
def test_blob_corrupted_in_the_store_fails_export_and_leaves_no_partial_file(
    run: Cli, busybox: BuiltImage, root: Path, workdir: Path, damage: str
) -> None:
    layer = busybox.layers[1]
    data = {"flipped": None, "truncated": layer.data[:-7], "extended": layer.data + b"tail"}[damage]
    corrupt(root, layer, data)
    out = workdir / "out.tar"
    run.fails("images", "export", str(out), BUSYBOX, match=layer.digest)
    assert not out.exists()
    assert leftovers(workdir) == []


def test_corrupted_manifest_in_the_store_fails_export(run: Cli, busybox: BuiltImage, root: Path, workdir: Path) -> None:
    corrupt(root, busybox.manifest)
    run.fails("images", "export", str(workdir / "out.tar"), BUSYBOX, match=busybox.manifest.digest)
    assert not (workdir / "out.tar").exists()


def test_blob_corrupted_in_the_store_fails_export_to_stdout(run: Cli, busybox: BuiltImage, root: Path) -> None:
    corrupt(root, busybox.layers[0])
    run.fails("images", "export", "-", BUSYBOX, match=busybox.layers[0].digest, stdout=None)


def test_failed_export_leaves_an_existing_out_file_as_it_was(
    run: Cli, busybox: BuiltImage, root: Path, workdir: Path
) -> None:
    out = workdir / "out.tar"
    out.write_bytes(b"previous content")
    corrupt(root, busybox.layers[0])
    run.fails("images", "export", str(out), BUSYBOX, match=busybox.layers[0].digest)
    assert out.read_bytes() == b"previous content"
    assert leftovers(workdir) == []


def test_export_of_an_image_with_a_blob_removed_from_the_store_fails(
    run: Cli, busybox: BuiltImage, workdir: Path
) -> None:
    run.ok("content", "rm", busybox.config.digest)
    out = workdir / "out.tar"
    run.fails("images", "export", str(out), BUSYBOX, match=(busybox.config.digest, "not found"))
    assert not out.exists()


# --------------------------------------------------------------------------- round trip
def reimport(run: Cli, data: bytes, tmp_path: Path, *args: str) -> Cli:
    fresh = Cli(tmp_path / "fresh-root", run.workdir)
    fresh.ok("images", "import", "--no-unpack", *args, fresh.write(data))
    return fresh


def test_round_trip_gives_the_same_digests(run: Cli, busybox: BuiltImage, tmp_path: Path) -> None:
    fresh = reimport(run, export(run, BUSYBOX), tmp_path)
    assert fresh.names() == [BUSYBOX]
    assert fresh.image(BUSYBOX)["target"] == run.image(BUSYBOX)["target"]
    assert fresh.digests() == run.digests()


def test_round_trip_of_a_multi_platform_index(
    run: Cli, multi: tuple[IndexBlob, BuiltImage, BuiltImage], tmp_path: Path
) -> None:
    fresh = reimport(run, export(run, "--all-platforms", "x/multi:1"), tmp_path, "--all-platforms")
    assert fresh.image("x/multi:1")["target"] == run.image("x/multi:1")["target"]
    assert fresh.digests() == run.digests()


def test_round_trip_of_several_images_keeps_every_name(run: Cli, tmp_path: Path) -> None:
    for n in ("a", "b", "c"):
        store(run, text_image(n.encode()), f"registry.local/x/{n}:v1")
    names = run.names()
    fresh = reimport(run, export(run, *names), tmp_path)
    assert fresh.names() == names
    for name in names:
        assert fresh.image(name)["target"] == run.image(name)["target"]


def test_export_of_a_reimported_export_is_byte_identical(run: Cli, tmp_path: Path) -> None:
    img = text_image(b"ctr")
    layout_data = oci_archive((img, {ANNOTATION_IMAGE_NAME: "docker.io/library/ctr:1"}))
    run.ok("images", "import", "--no-unpack", run.write(layout_data))
    first = export(run, "docker.io/library/ctr:1")
    fresh = reimport(run, first, tmp_path)
    assert export(fresh, "docker.io/library/ctr:1") == first


# --------------------------------------------------------------------------- what OUT is
def test_export_for_a_platform_a_single_manifest_image_is_not_for_is_an_error(run: Cli, workdir: Path) -> None:
    """As for import: an image with no manifest for ``--platform P`` is one error naming P."""
    store(run, host_image([file("a", b"a")]).build(), "docker.io/library/plat:v1")
    out = workdir / "out.tar"
    run.fails("images", "export", "--platform", f"linux/{OTHER_ARCH}", str(out), "plat:v1",
              match=f"linux/{OTHER_ARCH}")
    assert not out.exists()
    assert leftovers(workdir) == []



def test_a_platform_the_image_lacks_names_the_image_once_and_both_platform_flags(run: Cli) -> None:
    store(run, host_image([file("a", b"a")]).build(), "docker.io/library/plat:v1")
    r = run.fails("images", "export", "--platform", f"linux/{OTHER_ARCH}", str(run.workdir / "o.tar"), "plat:v1")
    line = r.stderr.strip()
    assert line.count("docker.io/library/plat:v1") == 1, line
    assert line.endswith("(use --platform or --all-platforms)"), line


def test_export_onto_a_directory_names_out_and_not_a_temp_file(run: Cli, busybox: BuiltImage, workdir: Path) -> None:
    out = workdir / "outdir"
    out.mkdir()
    r = run.fails("images", "export", str(out), BUSYBOX, match=str(out))
    assert ".tmp" not in r.stderr


def test_export_through_a_symlink_writes_its_target_and_keeps_the_link(
    run: Cli, busybox: BuiltImage, workdir: Path
) -> None:
    real, link = workdir / "real.tar", workdir / "link.tar"
    link.symlink_to(real)
    run.ok("images", "export", str(link), BUSYBOX)
    assert link.is_symlink()
    assert real.read_bytes() == export(run, BUSYBOX)


@pytest.mark.skipif(os.geteuid() != 0, reason="mknod needs root")
def test_export_to_a_character_device_writes_through_it(run: Cli, busybox: BuiltImage, workdir: Path) -> None:
    null = workdir / "null"
    os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # a private /dev/null
    run.ok("images", "export", str(null), BUSYBOX)
    assert stat.S_ISCHR(null.lstat().st_mode)
    assert leftovers(workdir) == []
