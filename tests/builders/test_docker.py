"""Self-checks of the docker-save builders (classic, Docker 25+, podman) and their knobs."""

from __future__ import annotations

import io
import json
import tarfile

from tests.builders import (
    ANNOTATION_IMAGE_NAME,
    ANNOTATION_REF_NAME,
    MT_OCI_INDEX,
    MT_OCI_LAYER,
    decompress,
    docker_save_tar,
    file,
    tar_files,
)
from tests.builders.samples import check_image, dup_image, raw_names, sample_image, sha

# ---------------------------------------------------------------------------------------------
# docker save archives


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


