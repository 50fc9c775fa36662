"""``Client.convert`` (``ctrpy.convert``): media types, layer compression and platforms, as
containerd's converter does them, diffIDs never changed; all or nothing.

Images are built in code; what a conversion must give is computed from the builders' own
blobs (the tars, their digests), never from ctrpy.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from ctrpy.archive.compression import Compression
from ctrpy.client import Client
from ctrpy.convert import Converter, ConvertOptions
from ctrpy.errors import (
    DigestMismatch,
    ImageNotFound,
    InvalidArgument,
    PlatformContentMissing,
    PlatformNotFound,
    UnsupportedFormat,
)
from ctrpy.formats import ImportOptions
from ctrpy.oci import Matcher, Platform, mediatypes
from tests.builders import (
    ANNOTATION_IMAGE_NAME,
    MT_DOCKER_CONFIG,
    MT_DOCKER_LAYER_GZIP,
    MT_DOCKER_MANIFEST,
    MT_OCI_CONFIG,
    MT_OCI_INDEX,
    MT_OCI_LAYER,
    MT_OCI_LAYER_GZIP,
    MT_OCI_LAYER_ZSTD,
    MT_OCI_MANIFEST,
    Blob,
    BuiltImage,
    Layer,
    OCILayout,
    decompress,
    directory,
    file,
    index_of,
)
from tests.helpers import (
    HOST,
    OTHER_ARCH,
    arch_image,
    blob_path,
    docker_archive,
    host_image,
    lying_image,
    raises_naming,
    tamper,
)

SRC = "example.com/app:v1"
DST = "example.com/app:converted"
LAYERS = [[directory("etc"), file("etc/a", b"a" * 5000)], [directory("usr"), file("usr/b", b"b" * 3000)]]


def image(**kw: Any) -> BuiltImage:
    return host_image(*LAYERS, **kw).build()


def imported(
    client: Client, item: Any, name: str = SRC, *, unpack: bool = False, omit: tuple[str, ...] = (),
    extra: tuple[Blob, ...] = (), **opts: Any,
) -> None:
    """Import an archive holding ``item`` as ``name`` (without the blobs ``omit`` names, with
    the blobs ``extra`` gives)."""
    layout = OCILayout()
    layout.add_manifest(item, {ANNOTATION_IMAGE_NAME: name})
    for b in extra:
        layout.add_blob(b)
    data = layout.tar_bytes(omit_blobs=omit)
    client.import_archive(io.BytesIO(data), "oci.v1", ImportOptions(**opts), unpack=unpack, snapshotter="native")


def docker_imported(client: Client, built: BuiltImage, name: str = "app:v1") -> str:
    client.import_archive(io.BytesIO(docker_archive((built, [name]))), "docker.v1.2")
    return "docker.io/library/" + name


def manifest(client: Client, name: str = DST) -> dict[str, Any]:
    return client.content.read_json(client.image(name).target.digest)  # type: ignore[no-any-return]


def convert(client: Client, src: str = SRC, dst: str = DST, **opts: Any) -> dict[str, Any]:
    client.convert(src, dst, ConvertOptions(**opts))
    return manifest(client, dst)


def blob(client: Client, digest: str) -> bytes:
    return client.content.read_all(digest, limit=1 << 30)


# --------------------------------------------------------------------------- media types
def test_oci_gives_docker_images_oci_media_types(client: Client) -> None:
    src = docker_imported(client, image(media_types="docker"))
    got = convert(client, src, oci=True)
    assert got["mediaType"] == MT_OCI_MANIFEST
    assert got["config"]["mediaType"] == MT_OCI_CONFIG
    assert [x["mediaType"] for x in got["layers"]] == [MT_OCI_LAYER_GZIP] * 2
    assert client.image(DST).target.media_type == MT_OCI_MANIFEST


def test_oci_keeps_the_config_and_layer_bytes(client: Client) -> None:
    built = image(media_types="docker")
    src = docker_imported(client, built)
    got = convert(client, src, oci=True)
    assert got["config"]["digest"] == built.config.digest
    assert [x["digest"] for x in got["layers"]] == [b.digest for b in built.layers]


def test_without_oci_a_docker_image_keeps_docker_media_types(client: Client) -> None:
    src = docker_imported(client, image(media_types="docker", compression="none"))
    got = convert(client, src, compression=Compression.GZIP)
    assert (got["mediaType"], got["config"]["mediaType"]) == (MT_DOCKER_MANIFEST, MT_DOCKER_CONFIG)
    assert [x["mediaType"] for x in got["layers"]] == [MT_DOCKER_LAYER_GZIP] * 2


def test_zstd_implies_oci_media_types(client: Client) -> None:
    src = docker_imported(client, image(media_types="docker"))
    got = convert(client, src, compression=Compression.ZSTD)
    assert got["mediaType"] == MT_OCI_MANIFEST
    assert [x["mediaType"] for x in got["layers"]] == [MT_OCI_LAYER_ZSTD] * 2


def test_a_docker_manifest_list_becomes_an_oci_index(client: Client) -> None:
    host = image(media_types="docker")
    idx = index_of([host], media_type="docker-list")
    imported(client, idx)
    client.convert(SRC, DST, ConvertOptions(oci=True))
    target = client.image(DST).target
    doc = client.content.read_json(target.digest)
    assert target.media_type == doc["mediaType"] == MT_OCI_INDEX
    assert doc["manifests"][0]["mediaType"] == MT_OCI_MANIFEST
    assert doc["manifests"][0]["platform"] == host.platform


# --------------------------------------------------------------------------- layers
def test_uncompress_stores_every_layer_as_its_tar(client: Client) -> None:
    built = image()
    imported(client, built)
    got = convert(client, uncompress=True)
    assert [x["mediaType"] for x in got["layers"]] == [MT_OCI_LAYER] * 2
    assert [x["digest"] for x in got["layers"]] == list(built.diff_ids)
    for layer, original in zip(got["layers"], built.layers, strict=True):
        assert blob(client, layer["digest"]) == decompress(original.data)


@pytest.mark.parametrize("kind", [Compression.GZIP, Compression.ZSTD], ids=lambda k: k.value)
def test_recompressed_layers_hold_the_same_tars_and_are_labelled_with_them(client: Client, kind: Compression) -> None:
    built = image(compression="none")
    imported(client, built)
    got = convert(client, compression=kind)
    for layer, diff_id, original in zip(got["layers"], built.diff_ids, built.layers, strict=True):
        assert decompress(blob(client, layer["digest"])) == original.data
        assert client.content.info(layer["digest"]).labels[mediatypes.LABEL_UNCOMPRESSED] == diff_id
    assert got["config"]["digest"] == built.config.digest


def test_a_layer_already_compressed_so_is_kept(client: Client) -> None:
    built = image(compression="gzip")
    imported(client, built)
    got = convert(client, compression=Compression.GZIP, oci=True)
    assert [x["digest"] for x in got["layers"]] == [b.digest for b in built.layers]


def test_a_level_recompresses_even_layers_already_so_compressed(client: Client) -> None:
    built = image(compression="zstd")
    imported(client, built)
    got = convert(client, compression=Compression.ZSTD, level=19)
    assert all(x["digest"] != b.digest for x, b in zip(got["layers"], built.layers, strict=True))
    assert [decompress(blob(client, x["digest"])) for x in got["layers"]] == [decompress(b.data) for b in built.layers]


def test_uncompress_reuses_a_stored_uncompressed_layer_without_writing(client: Client) -> None:
    built = image()
    imported(client, built)
    client.convert(SRC, "first", ConvertOptions(uncompress=True))
    with client.lease("test") as held:
        converted = Converter(client.content, client.root.blobs, held, ConvertOptions(uncompress=True)).convert(
            SRC, client.image(SRC).target)
    assert not set(converted.written) & set(built.diff_ids)


def test_a_stored_compressed_copy_labelled_with_the_diff_id_is_reused(client: Client) -> None:
    gz = image(compression="gzip")
    imported(client, gz, "example.com/gz:1", unpack=True)  # unpacking labels the gzip layers
    imported(client, image(compression="none"))
    got = convert(client, compression=Compression.GZIP)
    assert [x["digest"] for x in got["layers"]] == [b.digest for b in gz.layers]


def test_the_converted_image_keeps_its_diff_ids_and_so_its_snapshots(client: Client) -> None:
    imported(client, image(), unpack=True)
    client.convert(SRC, DST, ConvertOptions(compression=Compression.ZSTD))
    check = client.check(DST, snapshotter="native")
    assert check.complete and check.unpacked


def test_a_layer_media_type_ctrpy_cannot_write_is_named(client: Client) -> None:
    odd = "application/vnd.oci.image.layer.v1.tar+encrypted"
    imported(client, host_image(Layer(LAYERS[0], media_type=odd)).build())
    with raises_naming(UnsupportedFormat, odd):
        client.convert(SRC, DST, ConvertOptions(uncompress=True))


def test_a_non_distributable_layer_is_carried_as_it_is(client: Client) -> None:
    nd = Layer(LAYERS[0], media_type=mediatypes.OCI_LAYER_ND_GZIP, urls=["https://example.com/layer"])
    built = host_image(nd, LAYERS[1]).build()
    imported(client, built)
    got = convert(client, uncompress=True)
    assert got["layers"][0]["digest"] == built.layers[0].digest
    assert got["layers"][0]["urls"] == ["https://example.com/layer"]
    assert got["layers"][1]["digest"] == built.diff_ids[1]


def test_fields_the_converter_does_not_change_are_kept(client: Client) -> None:
    layer = Layer(LAYERS[0], annotations={"org.example.layer": "one"})
    built = host_image(layer, manifest_annotations={"org.example.manifest": "m"}).build()
    imported(client, built)
    got = convert(client, uncompress=True)
    assert got["annotations"] == {"org.example.manifest": "m"}
    assert got["layers"][0]["annotations"] == {"org.example.layer": "one"}
    assert list(got) == list(json.loads(built.manifest.data))


def test_two_workers_give_what_one_gives(client: Client, tmp_path: Path) -> None:
    imported(client, image(compression="none"))
    results = []
    for workers in (1, 2):
        with client.lease("test") as held:
            c = Converter(client.content, client.root.blobs, held, ConvertOptions(compression=Compression.GZIP),
                          workers=workers)
            results.append(c.convert(SRC, client.image(SRC).target).target)
    assert results[0] == results[1]


# --------------------------------------------------------------------------- platforms
def multi(client: Client, *, omit_other: bool = False, **opts: Any) -> tuple[BuiltImage, BuiltImage]:
    host, other = arch_image(HOST.architecture, HOST.variant or None), arch_image(OTHER_ARCH)
    omit = tuple(b.digest for b in other.blobs()) if omit_other else ()
    imported(client, index_of([host, other]), omit=omit, **opts)
    return host, other


def entries(client: Client, name: str = DST) -> list[str]:
    return [m["platform"]["architecture"] for m in client.content.read_json(client.image(name).target.digest)["manifests"]]


def test_without_platforms_only_the_hosts_entry_is_kept(client: Client) -> None:
    multi(client, matcher=Matcher(all_platforms=True))
    client.convert(SRC, DST, ConvertOptions(uncompress=True))
    assert entries(client) == [HOST.architecture]


def test_a_platform_given_selects_its_entry(client: Client) -> None:
    multi(client, matcher=Matcher(all_platforms=True))
    client.convert(SRC, DST, ConvertOptions(matcher=Matcher([Platform("linux", OTHER_ARCH)])))
    assert entries(client) == [OTHER_ARCH]


def test_all_platforms_keeps_every_entry(client: Client) -> None:
    multi(client, matcher=Matcher(all_platforms=True))
    client.convert(SRC, DST, ConvertOptions(uncompress=True, all_platforms=True))
    assert sorted(entries(client)) == sorted([HOST.architecture, OTHER_ARCH])


def test_all_platforms_needs_every_platforms_content(client: Client) -> None:
    _host, other = multi(client, omit_other=True)
    with raises_naming(PlatformContentMissing, other.manifest.digest):
        client.convert(SRC, DST, ConvertOptions(uncompress=True, all_platforms=True))
    with pytest.raises(ImageNotFound):
        client.image(DST)


def test_a_platform_the_index_lacks_is_named(client: Client) -> None:
    multi(client)
    with raises_naming(PlatformNotFound, "linux/riscv64"):
        client.convert(SRC, DST, ConvertOptions(matcher=Matcher([Platform("linux", "riscv64")])))


def test_a_lone_manifest_converts_whatever_its_platform_unless_one_is_named(client: Client) -> None:
    imported(client, arch_image(OTHER_ARCH), matcher=Matcher(all_platforms=True))
    client.convert(SRC, DST, ConvertOptions(uncompress=True))
    assert client.check(DST, Matcher(all_platforms=True)).complete
    with raises_naming(PlatformNotFound, str(HOST)):
        client.convert(SRC, "other", ConvertOptions(uncompress=True, matcher=Matcher([HOST])))


# --------------------------------------------------------------------------- the record
def test_nothing_to_change_gives_the_source_target(client: Client) -> None:
    imported(client, image(compression="none"))
    assert client.convert(SRC, DST, ConvertOptions(oci=True, uncompress=True)).target == client.image(SRC).target


def test_the_target_replaces_an_image_of_that_name_and_gets_the_source_labels(client: Client) -> None:
    imported(client, image())
    client.images.set_labels(SRC, {"team": "infra"})
    imported(client, host_image([file("x")]).build(), DST)
    client.images.set_labels(DST, {"old": "label"})
    converted = client.convert(SRC, DST, ConvertOptions(uncompress=True))
    assert converted.labels == {"team": "infra"}
    assert manifest(client)["layers"][0]["digest"] == image().diff_ids[0]


def test_converting_in_place_updates_the_image(client: Client) -> None:
    imported(client, image())
    client.convert(SRC, SRC, ConvertOptions(uncompress=True))
    assert [x["mediaType"] for x in manifest(client, SRC)["layers"]] == [MT_OCI_LAYER] * 2


def test_the_converted_image_survives_the_removal_of_its_source(client: Client) -> None:
    imported(client, image())
    client.convert(SRC, DST, ConvertOptions(compression=Compression.ZSTD))
    client.remove_images([SRC])
    assert client.check(DST).complete
    labels = client.content.info(client.image(DST).target.digest).labels
    assert labels["containerd.io/gc.ref.content.config"] == image().config.digest


def test_a_corrupt_source_layer_fails_and_records_nothing(client: Client, root: Path) -> None:
    built = image()
    imported(client, built)
    tamper(blob_path(root, built.layers[1].digest))
    with raises_naming(DigestMismatch, built.layers[1].digest):
        client.convert(SRC, DST, ConvertOptions(uncompress=True))
    assert client.images.names() == [SRC]


def test_a_layer_that_is_not_its_diff_id_fails(client: Client) -> None:
    bad = lying_image()
    imported(client, bad)
    with raises_naming(DigestMismatch, bad.diff_ids[1]):
        client.convert(SRC, DST, ConvertOptions(compression=Compression.ZSTD))
    assert client.images.names() == [SRC]


def test_artifacts_beside_an_image_are_carried_as_they_are(client: Client) -> None:
    empty = Blob(mediatypes.OCI_EMPTY, b"{}")
    sbom = Blob(mediatypes.OCI_MANIFEST, json.dumps({
        "schemaVersion": 2, "mediaType": mediatypes.OCI_MANIFEST, "artifactType": "application/spdx+json",
        "config": empty.descriptor(), "layers": []}).encode())
    host = image()
    imported(client, index_of([host, sbom], platforms=[host.platform, None]), extra=(empty,))
    client.convert(SRC, DST, ConvertOptions(uncompress=True))
    kept = client.content.read_json(client.image(DST).target.digest)["manifests"]
    assert kept[1]["digest"] == sbom.digest


@pytest.mark.parametrize(
    "opts",
    [dict(uncompress=True, compression=Compression.GZIP), dict(level=3), dict(compression=Compression.GZIP, level=9),
     dict(compression=Compression.NONE)],
    ids=["uncompress-and-gzip", "level-alone", "gzip-level-9", "none-as-compression"],
)
def test_contradicting_options_are_refused_before_any_work(client: Client, opts: dict[str, Any]) -> None:
    imported(client, image())
    with pytest.raises(InvalidArgument):
        client.convert(SRC, DST, ConvertOptions(**opts))
    assert client.images.names() == [SRC]
