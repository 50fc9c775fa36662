"""What ctrpy pushes, read by the real tools: ``skopeo inspect`` and a private containerd's
``ctr images pull`` see the same digests; ``skopeo copy`` brings back the same bytes, and
the tree extracted from them is the tree of the original."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.builders import (
    ANNOTATION_IMAGE_NAME,
    ANNOTATION_REF_NAME,
    BuiltImage,
    IndexBlob,
    OCILayout,
    file,
    index_of,
)
from tests.helpers import OTHER_ARCH, host_image
from tests.peers import Ctr, Ctrpy, run
from tests.registry.distribution import DistributionRegistry
from tests.registry.fixtures import BASIC_USERS, basic_registry, plain_registry, repo, require
from tests.treecmp import diff, feature_layers, tree

# the registry fixtures this file uses
FIXTURES = (basic_registry, plain_registry, repo)

pytestmark = pytest.mark.interop

NAME = "docker.io/library/pushed:v1"


def features() -> BuiltImage:
    return host_image(*feature_layers()).build()


def imported(ctrpy: Ctrpy, tmp_path: Path, item: BuiltImage | IndexBlob, name: str = NAME) -> Path:
    layout = OCILayout()
    layout.add_manifest(item, {ANNOTATION_REF_NAME: "v1", ANNOTATION_IMAGE_NAME: name})
    archive = tmp_path / "in.tar"
    layout.write_tar(archive)
    ctrpy("images", "import", "--no-unpack", "--all-platforms", archive)
    return archive


def skopeo(*args: str) -> bytes:
    require("skopeo")
    out: bytes = run("skopeo", *args, text=False).stdout
    return out


def pushed(ctrpy: Ctrpy, tmp_path: Path, item: BuiltImage | IndexBlob, registry: DistributionRegistry, repo: str,
           tag: str = "v1") -> str:
    """``item`` imported, then pushed by ctrpy to ``registry``/``repo``:``tag``; the reference."""
    imported(ctrpy, tmp_path, item)
    ref = f"{registry.host}/{repo}:{tag}"
    ctrpy("images", "push", ref, NAME)
    return ref


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_skopeo_inspect_sees_the_digest_ctrpy_pushed(
    ctrpy: Ctrpy, tmp_path: Path, plain_registry: DistributionRegistry, repo: str
) -> None:
    img = features()
    ref = pushed(ctrpy, tmp_path, img, plain_registry, repo)
    info = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{ref}"))
    assert info["Digest"] == img.manifest.digest
    assert info["Layers"] == [b.digest for b in img.layers]
    assert skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{ref}") == img.manifest.data


def test_skopeo_copy_brings_back_the_same_blobs_and_tree(
    ctrpy: Ctrpy, tmp_path: Path, plain_registry: DistributionRegistry, repo: str
) -> None:
    img = features()
    ref = pushed(ctrpy, tmp_path, img, plain_registry, repo)
    back = tmp_path / "back"
    skopeo("copy", "--src-tls-verify=false", f"docker://{ref}", f"oci:{back}:v1")
    for b in (img.manifest, img.config, *img.layers):
        assert (back / "blobs" / "sha256" / b.digest.split(":")[1]).read_bytes() == b.data
    again = Ctrpy(tmp_path / "root2")
    again("images", "import", "--no-unpack", "--oci-name", "docker.io/library/back", back)
    ctrpy("images", "extract", NAME, tmp_path / "original")
    again("images", "extract", "docker.io/library/back:v1", tmp_path / "copied")
    ours, theirs = tree(tmp_path / "original"), tree(tmp_path / "copied")
    assert ours == theirs, diff(ours, theirs, ("original", "pushed and copied back"))


def test_an_index_pushed_is_the_index_skopeo_copies_all_of(
    ctrpy: Ctrpy, tmp_path: Path, plain_registry: DistributionRegistry, repo: str
) -> None:
    images = [host_image([file("a", b"host")]).build(),
              host_image([file("a", b"other")], architecture=OTHER_ARCH, variant=None).build()]
    index = index_of(images)
    ref = pushed(ctrpy, tmp_path, index, plain_registry, repo, "multi")
    assert skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{ref}") == index.data
    back = tmp_path / "back"
    skopeo("copy", "--all", "--src-tls-verify=false", f"docker://{ref}", f"oci:{back}:v1")
    for img in images:
        for b in (img.manifest, img.config, *img.layers):
            assert (back / "blobs" / "sha256" / b.digest.split(":")[1]).read_bytes() == b.data


def ctr_digest(ctr: Ctr, ref: str) -> str:
    header, *rows = ctr("images", "ls").stdout.splitlines()
    cols = header.split()
    for row in rows:
        cells = row.split()
        if cells[0] == ref:
            return cells[cols.index("DIGEST")]
    raise AssertionError(f"{ref} not in ctr images ls")


def test_ctr_pulls_what_ctrpy_pushed_with_the_same_digest(
    ctr: Ctr, ctrpy: Ctrpy, tmp_path: Path, plain_registry: DistributionRegistry, repo: str
) -> None:
    img = host_image([file("etc/hello", b"hello ctr\n")], [file("bin/x", b"x" * 5000)]).build()
    ref = pushed(ctrpy, tmp_path, img, plain_registry, repo)
    ctr("images", "pull", "--plain-http", ref)
    assert ctr_digest(ctr, ref) == img.manifest.digest
    for b in (img.config, *img.layers):
        assert ctr("content", "get", b.digest, text=False).stdout == b.data


def test_ctr_pulls_one_platform_ctrpy_pushed_from_an_index(
    ctr: Ctr, ctrpy: Ctrpy, tmp_path: Path, plain_registry: DistributionRegistry, repo: str
) -> None:
    images = [host_image([file("a", b"host")]).build(),
              host_image([file("a", b"other")], architecture=OTHER_ARCH, variant=None).build()]
    imported(ctrpy, tmp_path, index_of(images))
    ref = f"{plain_registry.host}/{repo}:other"
    ctrpy("images", "push", "--platform", f"linux/{OTHER_ARCH}", ref, NAME)
    ctr("images", "pull", "--plain-http", "--platform", f"linux/{OTHER_ARCH}", ref)
    assert ctr_digest(ctr, ref) == images[1].manifest.digest


def test_ctr_pulls_with_the_credentials_ctrpy_pushed_with(
    ctr: Ctr, ctrpy: Ctrpy, tmp_path: Path, basic_registry: DistributionRegistry, repo: str
) -> None:
    img = host_image([file("secret", b"behind basic auth")]).build()
    imported(ctrpy, tmp_path, img)
    user, password = next(iter(BASIC_USERS.items()))
    ref = f"{basic_registry.host}/{repo}:v1"
    ctrpy("images", "push", "-u", f"{user}:{password}", ref, NAME)
    ctr("images", "pull", "--plain-http", "-u", f"{user}:{password}", ref)
    assert ctr_digest(ctr, ref) == img.manifest.digest
    assert sha(ctr("content", "get", img.manifest.digest, text=False).stdout) == img.manifest.digest


def last_frame(output: str) -> list[tuple[str, str]]:
    """ctr's last progress frame (into a pipe it appends a whole frame every 100 ms, each
    ending with an ``elapsed:`` line): (ref, status) of each row."""
    lines = output.splitlines()
    ends = [i for i, line in enumerate(lines) if line.startswith("elapsed:")]
    start = ends[-2] + 1 if len(ends) > 1 else 0
    out = []
    for line in lines[start:ends[-1]]:
        ref, _, rest = line.partition(": ")
        out.append((ref, rest.split()[0]))
    return out


def test_the_final_table_names_what_ctrs_last_frame_names(
    ctr: Ctr, ctrpy: Ctrpy, tmp_path: Path, plain_registry: DistributionRegistry, repo: str
) -> None:
    """ctr 1.6 names the top manifest ``manifest-TAG@sha256:...`` and leaves finished layers
    out of its last frame; ctrpy's table names every object as containerd's MakeRefKey does
    (``manifest-sha256:...``), each once."""
    img = host_image([file("etc/a", b"a" * 3000)], [file("etc/b", b"b" * 7000)]).build()
    archive = imported(ctrpy, tmp_path, img)
    ctr("images", "import", "--no-unpack", archive)
    theirs = last_frame(ctr("images", "push", "--plain-http", f"{plain_registry.host}/{repo}-ctr:v1", NAME).stdout)
    ours = [line.split(": ") for line in ctrpy("images", "push", f"{plain_registry.host}/{repo}:v1", NAME).stdout.splitlines()]
    assert [r for r, _ in theirs][:2] == [f"manifest-v1@{img.manifest.digest}", f"config-{img.config.digest}"]
    assert [r.strip() for r, _ in ours] == [f"manifest-{img.manifest.digest}", f"config-{img.config.digest}",
                                            *[f"layer-{b.digest}" for b in img.layers]]
    assert {s for _, s in theirs} == {s.strip() for _, s in ours} == {"done"}
