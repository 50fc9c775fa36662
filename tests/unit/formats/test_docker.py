"""The ``docker.v1.2`` importer: docker save (classic and 25+), podman save, skopeo docker-archive.

Archives are built in code (``tests.builders``); the expected values are computed here from
the builders' own blobs, never from ctrpy.
"""

from __future__ import annotations

import gzip
import io
import json
import lzma
import tarfile
from pathlib import Path
from typing import Any

import pytest

import ctrpy.formats.docker as docker_format
from ctrpy.client import Client
from ctrpy.content.blobs import BlobStore
from ctrpy.errors import CtrpyError, DigestMismatch, InvalidArchive, UnsupportedFormat
from ctrpy.formats import ImportContext, ImportOptions, ImportResult, get_importer
from ctrpy.oci import Matcher, mediatypes
from ctrpy.progress import Event, Warn
from tests.builders import (
    MT_DOCKER_CONFIG,
    MT_DOCKER_LAYER,
    MT_DOCKER_LAYER_GZIP,
    MT_DOCKER_LAYER_ZSTD,
    MT_DOCKER_MANIFEST,
    MT_OCI_INDEX,
    BuiltImage,
    Entry,
    Image,
    Layer,
    compress,
    decompress,
    digest_hex,
    docker_save_tar,
    file,
    go_json,
    layer_tar,
    sha256_digest,
)
from tests.helpers import HOST, OTHER_ARCH, host_image, raises_naming

VARIANTS = ["classic", "docker25", "podman"]


# --------------------------------------------------------------------------- helpers
def base_image() -> Image:
    return host_image([file("etc/base", b"base")])


def app_image() -> Image:
    return host_image([file("etc/base", b"base")], [file("app/bin", b"app")])


def client(tmp_path: Path, namespace: str = "default", events: list[Event] | None = None) -> Client:
    sink = events.append if events is not None else (lambda _e: None)
    return Client(tmp_path / "root", namespace, progress=sink)


def do_import(c: Client, data: bytes, fmt: str = "docker.v1.2", **opts: Any) -> list[str]:
    return [img.name for img in c.import_archive(io.BytesIO(data), fmt, ImportOptions(**opts))]


def import_result(tmp_path: Path, data: bytes, fmt: str = "docker.v1.2", **opts: Any) -> ImportResult:
    """The importer alone, on a bare blob store: what it returns, before any record is made."""
    ctx = ImportContext(BlobStore(tmp_path / "content"), ImportOptions(**opts))
    return get_importer(fmt).import_stream(io.BytesIO(data), ctx)


def manifest_of(c: Client, name: str) -> dict[str, Any]:
    img = c.image(name)
    return c.content.read_json(img.target.digest)  # type: ignore[no-any-return]


def expected_manifest(built: BuiltImage, layer_types: list[str]) -> bytes:
    """The schema2 manifest containerd's importer writes for ``built`` (Go json.Marshal)."""
    return go_json({
        "schemaVersion": 2,
        "mediaType": MT_DOCKER_MANIFEST,
        "config": {"mediaType": MT_DOCKER_CONFIG, "digest": built.config.digest, "size": built.config.size},
        "layers": [
            {"mediaType": mt, "digest": b.digest, "size": b.size}
            for b, mt in zip(built.layers, layer_types, strict=True)
        ],
    })


def _podman_names(built: BuiltImage) -> tuple[str, list[str]]:
    """Member names of the config and layers in a podman-style archive."""
    return f"{built.config.hex}.json", [f"{digest_hex(b.digest)}.tar" for b in built.layers]


def assert_store_empty(c: Client) -> None:
    assert c.images.list() == []
    assert c.content.list() == []


# --------------------------------------------------------------------------- variants
@pytest.mark.parametrize("variant", VARIANTS)
def test_each_writer_variant_imports_under_its_normalised_repo_tag(tmp_path: Path, variant: str) -> None:
    data = docker_save_tar([(app_image(), ["busybox:latest"])], variant=variant)  # type: ignore[arg-type]
    c = client(tmp_path)
    assert do_import(c, data) == ["docker.io/library/busybox:latest"]
    img = c.image("busybox")
    assert img.target.media_type == MT_DOCKER_MANIFEST


