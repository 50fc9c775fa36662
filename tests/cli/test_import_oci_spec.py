"""The OCI image-spec's own documents, built into layout archives, imported.

The cases follow the image-spec's examples (image-layout.md, manifest.md, image-index.md,
artifacts-guidance.md) and the valid and invalid documents of its ``schema/*_test.go``:
each is rebuilt here with real blobs (the spec's digests name nothing), keeping what the
case is about: media types, artifact types, subjects, annotations, data fields, digest
algorithms.  The spec's rules under test:

* an encountered media type that is unknown MUST be ignored (not an error: a warning);
* a config media type an implementation does not know MUST NOT be parsed (an artifact is
  recorded as an image, never unpacked, and the images beside it import normally);
* documents the schema refuses are refused with one line, and the store is unchanged.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.builders import (
    ANNOTATION_IMAGE_NAME,
    ANNOTATION_REF_NAME,
    MT_OCI_INDEX,
    MT_OCI_MANIFEST,
    Blob,
    OCILayout,
    file,
    go_json,
)
from tests.helpers import HOST, Cli, host_image

EMPTY = Blob("application/vnd.oci.empty.v1+json", b"{}")
SBOM = "application/spdx+json"
EXAMPLE = "application/vnd.example+type"


def desc(blob: Blob, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"mediaType": blob.media_type, "digest": blob.digest, "size": blob.size}
    out.update(extra)
    return out


def artifact_manifest(
    config: Blob, layers: list[Blob], *, artifact_type: str | None = None, subject: Blob | None = None,
    annotations: dict[str, str] | None = None,
) -> Blob:
    doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": MT_OCI_MANIFEST}
    if artifact_type:
        doc["artifactType"] = artifact_type
    doc["config"] = desc(config)
    doc["layers"] = [desc(layer) for layer in layers]
    if subject is not None:
        doc["subject"] = desc(subject)
    if annotations:
        doc["annotations"] = annotations
    return Blob(MT_OCI_MANIFEST, go_json(doc))


def index_blob(entries: list[dict[str, Any]], **extra: Any) -> Blob:
    doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": MT_OCI_INDEX, "manifests": entries}
    doc.update(extra)
    return Blob(MT_OCI_INDEX, go_json(doc))


def layout_archive(layout: OCILayout, *blobs: Blob) -> bytes:
    for b in blobs:
        layout.add_blob(b)
    return layout.tar_bytes()


def host_platform() -> dict[str, str]:
    p = {"architecture": HOST.architecture, "os": "linux"}
    if HOST.variant:
        p["variant"] = HOST.variant
    return p


# --------------------------------------------------------------------------- artifacts
def test_an_artifact_with_the_empty_config_is_imported_as_an_image_and_not_unpacked(run: Cli) -> None:
    payload = Blob(EXAMPLE, b"an artifact's payload")
    art = artifact_manifest(EMPTY, [payload], artifact_type=EXAMPLE)
    layout = OCILayout()
    layout.add_manifest(art, {ANNOTATION_IMAGE_NAME: "example.com/art:1"})
    r = run.ok("images", "import", run.write(layout_archive(layout, EMPTY, payload)))
    assert r.stdout == f"unpacking example.com/art:1 ({art.digest})...done\n"
    assert run.names() == ["example.com/art:1"]
    assert run.snapshot_keys() == []  # nothing to unpack


def test_an_artifact_with_its_own_config_type_imports_even_with_no_unpack(run: Cli) -> None:
    config = Blob("application/vnd.example.config+json", b'{"hello":"world"}')
    part = Blob("application/vnd.example.data.v1.tar+gzip", b"not a tar at all")
    art = artifact_manifest(config, [part])
    layout = OCILayout()
    layout.add_manifest(art, {ANNOTATION_IMAGE_NAME: "example.com/cfg:1"})
    run.ok("images", "import", "--no-unpack", run.write(layout_archive(layout, config, part)))
    assert run.names() == ["example.com/cfg:1"]


def test_an_artifact_can_be_checked_exported_and_inspected(run: Cli) -> None:
    payload = Blob(SBOM, b'{"spdxVersion":"SPDX-2.3"}')
    art = artifact_manifest(EMPTY, [payload], artifact_type=SBOM)
    layout = OCILayout()
    layout.add_manifest(art, {ANNOTATION_IMAGE_NAME: "example.com/sbom:1"})
    run.ok("images", "import", run.write(layout_archive(layout, EMPTY, payload)))
    check = json.loads(run.ok("images", "check", "--json").stdout)["items"][0]
    assert (check["complete"], check["present"], check["required"]) == (True, 2, 2)
    assert json.loads(run.ok("images", "inspect", "example.com/sbom:1").stdout)["manifest"]["artifactType"] == SBOM
    out = run.workdir / "out.tar"
    run.ok("images", "export", str(out), "example.com/sbom:1")
    run.ok("-n", "again", "images", "import", str(out))
    assert run.names("again") == ["example.com/sbom:1"]


def test_extracting_an_artifact_is_one_clear_error(run: Cli) -> None:
    art = artifact_manifest(EMPTY, [Blob(EXAMPLE, b"x")], artifact_type=EXAMPLE)
    layout = OCILayout()
    layout.add_manifest(art, {ANNOTATION_IMAGE_NAME: "example.com/art:1"})
    run.ok("images", "import", run.write(layout_archive(layout, EMPTY, Blob(EXAMPLE, b"x"))))
    run.fails("images", "extract", "example.com/art:1", str(run.workdir / "rootfs"), match=("artifact", "example.com/art:1"))


def test_an_sbom_beside_an_image_in_an_index_does_not_stop_the_image_from_unpacking(run: Cli) -> None:
    img = host_image([file("hello", b"hi")]).build()
    payload = Blob(SBOM, b'{"spdxVersion":"SPDX-2.3"}')
    sbom = artifact_manifest(EMPTY, [payload], artifact_type=SBOM, subject=img.manifest)
    index = index_blob([
        desc(img.manifest, platform=host_platform()),
        desc(sbom, artifactType=SBOM),
    ])
    layout = OCILayout()
    layout.add_manifest(index, {ANNOTATION_IMAGE_NAME: "example.com/app:1"})
    archive = layout_archive(layout, *img.blobs(), sbom, EMPTY, payload)
    r = run.ok("images", "import", run.write(archive))
    assert r.stdout == f"unpacking example.com/app:1 ({index.digest})...done\n"
    rootfs = run.workdir / "rootfs"
    run.ok("images", "extract", "example.com/app:1", str(rootfs))
    assert (rootfs / "hello").read_bytes() == b"hi"


def test_a_buildkit_attestation_for_unknown_unknown_is_not_required(run: Cli) -> None:
    img = host_image([file("hello", b"hi")]).build()
    att = artifact_manifest(EMPTY, [Blob("application/vnd.in-toto+json", b"{}")])
    index = index_blob([
        desc(img.manifest, platform=host_platform()),
        desc(att, platform={"architecture": "unknown", "os": "unknown"},
             annotations={"vnd.docker.reference.type": "attestation-manifest",
                          "vnd.docker.reference.digest": img.manifest.digest}),
    ])
    layout = OCILayout()
    layout.add_manifest(index, {ANNOTATION_IMAGE_NAME: "example.com/app:1"})
    run.ok("images", "import", run.write(layout_archive(layout, *img.blobs())))  # the attestation is absent
    assert run.names() == ["example.com/app:1"]


# --------------------------------------------------------------------------- unknown media types
@pytest.mark.parametrize(
    "entry",
    [
        {"mediaType": "application/xml", "size": 7143,
         "digest": "sha256:b5b2b2c507a0944348e0303114d8d93aaaa081732b86451d9bce1f432a537bc7",
         "annotations": {"org.freedesktop.specifications.metainfo.version": "1.0"}},
        {"mediaType": "application/octet-stream", "size": 0,
         "digest": "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"mediaType": "text/plain", "size": 12, "data": base64.b64encode(b"hello world\n").decode(),
         "digest": "sha256:a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447"},
        {"mediaType": "application/customized.manifest+json", "size": 7143,
         "digest": "sha256:5b0bcabd1ed22e9fb1310cf6c2dec7cdef19f0ad69efa1f392e94a4333501270"},
        {"mediaType": "application/vnd.example+type", "size": 12,
         "digest": "sha512:" + "a" * 128},
        {"mediaType": "application/vnd.example+type", "size": 12,
         "digest": "sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564"},
    ],
    ids=["xml", "octet-stream-size-0", "text-plain-data", "customized-manifest", "sha512", "b64u"],
)
def test_an_index_json_entry_of_an_unknown_media_type_is_skipped_with_a_warning(run: Cli, entry: dict[str, Any]) -> None:
    img = host_image([file("hello", b"hi")]).build()
    layout = OCILayout()
    layout.add_manifest(img, {ANNOTATION_REF_NAME: "v1"})
    layout.manifests.append(entry)
    r = run.ok("images", "import", "--oci-name", "example.com/app", run.write(layout.tar_bytes()))
    assert f"skipping {entry['digest']}: unknown media type {entry['mediaType']!r}" in r.stderr
    assert run.names() == ["example.com/app:v1"]


def test_an_unknown_entry_in_a_nested_index_is_skipped_and_its_blob_kept_when_present(run: Cli) -> None:
    img = host_image([file("hello", b"hi")]).build()
    xml = Blob("application/xml", b"<component/>")
    nested = index_blob([desc(img.manifest, platform=host_platform()), desc(xml)])
    layout = OCILayout()
    layout.add_manifest(nested, {ANNOTATION_IMAGE_NAME: "example.com/app:1"})
    r = run.ok("images", "import", run.write(layout_archive(layout, *img.blobs(), xml)))
    assert f"skipping {xml.digest}" in r.stderr
    out = run.workdir / "out.tar"
    run.ok("images", "export", str(out), "example.com/app:1")
    run.ok("-n", "copy", "images", "import", str(out))
    assert run.ok("-n", "copy", "content", "get", xml.digest).stdout_bytes == xml.data


def test_the_image_layout_example_with_a_nested_index_and_an_xml_entry_imports(run: Cli) -> None:
    """image-layout.md's index.json: a nested index (stable-release), a platform manifest
    (v1.0) and an application/xml entry, with index annotations."""
    img = host_image([file("hello", b"hi")]).build()
    stable = index_blob([desc(img.manifest, platform=host_platform())])
    xml = Blob("application/xml", b"<component/>")
    layout = OCILayout(index_annotations={"com.example.index.revision": "r124356"})
    layout.add_manifest(stable, {ANNOTATION_REF_NAME: "stable-release"})
    layout.add_manifest(img, {ANNOTATION_REF_NAME: "v1.0"}, platform=True)
    layout.manifests.append(desc(xml, annotations={"org.freedesktop.specifications.metainfo.type": "AppStream"}))
    r = run.ok("images", "import", "--oci-name", "example.com/app", run.write(layout_archive(layout, xml)))
    assert "unknown media type 'application/xml'" in r.stderr
    assert run.names() == ["example.com/app:stable-release", "example.com/app:v1.0"]


def test_an_index_with_an_artifact_type_and_a_subject_imports(run: Cli) -> None:
    img = host_image([file("hello", b"hi")]).build()
    index = index_blob([desc(img.manifest, platform=host_platform())], artifactType=EXAMPLE,
                       subject=desc(img.manifest))
    layout = OCILayout()
    layout.add_manifest(index, {ANNOTATION_IMAGE_NAME: "example.com/app:1"})
    run.ok("images", "import", run.write(layout_archive(layout, *img.blobs())))
    assert run.names() == ["example.com/app:1"]


def test_an_index_of_only_artifacts_is_recorded_as_an_artifact(run: Cli) -> None:
    a = artifact_manifest(EMPTY, [Blob(EXAMPLE, b"1")], artifact_type=EXAMPLE)
    b = artifact_manifest(EMPTY, [Blob(EXAMPLE, b"2")], artifact_type=EXAMPLE)
    index = index_blob([desc(a), desc(b)])
    layout = OCILayout()
    layout.add_manifest(index, {ANNOTATION_IMAGE_NAME: "example.com/arts:1"})
    run.ok("images", "import", run.write(layout_archive(layout, a, b, EMPTY, Blob(EXAMPLE, b"1"), Blob(EXAMPLE, b"2"))))
    assert run.names() == ["example.com/arts:1"]


# --------------------------------------------------------------------------- digests
def test_an_unreferenced_sha512_blob_is_skipped_with_a_warning(run: Cli) -> None:
    img = host_image([file("hello", b"hi")]).build()
    layout = OCILayout(extra_files={"blobs/sha512/" + "c" * 128: b"some bytes"})
    layout.add_manifest(img, {ANNOTATION_IMAGE_NAME: "example.com/app:1"})
    r = run.ok("images", "import", run.write(layout.tar_bytes()))
    assert "digest algorithm sha512 is not supported" in r.stderr


def test_a_manifest_needing_a_sha512_blob_says_the_algorithm_is_not_supported(populated: Cli) -> None:
    run = populated
    layer = {"mediaType": EXAMPLE, "size": 3, "digest": "sha512:" + "d" * 128}
    doc = {"schemaVersion": 2, "mediaType": MT_OCI_MANIFEST, "artifactType": EXAMPLE,
           "config": desc(EMPTY), "layers": [layer]}
    art = Blob(MT_OCI_MANIFEST, go_json(doc))
    layout = OCILayout()
    layout.add_manifest(art, {ANNOTATION_IMAGE_NAME: "example.com/art:1"})
    before = run.state()
    run.fails("images", "import", run.write(layout_archive(layout, EMPTY)),
              match=("sha512", "not supported", "example.com/art:1"))
    run.assert_unchanged(before)


# --------------------------------------------------------------------------- what the schema refuses
BAD_ENTRIES = {
    "size-is-a-string": {"size": "7682"},
    "digest-missing": {"digest": None},
    "negative-size": {"size": -1},
    "platform-without-architecture": {"platform": {"os": "linux"}},
    "data-not-base64": {"data": "not base64!"},
}


@pytest.mark.parametrize("case", sorted(BAD_ENTRIES))
def test_an_index_entry_the_schema_refuses_is_one_clear_error(populated: Cli, case: str) -> None:
    run = populated
    img = host_image([file("hello", b"hi")]).build()
    layout = OCILayout()
    entry = layout.add_manifest(img, {ANNOTATION_IMAGE_NAME: "example.com/app:1"})
    for k, v in BAD_ENTRIES[case].items():
        if v is None:
            del entry[k]
        else:
            entry[k] = v
    before = run.state()
    run.fails("images", "import", run.write(layout.tar_bytes()), match="index.json manifests[0]")
    run.assert_unchanged(before)
    run.assert_store_works()


def test_an_index_that_carries_a_config_is_refused_as_ambiguous(run: Cli) -> None:
    img = host_image([file("hello", b"hi")]).build()
    doc = {"schemaVersion": 2, "mediaType": MT_OCI_INDEX, "config": desc(img.config),
           "manifests": [desc(img.manifest, platform=host_platform())]}
    index = Blob(MT_OCI_INDEX, go_json(doc))
    layout = OCILayout()
    layout.add_manifest(index, {ANNOTATION_IMAGE_NAME: "example.com/app:1"})
    run.fails("images", "import", run.write(layout_archive(layout, *img.blobs())), match=("index", "manifest"))


def test_a_manifest_whose_media_type_disagrees_with_its_descriptor_is_refused(run: Cli) -> None:
    img = host_image([file("hello", b"hi")]).build()
    doc = json.loads(img.manifest.data)
    doc["mediaType"] = "application/vnd.docker.distribution.manifest.v2+json"
    liar = Blob(MT_OCI_MANIFEST, go_json(doc))
    layout = OCILayout()
    layout.add_manifest(liar, {ANNOTATION_IMAGE_NAME: "example.com/app:1"})
    run.fails("images", "import", run.write(layout_archive(layout, img.config, *img.layers)),
              match=("mediaType", "disagrees"))


def test_a_schema_1_manifest_is_refused_saying_so(run: Cli) -> None:
    doc = {"schemaVersion": 1, "name": "library/x", "tag": "1", "fsLayers": [], "history": []}
    old = Blob(MT_OCI_MANIFEST, go_json(doc))
    layout = OCILayout()
    layout.add_manifest(old, {ANNOTATION_IMAGE_NAME: "example.com/old:1"})
    run.fails("images", "import", run.write(layout.tar_bytes()), match="schema 1")


# --------------------------------------------------------------------------- depth and breadth
def test_an_index_nested_deeper_than_pythons_recursion_limit_imports(run: Cli) -> None:
    img = host_image([file("hello", b"hi")]).build()
    top = index_blob([desc(img.manifest, platform=host_platform())])
    chain = [top]
    for _ in range(1100):  # sys.getrecursionlimit() is 1000: a recursive walk would fail
        top = index_blob([desc(top)])
        chain.append(top)
    layout = OCILayout()
    layout.add_manifest(top, {ANNOTATION_IMAGE_NAME: "example.com/deep:1"})
    r = run.ok("images", "import", run.write(layout_archive(layout, *img.blobs(), *chain[:-1])))
    assert r.stdout == f"unpacking example.com/deep:1 ({top.digest})...done\n"
    assert "complete (2/2)" in run.ok("images", "check").stdout


def test_an_index_with_ten_thousand_entries_imports(run: Cli) -> None:
    img = host_image([file("hello", b"hi")]).build()
    entries = [desc(img.manifest, platform=host_platform())]
    entries += [{"mediaType": MT_OCI_MANIFEST, "size": 100, "digest": f"sha256:{i:064x}",
                 "platform": {"architecture": "s390x", "os": "linux"}} for i in range(1, 10_000)]
    index = index_blob(entries)
    layout = OCILayout()
    layout.add_manifest(index, {ANNOTATION_IMAGE_NAME: "example.com/wide:1"})
    run.ok("images", "import", run.write(layout_archive(layout, *img.blobs())))
    assert run.names() == ["example.com/wide:1"]
