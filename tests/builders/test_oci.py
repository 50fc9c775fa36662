"""Self-checks of the image, index and OCI layout builders: digests match contents, JSON
follows the image-spec, output is deterministic, broken knobs break what they say."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from tests.builders import (
    ANNOTATION_IMAGE_NAME,
    ANNOTATION_REF_NAME,
    MT_DOCKER_CONFIG,
    MT_DOCKER_LAYER_GZIP,
    MT_DOCKER_LIST,
    MT_DOCKER_MANIFEST,
    MT_OCI_CONFIG,
    MT_OCI_INDEX,
    MT_OCI_LAYER,
    MT_OCI_LAYER_GZIP,
    MT_OCI_LAYER_ZSTD,
    MT_OCI_MANIFEST,
    Blob,
    Entry,
    Image,
    IndexBlob,
    Layer,
    OCILayout,
    big_image,
    chain_id,
    chain_ids,
    compress,
    decompress,
    familiarize_ref,
    file,
    go_json,
    index_of,
    layer_tar,
    normalize_ref,
    read_tar,
    symlink,
    tar_files,
    tar_names,
    write_docker_save_tar,
)
from tests.builders.samples import check_image, raw_names, sample_image, sha

# ---------------------------------------------------------------------------------------------
# images


@pytest.mark.parametrize(
    ("compression", "family", "layer_mt"),
    [
        ("gzip", "oci", MT_OCI_LAYER_GZIP),
        ("zstd", "oci", MT_OCI_LAYER_ZSTD),
        ("none", "oci", MT_OCI_LAYER),
        ("gzip", "docker", MT_DOCKER_LAYER_GZIP),
    ],
)
def test_image_blobs_follow_spec(compression: str, family: str, layer_mt: str) -> None:
    img = sample_image(compression=compression, media_types=family)
    built = img.build()
    blobs = {b.digest: b.data for b in built.blobs()}
    m = check_image(blobs, built.manifest.digest)
    assert m["mediaType"] == (MT_OCI_MANIFEST if family == "oci" else MT_DOCKER_MANIFEST)
    assert m["config"]["mediaType"] == (MT_OCI_CONFIG if family == "oci" else MT_DOCKER_CONFIG)
    assert [ld["mediaType"] for ld in m["layers"]] == [layer_mt, layer_mt]
    # diff_ids are the sha256 of the uncompressed layer tars
    tars = [layer_tar(spec) for spec in img.layers]  # type: ignore[arg-type]
    assert img.diff_ids == [sha(t) for t in tars]
    cfg = json.loads(built.config.data)
    assert cfg["rootfs"]["diff_ids"] == img.diff_ids
    assert len(cfg["history"]) == 2
    assert built.config.data == go_json(cfg)  # compact Go-style JSON
    assert (
        img.digest
        == built.manifest.digest
        == sample_image(compression=compression, media_types=family).digest
    )


def test_image_platform_descriptor_and_extras() -> None:
    img = sample_image(architecture="arm64", variant="v8", config_extra={"history": None, "author": "me"})
    cfg = json.loads(img.config_blob().data)
    assert "history" not in cfg and cfg["author"] == "me" and cfg["variant"] == "v8"
    d = img.descriptor({"a": "b"})
    assert d["platform"] == {"architecture": "arm64", "os": "linux", "variant": "v8"}
    assert d["annotations"] == {"a": "b"}
    assert d["digest"] == img.manifest_blob().digest and d["size"] == img.manifest_blob().size
    assert "platform" not in img.descriptor(platform=False)
    assert list(d) == ["mediaType", "digest", "size", "annotations", "platform"]
    raw = Image([], config_raw=b"not json", manifest_extra={"layers": None})
    assert raw.config_blob().data == b"not json"
    assert "layers" not in json.loads(raw.manifest_blob().data)


def test_layer_overrides_break_precisely() -> None:
    good = [file("a", b"1")]
    img = Image(
        [
            Layer(good, blob=b"garbage"),  # blob not matching anything; diff from content
            Layer(good, diff_id="sha256:" + "0" * 64),
            Layer(good, compression="zstd", media_type=MT_OCI_LAYER_GZIP),  # lies about compression
            Layer(blob=compress(layer_tar(good), "gzip")),  # diff derived from the blob
        ]
    )
    b = img.build()
    m = json.loads(b.manifest.data)
    cfg = json.loads(b.config.data)
    assert b.layers[0].data == b"garbage" and m["layers"][0]["digest"] == sha(b"garbage")
    assert cfg["rootfs"]["diff_ids"][0] == sha(layer_tar(good))
    assert cfg["rootfs"]["diff_ids"][1] == "sha256:" + "0" * 64
    assert (
        b.layers[2].data.startswith(b"\x28\xb5\x2f\xfd") and m["layers"][2]["mediaType"] == MT_OCI_LAYER_GZIP
    )
    assert cfg["rootfs"]["diff_ids"][3] == sha(layer_tar(good))


def test_chain_ids() -> None:
    d = ["sha256:" + c * 64 for c in "abc"]
    c = chain_ids(d)
    assert c[0] == d[0]
    assert c[1] == sha(f"{d[0]} {d[1]}".encode())
    assert c[2] == sha(f"{c[1]} {d[2]}".encode()) == chain_id(d)


def test_refs() -> None:
    assert normalize_ref("busybox") == "docker.io/library/busybox:latest"
    assert normalize_ref("foo/bar:1") == "docker.io/foo/bar:1"
    assert normalize_ref("localhost:5000/x") == "localhost:5000/x:latest"
    assert normalize_ref("quay.io/a/b@sha256:" + "0" * 64) == "quay.io/a/b@sha256:" + "0" * 64
    assert familiarize_ref("docker.io/library/busybox:latest") == "busybox:latest"
    assert familiarize_ref("docker.io/foo/bar:1") == "foo/bar:1"
    assert familiarize_ref("ghcr.io/x/y:2") == "ghcr.io/x/y:2"


# ---------------------------------------------------------------------------------------------
# indexes


def test_index_of_platforms_nested_and_docker_list() -> None:
    amd = sample_image()
    arm = sample_image(architecture="arm64", variant="v8")
    idx = index_of([amd, arm], [{"k": "amd"}, None])
    assert isinstance(idx, IndexBlob) and idx.media_type == MT_OCI_INDEX
    j = idx.json()
    assert j["schemaVersion"] == 2 and j["mediaType"] == MT_OCI_INDEX
    assert [m["platform"]["architecture"] for m in j["manifests"]] == ["amd64", "arm64"]
    assert j["manifests"][0]["annotations"] == {"k": "amd"} and "annotations" not in j["manifests"][1]
    assert j["manifests"][1]["digest"] == arm.digest
    assert {b.digest for b in idx.descendants} >= {b.digest for b in amd.blobs() + arm.blobs()}

    outer = index_of([idx, sample_image(os="windows", architecture="amd64")])
    oj = outer.json()
    assert oj["manifests"][0] == {"mediaType": MT_OCI_INDEX, "digest": idx.digest, "size": idx.size}
    assert idx.digest in {b.digest for b in outer.descendants}

    dl = index_of([sample_image(media_types="docker")], media_type="docker-list")
    dj = dl.json()
    assert dl.media_type == dj["mediaType"] == MT_DOCKER_LIST
    assert dj["manifests"][0]["mediaType"] == MT_DOCKER_MANIFEST


# ---------------------------------------------------------------------------------------------
# OCI layouts


def make_layout() -> tuple[OCILayout, Image, Image]:
    a = sample_image()
    b = sample_image(compression="zstd", config_extra={"author": "b"})
    lay = OCILayout()
    lay.add_manifest(a, {ANNOTATION_REF_NAME: "latest"})
    lay.add_manifest(b, {ANNOTATION_IMAGE_NAME: "docker.io/library/b:1"})
    return lay, a, b


def test_layout_archive_valid_and_deterministic() -> None:
    lay, a, b = make_layout()
    data = lay.tar_bytes()
    assert data == make_layout()[0].tar_bytes()
    names = raw_names(data)
    assert names == sorted(names)
    assert names[:2] == ["blobs/", "blobs/sha256/"]
    assert names[-2:] == ["index.json", "oci-layout"]
    files = tar_files(data)
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    blobs = {}
    for name, body in files.items():
        if name.startswith("blobs/sha256/"):
            assert sha(body) == "sha256:" + name.rsplit("/", 1)[1]
            blobs["sha256:" + name.rsplit("/", 1)[1]] = body
    idx = json.loads(files["index.json"])
    assert idx["schemaVersion"] == 2 and idx["mediaType"] == MT_OCI_INDEX
    assert [m["digest"] for m in idx["manifests"]] == [a.digest, b.digest]
    assert idx["manifests"][0]["annotations"] == {ANNOTATION_REF_NAME: "latest"}
    for m in idx["manifests"]:
        check_image(blobs, m["digest"])
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        for ti in tf:
            assert (ti.mtime, ti.uid, ti.gid) == (0, 0, 0)
            assert ti.mode == (0o755 if ti.isdir() else 0o644 if ti.name == "index.json" else 0o444)
    assert len(data) % 512 == 0


@pytest.mark.parametrize(
    ("order", "first", "last"),
    [
        ("index-first", "index.json", None),
        ("index-last", None, "index.json"),
        ("blobs-reverse", "blobs/", "oci-layout"),
    ],
)
def test_layout_orders(order: str, first: str | None, last: str | None) -> None:
    lay = make_layout()[0]
    names = raw_names(lay.tar_bytes(order=order))  # type: ignore[arg-type]
    assert sorted(names) == sorted(raw_names(lay.tar_bytes()))
    if first:
        assert names[0] == first
    if last:
        assert names[-1] == last
    blobs = [n for n in names if n.startswith("blobs/sha256/") and not n.endswith("/")]
    if order == "blobs-reverse":
        assert blobs == sorted(blobs, reverse=True)
    if order == "index-last":
        assert names.index("oci-layout") > names.index(blobs[-1])


def test_layout_broken_knobs() -> None:
    lay, a, _ = make_layout()
    good = lay.tar_bytes()
    layer = a.build().layers[0]
    name = f"blobs/sha256/{layer.hex}"

    omitted = tar_files(lay.tar_bytes(omit_blobs={layer.digest}))
    assert name not in omitted and "index.json" in omitted

    tampered = tar_files(lay.tar_bytes(tamper={layer.digest: b"evil bytes"}))
    assert tampered[name] == b"evil bytes" and sha(tampered[name]) != layer.digest

    trunc = lay.tar_bytes(truncate_at=len(good) // 2)
    assert len(trunc) < len(good) and good.startswith(trunc)
    assert lay.tar_bytes(truncate_at=-100) == good[:-100]

    over = tar_files(
        lay.tar_bytes(index_json_override=b"{", oci_layout_override=b'{"imageLayoutVersion":"9"}')
    )
    assert over["index.json"] == b"{" and over["oci-layout"] == b'{"imageLayoutVersion":"9"}'

    evil = lay.tar_bytes(
        extra_entries=[Entry("../evil", data=b"x"), Entry("/abs", data=b"y"), symlink("l", "/")]
    )
    assert raw_names(evil)[-3:] == ["../evil", "/abs", "l"]

    no_layout = raw_names(lay.tar_bytes(omit_files={"oci-layout"}, include_dirs=False))
    assert "oci-layout" not in no_layout and "blobs/" not in no_layout

    lay2 = OCILayout(layout_version="2.0.0", extra_files={"README": b"hi"}, index_media_type=False)
    lay2.add_manifest(a)
    f2 = tar_files(lay2.tar_bytes())
    assert f2["README"] == b"hi" and "mediaType" not in json.loads(f2["index.json"])
    assert json.loads(f2["oci-layout"])["imageLayoutVersion"] == "2.0.0"


@pytest.mark.parametrize("kind", ["gzip", "zstd"])
def test_layout_compressed_archive(kind: str) -> None:
    lay = make_layout()[0]
    c = lay.tar_bytes(compression=kind)  # type: ignore[arg-type]
    assert decompress(c) == lay.tar_bytes()
    assert c == lay.tar_bytes(compression=kind)  # type: ignore[arg-type]


def test_layout_docker_manifest_json() -> None:
    lay, _, b = make_layout()
    files = tar_files(lay.tar_bytes(docker_manifest_json=True))
    mj = json.loads(files["manifest.json"])
    assert mj[0]["RepoTags"] is None
    assert mj[1]["RepoTags"] == ["b:1"]
    bb = b.build()
    assert mj[1]["Config"] == f"blobs/sha256/{bb.config.hex}"
    for item in mj:
        assert item["Config"] in files
        for layer in item["Layers"]:
            assert layer in files


def test_layout_with_index_and_write_methods(tmp_path: Path) -> None:
    idx = index_of([sample_image(), sample_image(architecture="arm64")])
    lay = OCILayout()
    lay.add_manifest(idx, {ANNOTATION_REF_NAME: "multi"})
    lay.add_blob(Blob("application/octet-stream", b"dangling"))
    data = lay.tar_bytes(docker_manifest_json=True)
    files = tar_files(data)
    top = json.loads(files["index.json"])["manifests"][0]
    assert top["mediaType"] == MT_OCI_INDEX and top["digest"] == idx.digest
    assert f"blobs/sha256/{sha(b'dangling')[7:]}" in files
    for m in idx.json()["manifests"]:
        check_image({"sha256:" + n[13:]: v for n, v in files.items() if n.startswith("blobs/")}, m["digest"])
    assert (
        json.loads(files["manifest.json"])[0]["Config"] == f"blobs/sha256/{sample_image().build().config.hex}"
    )

    lay.write_tar(tmp_path / "x.tar", docker_manifest_json=True)
    assert (tmp_path / "x.tar").read_bytes() == data
    lay.write_tar(tmp_path / "y.tar.gz", compression="gzip", truncate_at=300)
    assert (tmp_path / "y.tar.gz").read_bytes() == lay.tar_bytes(compression="gzip")[:300]

    root = lay.write_dir(tmp_path / "layout")
    assert json.loads((root / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    assert (root / "index.json").read_bytes() == files["index.json"]
    for p in (root / "blobs" / "sha256").iterdir():
        assert sha(p.read_bytes()) == "sha256:" + p.name


# ---------------------------------------------------------------------------------------------
# big images


def test_big_image_reproducible(tmp_path: Path) -> None:
    a = big_image(300_000, 37, seed=7, layers=2, workdir=tmp_path)
    b = big_image(300_000, 37, seed=7, layers=2, workdir=tmp_path)
    c = big_image(300_000, 37, seed=8, layers=2, workdir=tmp_path)
    assert a.digest == b.digest != c.digest
    built = a.build()
    total = 0
    nfiles = 0
    for layer, diff in zip(built.layers, built.diff_ids, strict=True):
        tar = decompress(layer.data)
        assert sha(tar) == diff and sha(layer.data) == layer.digest
        for ti, body in read_tar(tar):
            if ti.isreg():
                total += len(body)
                nfiles += 1
    assert (total, nfiles) == (300_000, 37)
    lay = OCILayout()
    lay.add_manifest(a, {ANNOTATION_REF_NAME: "big"})
    lay.write_tar(tmp_path / "big.tar")
    assert (tmp_path / "big.tar").read_bytes() == lay.tar_bytes()
    files = tar_files((tmp_path / "big.tar").read_bytes())
    check_image({"sha256:" + n[13:]: v for n, v in files.items() if n.startswith("blobs/")}, a.digest)
    write_docker_save_tar(tmp_path / "big-docker.tar", [(a, ["big:1"])])
    assert tar_names((tmp_path / "big-docker.tar").read_bytes())[-1] == "repositories"