def test_the_manifest_is_the_one_containerd_writes_for_the_same_archive(tmp_path: Path) -> None:
    built = app_image().build(compression="none")
    data = docker_save_tar([(built, ["app:v1"])])
    c = client(tmp_path)
    do_import(c, data)
    want = expected_manifest(built, [MT_DOCKER_LAYER, MT_DOCKER_LAYER])
    img = c.image("app:v1")
    assert img.target.digest == sha256_digest(want)
    assert c.content.read_all(img.target.digest) == want


def test_every_variant_of_one_image_gives_the_same_manifest_digest(tmp_path: Path) -> None:
    built = app_image().build(compression="none")
    digests = set()
    for variant in VARIANTS:
        res = import_result(tmp_path / variant, docker_save_tar([(built, ["app:v1"])], variant=variant))  # type: ignore[arg-type]
        digests.add(res.images[0].target.digest)
    assert len(digests) == 1


def test_the_config_is_stored_under_its_own_digest(tmp_path: Path) -> None:
    built = app_image().build(compression="none")
    c = client(tmp_path)
    do_import(c, docker_save_tar([(built, ["app:v1"])]))
    cfg = manifest_of(c, "app:v1")["config"]
    assert cfg["digest"] == built.config.digest
    assert c.content.read_all(built.config.digest) == built.config.data


def test_podman_multi_image_archive_creates_every_image(tmp_path: Path) -> None:
    data = docker_save_tar(
        [(base_image(), ["docker.io/library/base:1"]), (app_image(), ["localhost/app:2"])],
        variant="podman",
    )
    c = client(tmp_path)
    assert do_import(c, data) == ["docker.io/library/base:1", "localhost/app:2"]


def test_docker25_archive_is_read_as_oci_by_auto_and_as_docker_when_forced(tmp_path: Path) -> None:
    data = docker_save_tar([(app_image(), ["app:v1"])], variant="docker25")
    auto = import_result(tmp_path / "auto", data, "auto")
    forced = import_result(tmp_path / "forced", data, "docker.v1.2")
    assert auto.images[0].target.media_type == mediatypes.OCI_MANIFEST
    assert forced.images[0].target.media_type == MT_DOCKER_MANIFEST


def test_layer_symlinks_to_earlier_members_resolve(tmp_path: Path) -> None:
    base = base_image().build(compression="none")
    # app's first layer is base's layer under another v1 id: docker writes it as a symlink
    app = host_image([file("etc/base", b"base")], [file("x", b"x")]).build(compression="none")
    data = docker_save_tar([(base, ["base:1"]), (app, ["app:1"])], variant="classic", layer_symlinks=True)
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        assert any(m.issym() and m.name.endswith("layer.tar") for m in tf.getmembers())
    c = client(tmp_path)
    do_import(c, data)
    layers = manifest_of(c, "app:1")["layers"]
    assert [x["digest"] for x in layers] == [b.digest for b in app.layers]


def test_a_layer_may_be_a_hardlink_to_another_member(tmp_path: Path) -> None:
    built = base_image().build(compression="none")
    config, (layer,) = _podman_names(built)
    item = [{"Config": config, "RepoTags": ["a:1"], "Layers": ["linked/layer.tar"]}]
    data = docker_save_tar(
        [(built, ["a:1"])],
        variant="podman",
        manifest_json_override=json.dumps(item).encode(),
        extra_members=[Entry("linked/layer.tar", "hardlink", linkname=layer, mtime=0)],
    )
    c = client(tmp_path)
    do_import(c, data)
    assert [x["digest"] for x in manifest_of(c, "a:1")["layers"]] == [built.layers[0].digest]


def test_the_manifest_json_may_come_first_in_the_archive(tmp_path: Path) -> None:
    data = docker_save_tar([(app_image(), ["app:v1"])], order="manifest-first")
    c = client(tmp_path)
    assert do_import(c, data) == ["docker.io/library/app:v1"]


def test_a_gzip_compressed_archive_is_read(tmp_path: Path) -> None:
    data = docker_save_tar([(app_image(), ["app:v1"])], compression="gzip")
    c = client(tmp_path)
    assert do_import(c, data) == ["docker.io/library/app:v1"]


