"""oci.v1 archives between ctrpy and the real tools: skopeo, umoci and containerd's ctr.

Archives written by the peers import into ctrpy under the names ctr would give them, with
the manifest digests the peers wrote; archives ctrpy exports are read by skopeo (as an OCI
and as a docker archive) and imported by a private containerd, with and without unpacking,
to the same digests.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import pytest

from tests.builders import (
    ANNOTATION_IMAGE_NAME,
    ANNOTATION_REF_NAME,
    MT_OCI_LAYER_ZSTD,
    BuiltImage,
    Image,
    IndexBlob,
    OCILayout,
    chain_id,
    digest_hex,
    directory,
    file,
    index_of,
    layer_tar,
)
from tests.helpers import Runner
from tests.peers import Ctr, Ctrpy, run

pytestmark = pytest.mark.interop

DEMO = "docker.io/library/demo:v1"
OTHER = "docker.io/library/other:v2"


# ---------------------------------------------------------------------------------------------
# images built in code


def demo_image(text: str = "demo", *, arch: str = "amd64", variant: str | None = None) -> BuiltImage:
    """A small two-layer image whose content (and so every digest) depends on ``text``."""
    return Image(
        [
            [directory("etc"), file("etc/hello", f"hello from {text}\n".encode())],
            [directory("usr"), directory("usr/share"), file("usr/share/greeting", text.encode() * 100)],
        ],
        architecture=arch,
        variant=variant,
    ).build()


def multi_platform() -> tuple[IndexBlob, BuiltImage, BuiltImage]:
    amd64 = demo_image("multi", arch="amd64")
    arm64 = demo_image("multi", arch="arm64", variant="v8")
    return index_of([amd64, arm64]), amd64, arm64


def tag_of(name: str) -> str:
    return name.rsplit(":", 1)[1]


def named_archive(path: Path, *items: tuple[BuiltImage | IndexBlob, str]) -> Path:
    """An OCI archive as ``ctr export`` writes it: every entry named with the containerd
    annotation and a bare-tag ref.name."""
    layout = OCILayout()
    for item, name in items:
        layout.add_manifest(item, {ANNOTATION_IMAGE_NAME: name, ANNOTATION_REF_NAME: tag_of(name)})
    layout.write_tar(path)
    return path


def oci_dir(path: Path, image: BuiltImage, tag: str) -> Path:
    """An OCI layout directory (``oci:DIR:TAG`` for skopeo) holding ``image`` as ``tag``."""
    layout = OCILayout()
    layout.add_manifest(image, {ANNOTATION_REF_NAME: tag})
    return layout.write_dir(path)


# ---------------------------------------------------------------------------------------------
# reading archives and listings


def read_member(archive: Path, name: str) -> bytes:
    """A member of a tar, whether or not its name starts with ``./``."""
    with tarfile.open(archive) as tf:
        for m in tf:
            if m.name.removeprefix("./") == name:
                f = tf.extractfile(m)
                assert f is not None, f"{name} in {archive} is not a regular file"
                return f.read()
    raise AssertionError(f"{archive} has no member {name}")


def index_digests(archive: Path) -> list[str]:
    """The digests index.json names, in order."""
    return [m["digest"] for m in json.loads(read_member(archive, "index.json"))["manifests"]]


def blob_names(archive: Path) -> set[str]:
    with tarfile.open(archive) as tf:
        return {
            m.name.removeprefix("./")
            for m in tf
            if m.isfile() and m.name.removeprefix("./").startswith("blobs/sha256/")
        }


def blobs_of(*items: BuiltImage | IndexBlob) -> set[str]:
    out: set[str] = set()
    for item in items:
        for b in item.blobs():
            out.add(f"blobs/sha256/{digest_hex(b.digest)}")
    return out


def ctrpy_images(ctrpy: Ctrpy) -> dict[str, str]:
    """name -> target digest, from ``ctrpy images ls --json``."""
    items = json.loads(ctrpy("images", "ls", "--json").stdout)["items"]
    return {i["name"]: i["target"]["digest"] for i in items}


def ctr_images(ctr: Ctr) -> dict[str, str]:
    """name -> target digest, from ``ctr images ls`` (REF TYPE DIGEST ...)."""
    lines = ctr("images", "ls").stdout.splitlines()
    assert lines and lines[0].split()[:3] == ["REF", "TYPE", "DIGEST"], lines
    return {cols[0]: cols[2] for cols in (line.split() for line in lines[1:]) if cols}


def skopeo_inspect(skopeo: Runner, ref: str, *args: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(skopeo("inspect", *args, ref).stdout)
    return out


def imported_names(proc: CompletedProcess[str]) -> list[str]:
    return proc.stdout.split()


# ---------------------------------------------------------------------------------------------
# archives ctrpy exported


@dataclass
class Exported:
    path: Path
    name: str
    image: BuiltImage


@pytest.fixture
def exported(ctrpy: Ctrpy, tmp_path: Path) -> Exported:
    """``demo:v1`` imported from a built archive, then exported by ctrpy to ``out.tar``."""
    image = demo_image()
    ctrpy("images", "import", "--no-unpack", named_archive(tmp_path / "in.tar", (image, DEMO)))
    out = tmp_path / "out.tar"
    ctrpy("images", "export", out, DEMO)
    return Exported(out, DEMO, image)


# ---------------------------------------------------------------------------------------------
# skopeo's archives -> ctrpy


def skopeo_archive(skopeo: Runner, tmp_path: Path, image: BuiltImage, ref: str) -> Path:
    """``skopeo copy`` of an OCI layout dir holding ``image`` (tag v1) to an oci-archive named ``ref``."""
    src = oci_dir(tmp_path / "layout", image, "v1")
    archive = tmp_path / "skopeo.tar"
    skopeo("copy", f"oci:{src}:v1", f"oci-archive:{archive}:{ref}")
    return archive


def test_skopeo_archive_with_a_bare_tag_imports_under_the_base_name(
    ctrpy: Ctrpy, skopeo: Runner, tmp_path: Path
) -> None:
    archive = skopeo_archive(skopeo, tmp_path, demo_image(), "v1")

    proc = ctrpy("images", "import", "--no-unpack", "--base-name", "docker.io/library/demo", archive)

    assert imported_names(proc) == [DEMO]
    assert ctrpy_images(ctrpy) == {DEMO: index_digests(archive)[0]}


def test_skopeo_archive_with_a_full_ref_name_imports_under_that_name(
    ctrpy: Ctrpy, skopeo: Runner, tmp_path: Path
) -> None:
    archive = skopeo_archive(skopeo, tmp_path, demo_image(), OTHER)

    proc = ctrpy("images", "import", "--no-unpack", archive)

    assert imported_names(proc) == [OTHER]
    assert ctrpy_images(ctrpy) == {OTHER: index_digests(archive)[0]}


def test_skopeo_archive_inspects_with_the_images_config(ctrpy: Ctrpy, skopeo: Runner, tmp_path: Path) -> None:
    image = demo_image()
    archive = skopeo_archive(skopeo, tmp_path, image, "v1")
    ctrpy("images", "import", "--no-unpack", archive)

    inspected = json.loads(ctrpy("images", "inspect", "unknown/unknown:v1").stdout)

    assert inspected["target"]["digest"] == index_digests(archive)[0]
    assert inspected["config"]["rootfs"]["diff_ids"] == list(image.diff_ids)


def test_skopeo_zstd_archive_imports_with_its_zstd_layers(ctrpy: Ctrpy, skopeo: Runner, tmp_path: Path) -> None:
    src = oci_dir(tmp_path / "layout", demo_image(), "v1")
    archive = tmp_path / "zstd.tar"
    proc = skopeo(
        "copy", "--dest-compress-format", "zstd", "--dest-compress",
        f"oci:{src}:v1", f"oci-archive:{archive}:v1", check=False,
    )
    if proc.returncode != 0 and "zstd" in proc.stderr.lower():
        pytest.skip(f"this skopeo cannot write zstd layers: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads(read_member(archive, "blobs/sha256/" + digest_hex(index_digests(archive)[0])))
    if {layer["mediaType"] for layer in manifest["layers"]} != {MT_OCI_LAYER_ZSTD}:
        pytest.skip("this skopeo ignores --dest-compress-format zstd")

    ctrpy("images", "import", "--no-unpack", archive)

    inspected = json.loads(ctrpy("images", "inspect", "unknown/unknown:v1").stdout)
    assert inspected["target"]["digest"] == index_digests(archive)[0]
    assert [layer["mediaType"] for layer in inspected["manifest"]["layers"]] == [MT_OCI_LAYER_ZSTD] * 2


# ---------------------------------------------------------------------------------------------
# umoci's layouts -> ctrpy


@pytest.fixture
def umoci_archive(umoci: Runner, tmp_path: Path) -> tuple[Path, bytes]:
    """A layout made by umoci (init, new, raw add-layer), tarred by ``tar`` with ``./`` names;
    returns (archive, the uncompressed layer)."""
    layout = tmp_path / "umoci"
    layer = layer_tar([directory("etc"), file("etc/hello", b"hello from umoci\n")])
    (tmp_path / "layer.tar").write_bytes(layer)
    umoci("init", "--layout", layout)
    umoci("new", "--image", f"{layout}:v1")
    umoci("raw", "add-layer", "--image", f"{layout}:v1", tmp_path / "layer.tar")
    archive = tmp_path / "umoci.tar"

    run("tar", "-C", layout, "-cf", archive, ".")
    return archive, layer


def test_umoci_layout_imports_under_the_base_name_and_its_tag(
    ctrpy: Ctrpy, umoci_archive: tuple[Path, bytes]
) -> None:
    archive, _layer = umoci_archive

    proc = ctrpy("images", "import", "--no-unpack", archive)

    assert imported_names(proc) == ["unknown/unknown:v1"]
    assert ctrpy_images(ctrpy) == {"unknown/unknown:v1": index_digests(archive)[0]}


def test_umoci_layer_keeps_its_diff_id(ctrpy: Ctrpy, umoci_archive: tuple[Path, bytes]) -> None:
    archive, layer = umoci_archive
    ctrpy("images", "import", "--no-unpack", archive)

    inspected = json.loads(ctrpy("images", "inspect", "unknown/unknown:v1").stdout)

    assert inspected["config"]["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(layer).hexdigest()]


# ---------------------------------------------------------------------------------------------
# containerd's exports -> ctrpy


def test_ctr_export_imports_under_the_containerd_name(ctrpy: Ctrpy, ctr: Ctr, tmp_path: Path) -> None:
    image = demo_image()
    ctr("images", "import", "--no-unpack", "--all-platforms", named_archive(tmp_path / "in.tar", (image, DEMO)))
    archive = tmp_path / "ctr.tar"
    ctr("images", "export", archive, DEMO)

    proc = ctrpy("images", "import", "--no-unpack", archive)

    assert imported_names(proc) == [DEMO]
    assert ctrpy_images(ctrpy) == {DEMO: image.manifest.digest}


def test_ctr_export_of_two_images_imports_both(ctrpy: Ctrpy, ctr: Ctr, tmp_path: Path) -> None:
    demo, other = demo_image("demo"), demo_image("other")
    src = named_archive(tmp_path / "in.tar", (demo, DEMO), (other, OTHER))
    ctr("images", "import", "--no-unpack", "--all-platforms", src)
    archive = tmp_path / "ctr.tar"
    ctr("images", "export", archive, DEMO, OTHER)

    proc = ctrpy("images", "import", "--no-unpack", archive)

    assert sorted(imported_names(proc)) == [DEMO, OTHER]
    assert ctrpy_images(ctrpy) == {DEMO: demo.manifest.digest, OTHER: other.manifest.digest}


def test_ctr_export_of_an_index_imports_with_all_platforms(ctrpy: Ctrpy, ctr: Ctr, tmp_path: Path) -> None:
    index, _amd64, _arm64 = multi_platform()
    ctr("images", "import", "--no-unpack", "--all-platforms", named_archive(tmp_path / "in.tar", (index, DEMO)))
    archive = tmp_path / "ctr.tar"
    ctr("images", "export", "--all-platforms", archive, DEMO)

    ctrpy("images", "import", "--no-unpack", "--all-platforms", archive)

    assert ctrpy_images(ctrpy) == {DEMO: index.digest}
    assert blob_names(archive) == blobs_of(index)


# ---------------------------------------------------------------------------------------------
# ctrpy's exports -> skopeo


def test_export_is_read_by_skopeo_as_an_oci_archive(exported: Exported, skopeo: Runner) -> None:
    info = skopeo_inspect(skopeo, f"oci-archive:{exported.path}")

    assert info["Digest"] == exported.image.manifest.digest
    assert info["Layers"] == [b.digest for b in exported.image.layers]


def test_export_is_read_by_skopeo_as_a_docker_archive_by_its_name(exported: Exported, skopeo: Runner) -> None:
    info = skopeo_inspect(skopeo, f"docker-archive:{exported.path}:demo:v1")

    assert info["Name"] == "docker.io/library/demo"
    assert info["Layers"] == list(exported.image.diff_ids)


def test_export_is_read_by_skopeo_with_the_same_config(exported: Exported, skopeo: Runner) -> None:
    raw = skopeo("inspect", "--raw", "--config", f"docker-archive:{exported.path}", text=False).stdout

    assert raw == exported.image.config.data


def test_export_copies_with_skopeo_into_an_oci_layout(exported: Exported, skopeo: Runner, tmp_path: Path) -> None:
    dest = tmp_path / "copied"

    skopeo("copy", f"oci-archive:{exported.path}", f"oci:{dest}:x")

    index = json.loads((dest / "index.json").read_text())
    assert [m["digest"] for m in index["manifests"]] == [exported.image.manifest.digest]


# ---------------------------------------------------------------------------------------------
# ctrpy's exports -> containerd


def test_export_imports_into_containerd_without_unpacking(exported: Exported, ctr: Ctr) -> None:
    ctr("images", "import", "--no-unpack", exported.path)

    assert ctr_images(ctr) == {DEMO: exported.image.manifest.digest}


def test_export_imports_into_containerd_and_unpacks_with_the_native_snapshotter(
    exported: Exported, ctr: Ctr
) -> None:
    proc = ctr("images", "import", "--snapshotter", "native", exported.path)

    assert proc.stdout.strip().endswith(f"unpacking {DEMO} ({exported.image.manifest.digest})...done")
    assert ctr_images(ctr) == {DEMO: exported.image.manifest.digest}
    snapshots = ctr("snapshots", "--snapshotter", "native", "ls").stdout.split()
    assert chain_id(exported.image.diff_ids) in snapshots


def test_export_is_what_containerd_exports_again(exported: Exported, ctr: Ctr, tmp_path: Path) -> None:
    ctr("images", "import", "--no-unpack", exported.path)
    again = tmp_path / "ctr.tar"

    ctr("images", "export", again, DEMO)

    assert blob_names(again) == blob_names(exported.path) == blobs_of(exported.image)
    assert json.loads(read_member(again, "manifest.json")) == json.loads(read_member(exported.path, "manifest.json"))


# ---------------------------------------------------------------------------------------------
# round trips


def test_export_imported_again_gives_the_same_names_and_digests(
    exported: Exported, ctrpy: Ctrpy, tmp_path: Path
) -> None:
    fresh = Ctrpy(tmp_path / "root2")

    fresh("images", "import", "--no-unpack", exported.path)

    assert ctrpy_images(fresh) == ctrpy_images(ctrpy) == {DEMO: exported.image.manifest.digest}


def test_export_of_a_reimported_export_is_byte_identical(exported: Exported, tmp_path: Path) -> None:
    fresh = Ctrpy(tmp_path / "root2")
    fresh("images", "import", "--no-unpack", exported.path)

    fresh("images", "export", tmp_path / "again.tar", DEMO)

    assert (tmp_path / "again.tar").read_bytes() == exported.path.read_bytes()


def test_exporting_twice_gives_byte_identical_archives(exported: Exported, ctrpy: Ctrpy, tmp_path: Path) -> None:
    ctrpy("images", "export", tmp_path / "second.tar", DEMO)

    assert (tmp_path / "second.tar").read_bytes() == exported.path.read_bytes()


def test_export_to_stdout_equals_export_to_a_file(exported: Exported, ctrpy: Ctrpy) -> None:
    proc = ctrpy("images", "export", "-", DEMO, text=False)

    assert proc.stdout == exported.path.read_bytes()


# ---------------------------------------------------------------------------------------------
# several images in one archive


@pytest.fixture
def two_exported(ctrpy: Ctrpy, tmp_path: Path) -> tuple[Path, BuiltImage, BuiltImage]:
    demo, other = demo_image("demo"), demo_image("other")
    ctrpy("images", "import", "--no-unpack", named_archive(tmp_path / "in.tar", (demo, DEMO), (other, OTHER)))
    out = tmp_path / "two.tar"
    ctrpy("images", "export", out, DEMO, OTHER)
    return out, demo, other


def test_archive_with_two_images_imports_both(ctrpy: Ctrpy, tmp_path: Path) -> None:
    demo, other = demo_image("demo"), demo_image("other")
    archive = named_archive(tmp_path / "in.tar", (demo, DEMO), (other, OTHER))

    proc = ctrpy("images", "import", "--no-unpack", archive)

    assert imported_names(proc) == [DEMO, OTHER]
    assert ctrpy_images(ctrpy) == {DEMO: demo.manifest.digest, OTHER: other.manifest.digest}


def test_export_of_two_images_imports_into_containerd_as_both(
    two_exported: tuple[Path, BuiltImage, BuiltImage], ctr: Ctr
) -> None:
    out, demo, other = two_exported

    ctr("images", "import", "--no-unpack", out)

    assert ctr_images(ctr) == {DEMO: demo.manifest.digest, OTHER: other.manifest.digest}


def test_export_of_two_images_is_read_by_skopeo_per_tag(
    two_exported: tuple[Path, BuiltImage, BuiltImage], skopeo: Runner
) -> None:
    out, demo, other = two_exported

    assert skopeo_inspect(skopeo, f"oci-archive:{out}:v1")["Digest"] == demo.manifest.digest
    assert skopeo_inspect(skopeo, f"oci-archive:{out}:v2")["Digest"] == other.manifest.digest


def test_export_of_two_images_is_read_by_skopeo_as_a_docker_archive_per_name(
    two_exported: tuple[Path, BuiltImage, BuiltImage], skopeo: Runner
) -> None:
    out, demo, other = two_exported

    assert skopeo_inspect(skopeo, f"docker-archive:{out}:demo:v1")["Layers"] == list(demo.diff_ids)
    assert skopeo_inspect(skopeo, f"docker-archive:{out}:other:v2")["Layers"] == list(other.diff_ids)


# ---------------------------------------------------------------------------------------------
# a multi-platform index


@pytest.fixture
def index_archive(tmp_path: Path) -> tuple[Path, IndexBlob, BuiltImage, BuiltImage]:
    index, amd64, arm64 = multi_platform()
    return named_archive(tmp_path / "index.tar", (index, DEMO)), index, amd64, arm64


def export_arm64(ctrpy: Ctrpy, index_archive: tuple[Path, IndexBlob, BuiltImage, BuiltImage], out: Path) -> Path:
    """Import the index archive for linux/arm64 only, and export that platform to ``out``."""
    return round_trip(ctrpy, index_archive[0], out, "--platform", "linux/arm64")


def round_trip(ctrpy: Ctrpy, archive: Path, out: Path, *platforms: str) -> Path:
    """``images import --no-unpack PLATFORMS archive``, then ``images export PLATFORMS out DEMO``."""
    ctrpy("images", "import", "--no-unpack", *platforms, archive)
    ctrpy("images", "export", *platforms, out, DEMO)
    return out


def test_arm64_export_is_read_by_skopeo_as_the_arm64_image(
    index_archive: tuple[Path, IndexBlob, BuiltImage, BuiltImage], ctrpy: Ctrpy, skopeo: Runner, tmp_path: Path
) -> None:
    _archive, index, _amd64, arm64 = index_archive
    out = export_arm64(ctrpy, index_archive, tmp_path / "arm64.tar")

    info = skopeo_inspect(skopeo, f"oci-archive:{out}", "--override-arch", "arm64", "--override-variant", "v8")
    # skopeo's Digest is the top-level (index) digest; the rest describes the chosen image
    assert (info["Digest"], info["Architecture"]) == (index.digest, "arm64")
    assert info["Layers"] == [b.digest for b in arm64.layers]


def test_arm64_export_holds_the_blobs_ctr_exports_for_arm64(
    index_archive: tuple[Path, IndexBlob, BuiltImage, BuiltImage], ctrpy: Ctrpy, ctr: Ctr, tmp_path: Path
) -> None:
    archive, index, _amd64, arm64 = index_archive
    ctr("images", "import", "--no-unpack", "--all-platforms", archive)
    ctr("images", "export", "--platform", "linux/arm64", tmp_path / "ctr.tar", DEMO)
    ctrpy("images", "import", "--no-unpack", "--platform", "linux/arm64", archive)

    ctrpy("images", "export", "--platform", "linux/arm64", tmp_path / "ours.tar", DEMO)

    assert blob_names(tmp_path / "ours.tar") == blob_names(tmp_path / "ctr.tar") == blobs_of(arm64) | {
        f"blobs/sha256/{digest_hex(index.digest)}"
    }


def test_arm64_export_imports_into_containerd_for_arm64(
    index_archive: tuple[Path, IndexBlob, BuiltImage, BuiltImage], ctrpy: Ctrpy, ctr: Ctr, tmp_path: Path
) -> None:
    _archive, index, _amd64, arm64 = index_archive
    out = export_arm64(ctrpy, index_archive, tmp_path / "arm64.tar")

    ctr("images", "import", "--no-unpack", "--platform", "linux/arm64", out)

    assert ctr_images(ctr) == {DEMO: index.digest}
    in_containerd = set(ctr("content", "ls", "-q").stdout.split())
    assert {b.digest for b in arm64.blobs()} <= in_containerd


def test_all_platforms_export_imports_into_containerd_with_every_platform(
    index_archive: tuple[Path, IndexBlob, BuiltImage, BuiltImage], ctrpy: Ctrpy, ctr: Ctr, tmp_path: Path
) -> None:
    archive, index, _amd64, _arm64 = index_archive
    out = round_trip(ctrpy, archive, tmp_path / "all.tar", "--all-platforms")

    ctr("images", "import", "--no-unpack", "--all-platforms", out)
    ctr("images", "export", "--all-platforms", tmp_path / "ctr.tar", DEMO)

    assert ctr_images(ctr) == {DEMO: index.digest}
    assert blob_names(tmp_path / "ctr.tar") == blob_names(out) == blobs_of(index)


def test_all_platforms_export_is_read_by_skopeo_for_each_platform(
    index_archive: tuple[Path, IndexBlob, BuiltImage, BuiltImage], ctrpy: Ctrpy, skopeo: Runner, tmp_path: Path
) -> None:
    archive, _index, amd64, arm64 = index_archive
    out = round_trip(ctrpy, archive, tmp_path / "all.tar", "--all-platforms")

    ref = f"oci-archive:{out}"
    for image, args in ((amd64, ["--override-arch", "amd64"]), (arm64, ["--override-arch", "arm64"])):
        info = skopeo_inspect(skopeo, ref, *args)
        assert info["Architecture"] == image.platform["architecture"]
        assert info["Layers"] == [b.digest for b in image.layers]
