"""Self-checks of the archive builders (tests/builders): they are the oracle, so they must be
right on their own terms: digests match contents, JSON follows the image-spec, output is
deterministic, and every "broken" knob breaks exactly what it says."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest
import zstandard

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
    chardev,
    compress,
    decompress,
    dir,
    docker_save_tar,
    familiarize_ref,
    fifo,
    file,
    go_json,
    hardlink,
    index_of,
    layer_tar,
    normalize_ref,
    opaque,
    read_tar,
    symlink,
    tar_files,
    tar_names,
    whiteout,
    write_docker_save_tar,
)

SKOPEO = "/usr/bin/skopeo"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def raw_names(archive: bytes) -> list[str]:
    """Member names exactly as written in the headers (tarfile strips a dir's trailing '/')."""
    out = []
    with tarfile.open(fileobj=io.BytesIO(decompress(archive)), mode="r:") as tf:
        for ti in tf:
            out.append(ti.name + "/" if ti.isdir() else ti.name)
    return out


def sample_entries() -> list[Entry]:
    return [
        dir("etc"),
        file("etc/hello", b"hello\n"),
        file("bin/tool", b"\x7fELF" + bytes(300), 0o755, uid=1000, gid=1000),
        symlink("etc/link", "/etc/hello"),
        hardlink("etc/hard", "etc/hello"),
        chardev("dev/null", 1, 3),
        fifo("run/pipe"),
        file("etc/caps", b"", xattrs={"security.capability": b"\x01\x00\x00\x02\xff", "user.t": b"v"}),
        file("x" * 150 + "/long", b"long name"),
        whiteout("var/cache"),
        opaque("opt"),
    ]


def sample_image(**kw: Any) -> Image:
    return Image(
        [
            [dir("etc"), file("etc/hello", b"hello\n")],
            [file("bin/tool", b"tool" * 100, 0o755), whiteout("etc/hello")],
        ],
        **kw,
    )


def check_image(blobs: dict[str, bytes], manifest_digest: str) -> dict[str, Any]:
    """Walk manifest -> config + layers over a name->bytes map; check image-spec essentials."""
    mdata = blobs[manifest_digest]
    assert sha(mdata) == manifest_digest
    m: dict[str, Any] = json.loads(mdata)
    assert m["schemaVersion"] == 2
    assert m["mediaType"] in (MT_OCI_MANIFEST, MT_DOCKER_MANIFEST)
    cd = m["config"]
    cdata = blobs[cd["digest"]]
    assert sha(cdata) == cd["digest"] and len(cdata) == cd["size"]
    assert cd["mediaType"] in (MT_OCI_CONFIG, MT_DOCKER_CONFIG)
    cfg = json.loads(cdata)
    assert cfg["rootfs"]["type"] == "layers"
    assert cfg["architecture"] and cfg["os"]
    diffs = []
    for ld in m["layers"]:
        ldata = blobs[ld["digest"]]
        assert sha(ldata) == ld["digest"] and len(ldata) == ld["size"]
        diffs.append(sha(decompress(ldata)))
    assert cfg["rootfs"]["diff_ids"] == diffs
    return m


# ---------------------------------------------------------------------------------------------
# layers


def test_layer_tar_roundtrip_and_order() -> None:
    entries = sample_entries()
    data = layer_tar(entries)
    members = read_tar(data)
    assert [ti.name for ti, _ in members] == [e.name.rstrip("/") for e in entries]
    by = {ti.name: (ti, body) for ti, body in members}
    assert by["etc"][0].isdir() and by["etc"][0].mode == 0o755
    assert by["etc/hello"][1] == b"hello\n" and by["etc/hello"][0].mode == 0o644
    tool = by["bin/tool"][0]
    assert (tool.mode, tool.uid, tool.gid, tool.mtime) == (0o755, 1000, 1000, 1_600_000_000)
    assert by["etc/link"][0].issym() and by["etc/link"][0].linkname == "/etc/hello"
    assert by["etc/hard"][0].islnk() and by["etc/hard"][0].linkname == "etc/hello"
    dev = by["dev/null"][0]
    assert dev.ischr() and (dev.devmajor, dev.devminor) == (1, 3)
    assert by["run/pipe"][0].isfifo()
    pax = by["etc/caps"][0].pax_headers
    assert pax["SCHILY.xattr.user.t"] == "v"
    assert (
        pax["SCHILY.xattr.security.capability"].encode("utf-8", "surrogateescape") == b"\x01\x00\x00\x02\xff"
    )
    assert by["x" * 150 + "/long"][1] == b"long name"
    assert "var/.wh.cache" in by and "opt/.wh..wh..opq" in by
    # directories carry a trailing slash in the header, as Go writes them
    assert raw_names(data)[0] == "etc/"


def test_layer_tar_deterministic_go_style_end() -> None:
    a = layer_tar(sample_entries())
    assert a == layer_tar(sample_entries())
    assert len(a) % 512 == 0
    assert a.endswith(bytes(1024)) and not a.endswith(bytes(1536))  # Go: no record padding
    padded = layer_tar(sample_entries(), pad_to_record=True)
    assert len(padded) % 10240 == 0 and padded.startswith(a[:-1024])
    no_eof = layer_tar([file("a", b"1")], eof=False)
    assert len(no_eof) == 1024 and not no_eof.endswith(bytes(512))


def test_entry_helpers_names() -> None:
    assert whiteout("a/b/c").name == "a/b/.wh.c"
    assert whiteout("/top").name == ".wh.top"
    assert opaque("a/b/").name == "a/b/.wh..wh..opq"
    assert opaque("").name == ".wh..wh..opq"
    assert symlink("l", "../../etc").mode is None  # default 0o777 at write time
    ti = read_tar(layer_tar([symlink("l", "t")]))[0][0]
    assert ti.mode == 0o777


def test_lying_size_and_raw_names() -> None:
    data = layer_tar([Entry("../evil", data=b"x"), Entry("/abs/file", data=b"y")])
    assert raw_names(data) == ["../evil", "/abs/file"]
    lying = layer_tar([Entry("f", data=b"abc", size=1000)], eof=False)
    assert len(lying) == 1024  # header + the real 3 bytes padded, no end-of-archive
    assert tarfile.TarInfo.frombuf(lying[:512], "utf-8", "surrogateescape").size == 1000


@pytest.mark.parametrize("kind", ["gzip", "zstd", "none"])
def test_compress_roundtrip_deterministic(kind: str) -> None:
    data = layer_tar(sample_entries())
    c = compress(data, kind)  # type: ignore[arg-type]
    assert c == compress(data, kind)  # type: ignore[arg-type]
    assert decompress(c) == data
    if kind == "gzip":
        assert c[:2] == b"\x1f\x8b" and c[4:8] == bytes(4) and c[9] == 255  # mtime 0, OS unknown
        assert gzip.decompress(c) == data
    if kind == "zstd":
        assert zstandard.ZstdDecompressor().decompress(c) == data


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
# docker save archives


def dup_image() -> Image:
    return Image([[file("a", b"1")], [file("b", b"2")], [file("a", b"1")]], config_extra={"author": "dup"})


def test_docker_classic_members() -> None:
    img = sample_image()
    data = docker_save_tar([(img, ["busybox:latest", "busybox:1"]), (dup_image(), None)])
    assert data == docker_save_tar([(img, ["busybox:latest", "busybox:1"]), (dup_image(), None)])
    names = raw_names(data)
    files = tar_files(data)
    mj = json.loads(files["manifest.json"])
    assert files["manifest.json"].endswith(b"\n")
    b = img.build()
    assert mj[0]["Config"] == f"{b.config.hex}.json" and mj[0]["RepoTags"] == ["busybox:latest", "busybox:1"]
    assert mj[1]["RepoTags"] is None
    assert files[mj[0]["Config"]] == b.config.data
    for lid, diff in zip(mj[0]["Layers"], b.diff_ids, strict=True):
        d = lid.split("/")[0]
        assert lid == f"{d}/layer.tar"
        assert {f"{d}/", f"{d}/VERSION", f"{d}/json", f"{d}/layer.tar"} <= set(names)
        assert files[f"{d}/VERSION"] == b"1.0"
        assert json.loads(files[f"{d}/json"])["id"] == d
        assert sha(files[lid]) == diff
    top = mj[0]["Layers"][-1].split("/")[0]
    assert json.loads(files[f"{top}/json"])["parent"] == mj[0]["Layers"][0].split("/")[0]
    assert json.loads(files["repositories"]) == {"busybox": {"latest": top, "1": top}}
    assert names[-2:] == ["manifest.json", "repositories"]
    # the duplicate third layer of dup_image is a symlink to the first copy
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        link = tf.getmember(mj[1]["Layers"][2])
        assert link.issym()
        assert link.linkname == f"../{mj[1]['Layers'][0]}"
    copies = docker_save_tar([(dup_image(), ["d:1"])], layer_symlinks=False)
    with tarfile.open(fileobj=io.BytesIO(copies)) as tf:
        assert not any(ti.issym() for ti in tf)


def test_docker25_members() -> None:
    img = sample_image()
    data = docker_save_tar([(img, ["busybox:latest"]), (dup_image(), None)], variant="docker25")
    files = tar_files(data)
    names = raw_names(data)
    assert {"blobs/", "blobs/sha256/", "index.json", "oci-layout", "manifest.json", "repositories"} <= set(
        names
    )
    blobs = {}
    for n, body in files.items():
        if n.startswith("blobs/sha256/"):
            assert sha(body) == "sha256:" + n[13:]
            blobs["sha256:" + n[13:]] = body
    idx = json.loads(files["index.json"])
    assert idx["mediaType"] == MT_OCI_INDEX
    e0 = idx["manifests"][0]
    assert e0["annotations"] == {
        ANNOTATION_IMAGE_NAME: "docker.io/library/busybox:latest",
        ANNOTATION_REF_NAME: "latest",
    }
    assert e0["platform"] == {"architecture": "amd64", "os": "linux"}
    assert "annotations" not in idx["manifests"][1]
    m = check_image(blobs, e0["digest"])
    assert {ld["mediaType"] for ld in m["layers"]} == {MT_OCI_LAYER}  # uncompressed, like docker
    assert m["config"]["platform"] == {"architecture": "amd64", "os": "linux"}
    mj = json.loads(files["manifest.json"])
    assert mj[0]["Config"] == m["config"]["digest"].replace("sha256:", "blobs/sha256/")
    assert mj[0]["Layers"] == [ld["digest"].replace("sha256:", "blobs/sha256/") for ld in m["layers"]]
    assert mj[0]["RepoTags"] == ["busybox:latest"] and mj[1]["RepoTags"] is None
    assert json.loads(files["repositories"]) == {"busybox": {"latest": img.diff_ids[-1][7:]}}


def test_podman_members() -> None:
    img = sample_image()
    tags = ["docker.io/library/busybox:latest"]
    data = docker_save_tar([(img, tags), (dup_image(), None)], variant="podman")
    files = tar_files(data)
    names = raw_names(data)
    b = img.build()
    for diff in b.diff_ids:
        assert f"{diff[7:]}.tar" in files and sha(files[f"{diff[7:]}.tar"]) == diff
    assert files[f"{b.config.hex}.json"] == b.config.data
    mj = json.loads(files["manifest.json"])
    assert mj[0] == {
        "Config": f"{b.config.hex}.json",
        "RepoTags": tags,
        "Layers": [f"{d[7:]}.tar" for d in b.diff_ids],
    }
    assert mj[1]["RepoTags"] == []
    assert names[-2:] == ["manifest.json", "repositories"]
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        links = [ti for ti in tf if ti.issym()]
        assert links and all(ti.name.endswith("/layer.tar") and ti.linkname.startswith("../") for ti in links)
        assert all(ti.mode == 0o444 for ti in tf if ti.isreg())
    repos = json.loads(files["repositories"])
    assert list(repos) == ["docker.io/library/busybox"]
    plain = raw_names(docker_save_tar([(img, tags)], variant="podman", layer_symlinks=False))
    assert not any("/" in n for n in plain)


def test_docker_knobs() -> None:
    img = sample_image()
    first = raw_names(docker_save_tar([(img, ["a:1"])], order="manifest-first"))
    assert first[:2] == ["manifest.json", "repositories"]
    last = raw_names(docker_save_tar([(img, ["a:1"])], order="manifest-last", include_repositories=False))
    assert last[-1] == "manifest.json" and "repositories" not in last
    om = tar_files(docker_save_tar([(img, ["a:1"])], omit={"repositories", f"{img.build().config.hex}.json"}))
    assert "repositories" not in om and f"{img.build().config.hex}.json" not in om
    t = tar_files(
        docker_save_tar([(img, ["a:1"])], tamper={"manifest.json": b"[]"}, extra_members=[file("x", b"")])
    )
    assert t["manifest.json"] == b"[]" and "x" in t
    gz = docker_save_tar([(img, ["a:1"])], compression_of_layers="gzip", variant="podman")
    gf = tar_files(gz)
    layer_files = [v for k, v in gf.items() if k.endswith(".tar")]
    assert all(v.startswith(b"\x1f\x8b") for v in layer_files)
    whole = docker_save_tar([(img, ["a:1"])], compression="zstd")
    assert decompress(whole) == docker_save_tar([(img, ["a:1"])])
    full = docker_save_tar([(img, ["a:1"])])
    assert docker_save_tar([(img, ["a:1"])], truncate_at=1000) == full[:1000]


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


# ---------------------------------------------------------------------------------------------
# real peers accept the output


needs_skopeo = pytest.mark.skipif(not Path(SKOPEO).exists(), reason="skopeo not installed")


def skopeo(*args: str) -> dict[str, Any]:
    r = subprocess.run([SKOPEO, *args], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout) if r.stdout.strip().startswith(("{", "[")) else {}


@pytest.mark.interop
@needs_skopeo
@pytest.mark.parametrize("kind", ["gzip", "zstd", "none"])
def test_skopeo_reads_oci_archive(tmp_path: Path, kind: str) -> None:
    img = sample_image(compression=kind)
    lay = OCILayout()
    lay.add_manifest(img, {ANNOTATION_REF_NAME: "latest"})
    archive = tmp_path / "oci.tar"
    archive.write_bytes(lay.tar_bytes(docker_manifest_json=True))
    info = skopeo("inspect", f"oci-archive:{archive}")
    assert info["Digest"] == img.digest
    assert info["Layers"] == [b.digest for b in img.layer_blobs()]
    raw = skopeo("inspect", "--raw", f"oci-archive:{archive}")
    assert raw == json.loads(img.manifest_blob().data)
    # copying reads and verifies every blob
    skopeo("copy", f"oci-archive:{archive}", f"oci:{tmp_path / 'out'}:x")


@pytest.mark.interop
@needs_skopeo
def test_skopeo_reads_oci_index(tmp_path: Path) -> None:
    idx = index_of([sample_image(), sample_image(architecture="arm64", variant="v8")])
    lay = OCILayout()
    lay.add_manifest(idx, {ANNOTATION_REF_NAME: "multi"})
    archive = tmp_path / "idx.tar"
    lay.write_tar(archive)
    raw = skopeo("inspect", "--raw", f"oci-archive:{archive}")
    assert raw == idx.json()
    info = skopeo("--override-arch", "arm64", "--override-variant", "v8", "inspect", f"oci-archive:{archive}")
    assert info["Architecture"] == "arm64"


@pytest.mark.interop
@needs_skopeo
@pytest.mark.parametrize("variant", ["classic", "docker25", "podman"])
def test_skopeo_reads_docker_archive(tmp_path: Path, variant: str) -> None:
    img = sample_image()
    tag = "docker.io/library/busybox:latest" if variant == "podman" else "busybox:latest"
    archive = tmp_path / "docker.tar"
    archive.write_bytes(
        docker_save_tar([(img, [tag]), (dup_image(), ["dup:1"])], variant=variant)  # type: ignore[arg-type]
    )
    info = skopeo("inspect", f"docker-archive:{archive}:busybox:latest")
    assert info["Layers"] == img.diff_ids  # uncompressed layers: digest == diffID
    cfg = skopeo("inspect", "--config", f"docker-archive:{archive}:@1")
    assert cfg["author"] == "dup"
    for ref in (f"docker-archive:{archive}:@0", f"docker-archive:{archive}:@1"):
        skopeo("copy", ref, f"oci:{tmp_path / 'out'}:x")


@pytest.mark.interop
@pytest.mark.skipif(shutil.which("umoci") is None, reason="umoci not installed")
def test_umoci_unpacks_layout_dir(tmp_path: Path) -> None:
    img = Image(
        [
            [dir("etc"), file("etc/hello", b"hello\n"), file("etc/gone", b"x"), symlink("etc/l", "hello")],
            [whiteout("etc/gone"), hardlink("etc/h", "etc/hello"), file("opt/x", b"y")],
            [opaque("opt"), file("opt/z", b"z")],
        ]
    )
    lay = OCILayout()
    lay.add_manifest(img, {ANNOTATION_REF_NAME: "latest"})
    lay.write_dir(tmp_path / "layout")
    bundle = tmp_path / "bundle"
    r = subprocess.run(
        ["umoci", "unpack", "--rootless", "--image", f"{tmp_path / 'layout'}:latest", str(bundle)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    rootfs = bundle / "rootfs"
    assert (rootfs / "etc/hello").read_bytes() == b"hello\n"
    assert not (rootfs / "etc/gone").exists()
    assert (rootfs / "etc/l").is_symlink()
    assert (rootfs / "etc/h").stat().st_ino == (rootfs / "etc/hello").stat().st_ino
    assert sorted(p.name for p in (rootfs / "opt").iterdir()) == ["z"]