# --------------------------------------------------------------------------- layer compression
@pytest.mark.parametrize(
    ("compression", "media_type"),
    [("none", MT_DOCKER_LAYER), ("gzip", MT_DOCKER_LAYER_GZIP), ("zstd", MT_DOCKER_LAYER_ZSTD)],
)
def test_layer_media_type_follows_the_compression_of_the_layer_file(
    tmp_path: Path, compression: str, media_type: str
) -> None:
    built = app_image().build(compression=compression)  # type: ignore[arg-type]
    c = client(tmp_path)
    do_import(c, docker_save_tar([(built, ["app:v1"])]))
    layers = manifest_of(c, "app:v1")["layers"]
    assert [x["mediaType"] for x in layers] == [media_type, media_type]
    assert [x["digest"] for x in layers] == [b.digest for b in built.layers]


def test_mixed_layer_compressions_each_get_their_own_media_type(tmp_path: Path) -> None:
    img = host_image(
        Layer([file("a", b"a")], compression="gzip"),
        Layer([file("b", b"b")], compression="zstd"),
        Layer([file("c", b"c")], compression="none"),
    )
    c = client(tmp_path)
    do_import(c, docker_save_tar([(img.build(), ["app:v1"])]))
    types = [x["mediaType"] for x in manifest_of(c, "app:v1")["layers"]]
    assert types == [MT_DOCKER_LAYER_GZIP, MT_DOCKER_LAYER_ZSTD, MT_DOCKER_LAYER]


def test_a_compressed_layer_whose_content_does_not_match_its_diff_id_is_refused(tmp_path: Path) -> None:
    img = host_image(Layer([file("a", b"a")], compression="gzip", diff_id="sha256:" + "0" * 64))
    c = client(tmp_path)
    with raises_naming(DigestMismatch, "app:v1", sha256_digest(layer_tar([file("a", b"a")])), "sha256:" + "0" * 64):
        do_import(c, docker_save_tar([(img.build(), ["app:v1"])]))
    assert_store_empty(c)


def test_an_uncompressed_layer_whose_digest_is_not_its_diff_id_is_refused(tmp_path: Path) -> None:
    img = host_image(Layer([file("a", b"a")], compression="none", diff_id="sha256:" + "1" * 64))
    c = client(tmp_path)
    with raises_naming(DigestMismatch, "sha256:" + "1" * 64):
        do_import(c, docker_save_tar([(img.build(), ["app:v1"])]))
    assert_store_empty(c)


def test_an_xz_compressed_layer_is_reported_as_an_unsupported_compression(tmp_path: Path) -> None:
    tar = layer_tar([file("a", b"a")])
    img = host_image(Layer(tar, blob=lzma.compress(tar), diff_id=sha256_digest(tar)))
    c = client(tmp_path)
    with raises_naming(UnsupportedFormat, "xz"):
        do_import(c, docker_save_tar([(img.build(), ["app:v1"])]))
    assert_store_empty(c)


# --------------------------------------------------------------------------- names
@pytest.mark.parametrize(
    ("tag", "name"),
    [
        ("busybox:latest", "docker.io/library/busybox:latest"),
        ("myapp:v1", "docker.io/library/myapp:v1"),
        ("team/app:v2", "docker.io/team/app:v2"),
        ("registry.local:5000/team/app:v1", "registry.local:5000/team/app:v1"),
        ("docker.io/library/busybox:1.36", "docker.io/library/busybox:1.36"),
    ],
)
def test_repo_tags_are_normalised_like_docker_references(tmp_path: Path, tag: str, name: str) -> None:
    c = client(tmp_path)
    assert do_import(c, docker_save_tar([(base_image(), [tag])])) == [name]


def test_every_repo_tag_of_one_image_names_the_same_manifest(tmp_path: Path) -> None:
    c = client(tmp_path)
    names = do_import(c, docker_save_tar([(base_image(), ["a:1", "b:2"])]))
    assert names == ["docker.io/library/a:1", "docker.io/library/b:2"]
    assert c.image("a:1").target == c.image("b:2").target


@pytest.mark.parametrize("tags", [None, []], ids=["null", "empty"])
def test_an_untagged_image_is_named_import_date_at_digest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tags: list[str] | None
) -> None:
    monkeypatch.setattr(docker_format, "_today", lambda: "2024-05-06")
    c = client(tmp_path)
    names = do_import(c, docker_save_tar([(base_image(), tags)], variant="classic"))
    dgst = c.images.list()[0].target.digest
    assert names == [f"import-2024-05-06@{dgst}"]


def test_an_untagged_image_takes_the_base_name_when_one_is_given(tmp_path: Path) -> None:
    c = client(tmp_path)
    names = do_import(
        c, docker_save_tar([(base_image(), None)]), base_name="example.com/mine"
    )
    dgst = c.images.list()[0].target.digest
    assert names == [f"example.com/mine@{dgst}"]


def test_digests_option_adds_a_digest_name_for_tagged_images(tmp_path: Path) -> None:
    c = client(tmp_path)
    names = do_import(
        c, docker_save_tar([(base_image(), ["a:1"])]), digests=True, base_name="base"
    )
    dgst = c.image("a:1").target.digest
    assert names == ["docker.io/library/a:1", f"base@{dgst}"]


def test_skip_digest_for_named_leaves_tagged_images_with_their_tags_only(tmp_path: Path) -> None:
    c = client(tmp_path)
    names = do_import(c, docker_save_tar([(base_image(), ["a:1"])]), digests=True, skip_digest_for_named=True)
    assert names == ["docker.io/library/a:1"]


def test_one_tag_on_two_different_images_is_refused(tmp_path: Path) -> None:
    c = client(tmp_path)
    with raises_naming(InvalidArchive, "docker.io/library/x:1"):
        do_import(c, docker_save_tar([(base_image(), ["x:1"]), (app_image(), ["x:1"])]))
    assert_store_empty(c)


def test_an_invalid_repo_tag_is_refused(tmp_path: Path) -> None:
    c = client(tmp_path)
    with raises_naming(InvalidArchive, "manifest.json", "Not Valid:1"):
        do_import(c, docker_save_tar([(base_image(), ["Not Valid:1"])]))
    assert_store_empty(c)


# --------------------------------------------------------------------------- platforms, index
def test_an_image_for_another_platform_is_skipped_with_a_warning(tmp_path: Path) -> None:
    events: list[Event] = []
    c = client(tmp_path, events=events)
    names = do_import(c, docker_save_tar([
        (host_image([file("a")], architecture=OTHER_ARCH), ["a:1"]),
        (host_image([file("b")]), ["b:1"]),
    ]))
    assert names == ["docker.io/library/b:1"]
    warnings = [e.message for e in events if isinstance(e, Warn)]
    assert len(warnings) == 1
    assert warnings[0].startswith(f"skipping docker.io/library/a:1: the image is for linux/{OTHER_ARCH}")


def test_all_platforms_imports_an_image_for_another_platform(tmp_path: Path) -> None:
    c = client(tmp_path)
    data = docker_save_tar([(host_image([file("a")], architecture=OTHER_ARCH), ["a:1"])])
    assert do_import(c, data, matcher=Matcher(all_platforms=True)) == ["docker.io/library/a:1"]


def test_several_images_get_an_index_of_the_archive_with_platforms_and_names(tmp_path: Path) -> None:
    base, app = base_image().build(compression="none"), app_image().build(compression="none")
    other = host_image([file("other")]).build(compression="none")
    res = import_result(tmp_path, docker_save_tar([(base, ["base:1"]), (app, ["app:1", "app:2"]), (other, None)]))
    image_blobs = {i.target.digest for i in res.images} | {
        b.digest for built in (base, app, other) for b in (built.config, *built.layers)
    }
    (index_digest,) = set(res.blobs) - image_blobs
    index = json.loads((tmp_path / "content/blobs/sha256" / digest_hex(index_digest)).read_bytes())
    assert index["mediaType"] == MT_OCI_INDEX
    entries = index["manifests"]
    assert [e.get("annotations", {}).get(mediatypes.ANNOTATION_IMAGE_NAME) for e in entries] == [
        "docker.io/library/base:1", "docker.io/library/app:1", "docker.io/library/app:2", None,
    ]
    assert [e.get("annotations", {}).get(mediatypes.ANNOTATION_REF_NAME) for e in entries] == ["1", "1", "2", None]
    assert [e["digest"] for e in entries[1:3]] == [res.images[1].target.digest] * 2
    assert all(e["platform"] == HOST.to_json() for e in entries)
    assert all(e["mediaType"] == MT_DOCKER_MANIFEST for e in entries)


def test_a_single_image_gets_no_index_unless_an_index_name_is_asked_for(tmp_path: Path) -> None:
    built = base_image().build(compression="none")
    res = import_result(tmp_path, docker_save_tar([(built, ["base:1"])]))
    manifest = res.images[0].target.digest
    assert set(res.blobs) == {manifest, built.config.digest, *(b.digest for b in built.layers)}


def test_index_name_records_an_image_for_the_archive_index(tmp_path: Path) -> None:
    c = client(tmp_path)
    names = do_import(c, docker_save_tar([(base_image(), ["base:1"])]), index_name="archive:all")
    assert names == ["docker.io/library/base:1", "archive:all"]
    index = c.content.read_json(c.image("archive:all").target.digest)
    assert c.image("archive:all").target.media_type == MT_OCI_INDEX
    assert [e["digest"] for e in index["manifests"]] == [c.image("base:1").target.digest]


def test_importing_the_same_archive_twice_gives_the_same_digests(tmp_path: Path) -> None:
    data = docker_save_tar([(base_image(), ["base:1"]), (app_image(), ["app:1"])])
    first = import_result(tmp_path / "one", data)
    second = import_result(tmp_path / "two", data)
    assert first.images == second.images
    assert first.blobs == second.blobs


# --------------------------------------------------------------------------- --compress-blobs
def test_compress_blobs_gzips_uncompressed_layers_and_labels_them(tmp_path: Path) -> None:
    built = app_image().build(compression="none")
    c = client(tmp_path)
    do_import(c, docker_save_tar([(built, ["app:v1"])]), compress_blobs=True)
    layers = manifest_of(c, "app:v1")["layers"]
    assert [x["mediaType"] for x in layers] == [MT_DOCKER_LAYER_GZIP] * 2
    for desc, tar_blob, diff_id in zip(layers, built.layers, built.diff_ids, strict=True):
        blob = c.content.read_all(desc["digest"], limit=1 << 30)
        assert decompress(blob) == tar_blob.data
        assert c.content.info(desc["digest"]).labels == {mediatypes.LABEL_UNCOMPRESSED: diff_id}


def test_compress_blobs_keeps_already_compressed_layers_as_they_are(tmp_path: Path) -> None:
    built = app_image().build(compression="zstd")
    c = client(tmp_path)
    do_import(c, docker_save_tar([(built, ["app:v1"])]), compress_blobs=True)
    assert [x["digest"] for x in manifest_of(c, "app:v1")["layers"]] == [b.digest for b in built.layers]


def test_compress_blobs_gives_the_same_digests_in_a_fresh_store(tmp_path: Path) -> None:
    data = docker_save_tar([(app_image().build(compression="none"), ["app:v1"])])
    one = import_result(tmp_path / "one", data, compress_blobs=True)
    two = import_result(tmp_path / "two", data, compress_blobs=True)
    assert one.images == two.images


def _store_labelled(c: Client, blob: bytes, diff_id: str) -> str:
    return c.content.ingest(io.BytesIO(blob), labels={mediatypes.LABEL_UNCOMPRESSED: diff_id}).digest


def test_compress_blobs_reuses_a_compressed_blob_from_any_namespace(tmp_path: Path) -> None:
    built = host_image([file("a", b"a" * 1000)]).build(compression="none")
    tar = built.layers[0].data
    elsewhere = gzip.compress(tar, compresslevel=9, mtime=12345)  # not what ctrpy would write
    existing = _store_labelled(client(tmp_path, "other"), elsewhere, built.diff_ids[0])
    c = client(tmp_path)
    do_import(c, docker_save_tar([(built, ["app:v1"])]), compress_blobs=True)
    (layer,) = manifest_of(c, "app:v1")["layers"]
    assert layer == {"mediaType": MT_DOCKER_LAYER_GZIP, "digest": existing, "size": len(elsewhere)}
    assert c.content.info(existing).labels == {mediatypes.LABEL_UNCOMPRESSED: built.diff_ids[0]}


def test_compress_blobs_does_not_trust_a_label_that_lies(tmp_path: Path) -> None:
    built = host_image([file("a", b"a" * 1000)]).build(compression="none")
    liar = _store_labelled(client(tmp_path, "other"), compress(layer_tar([file("b")]), "gzip"), built.diff_ids[0])
    c = client(tmp_path)
    do_import(c, docker_save_tar([(built, ["app:v1"])]), compress_blobs=True)
    (layer,) = manifest_of(c, "app:v1")["layers"]
    assert layer["digest"] != liar
    assert decompress(c.content.read_all(layer["digest"])) == built.layers[0].data


def test_a_compressed_layer_names_its_uncompressed_original_as_replaced(tmp_path: Path) -> None:
    built = app_image().build(compression="none")
    result = import_result(tmp_path, docker_save_tar([(built, ["app:v1"])]), compress_blobs=True)
    assert sorted(result.replaced) == sorted(layer.digest for layer in built.layers)
    assert not set(result.replaced) & set(result.blobs)


def test_without_a_copy_or_compress_blobs_nothing_is_replaced(tmp_path: Path) -> None:
    built = app_image().build(compression="none")
    assert import_result(tmp_path, docker_save_tar([(built, ["app:v1"])])).replaced == []


# --------------------------------------------------------------------------- bad input
def _bad_archives() -> dict[str, tuple[bytes, type[CtrpyError], tuple[str, ...]]]:
    """case -> (archive, the error's class, what its message must name)."""
    built = app_image().build(compression="none")
    config_name, layer_names = _podman_names(built)
    cfg = json.loads(built.config.data)
    one = [(built, ["app:v1"])]

    def podman(**kw: Any) -> bytes:
        return docker_save_tar(one, variant="podman", **kw)

    def manifest(obj: Any) -> bytes:
        return podman(manifest_json_override=json.dumps(obj).encode())

    item = {"Config": config_name, "RepoTags": ["app:v1"], "Layers": layer_names}
    vax = host_image([file("a")], architecture="vax")
    no_diff_ids = host_image([file("a")], config_extra={"rootfs": None})
    return {
        "missing layer": (podman(omit=[layer_names[1]]), InvalidArchive, (layer_names[1], "app:v1", "missing")),
        "missing config": (podman(omit=[config_name]), InvalidArchive, (config_name, "app:v1", "missing")),
        "config not matching its name": (
            podman(tamper={config_name: json.dumps(cfg, indent=1).encode()}), DigestMismatch, (config_name, "app:v1"),
        ),
        "too few layers": (manifest([{**item, "Layers": layer_names[:1]}]), InvalidArchive, ("manifest.json[0]", "app:v1")),
        "unknown platform": (docker_save_tar([(vax, ["a:1"])]), InvalidArchive, ("linux/vax", "a:1")),
        "invalid manifest.json": (podman(manifest_json_override=b'[{"Config": '), InvalidArchive, ("manifest.json", "JSON")),
        "manifest.json not a list": (manifest(item), InvalidArchive, ("manifest.json", "list")),
        "manifest.json empty": (manifest([]), InvalidArchive, ("manifest.json",)),
        "Layers not a list": (manifest([{**item, "Layers": "x.tar"}]), InvalidArchive, ("manifest.json[0]", "Layers")),
        "config without diff_ids": (
            docker_save_tar([(no_diff_ids, ["a:1"])]), InvalidArchive, (no_diff_ids.build().config.hex, "diff_ids"),
        ),
    }


BAD = _bad_archives()


@pytest.mark.parametrize("case", list(BAD))
def test_bad_archives_are_refused_and_leave_the_store_empty(tmp_path: Path, case: str) -> None:
    data, error, names = BAD[case]
    c = client(tmp_path)
    with raises_naming(error, *names) as e:
        do_import(c, data)
    assert "\n" not in str(e.value)
    assert_store_empty(c)


def test_an_unparsable_config_named_by_a_non_hex_name_is_reported_as_invalid_json(tmp_path: Path) -> None:
    built = base_image().build(compression="none")
    _config, layers = _podman_names(built)
    item = [{"Config": "config.json", "RepoTags": ["a:1"], "Layers": layers}]
    data = docker_save_tar(
        [(built, ["a:1"])], variant="podman", manifest_json_override=json.dumps(item).encode(),
        extra_members=[Entry("config.json", "file", data=b"{nope", mode=0o444, mtime=0)],
    )
    with raises_naming(InvalidArchive, "config.json", "a:1", "JSON"):
        do_import(client(tmp_path), data)


def test_forcing_docker_on_an_archive_without_manifest_json_names_what_is_missing(tmp_path: Path) -> None:
    data = docker_save_tar([(base_image(), ["a:1"])], variant="podman", omit=["manifest.json"])
    with raises_naming(InvalidArchive, "manifest.json"):
        do_import(client(tmp_path), data)


def test_docker_v1_1_is_an_alias_of_docker_v1_2() -> None:
    assert type(get_importer("docker.v1.1")) is type(get_importer("docker.v1.2"))
