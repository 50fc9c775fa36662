"""Resolving references and fetching manifests: what is trusted, what is checked."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

import pytest

from ctrpy.oci import Descriptor, mediatypes
from ctrpy.remote import (
    MAX_MANIFEST,
    InvalidResponse,
    ManifestTooLarge,
    Registry,
    RemoteDigestMismatch,
    RemoteError,
    RemoteNotFound,
    RemoteSizeMismatch,
    UnsupportedManifest,
)
from tests.builders import Image, file, index_of
from tests.registry.distribution import DistributionRegistry
from tests.registry.faults import FaultProxy, Rule
from tests.registry.fixtures import small_image
from tests.registry.images import Pushed, push_index_with_missing_child, raw_put_manifest

pytestmark = pytest.mark.interop

Client = Callable[..., Registry]
Push = Callable[..., Pushed]

SCHEMA1 = json.dumps(
    {"schemaVersion": 1, "name": "old/app", "tag": "v1", "architecture": "amd64", "fsLayers": [], "history": []}
).encode()
SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def via(proxy: FaultProxy, pushed: Pushed, obj: str = "") -> str:
    sep = "@" if obj.startswith("sha256:") else ":"
    return f"{proxy.host}/{pushed.repo}{sep}{obj or pushed.tag}"


# -- resolve -----------------------------------------------------------------------------------


def test_resolve_a_tag_with_head_only(client: Client, pushed_image: Pushed, fault_proxy: FaultProxy) -> None:
    reg = client(via(fault_proxy, pushed_image))
    desc = reg.resolve()
    assert desc == Descriptor(mediatypes.OCI_MANIFEST, pushed_image.digest, pushed_image.manifest.size)
    assert [r.method for r in fault_proxy.requests] == ["HEAD"]
    accept = fault_proxy.requests[0].header("accept") or ""
    for t in (mediatypes.DOCKER_MANIFEST, mediatypes.DOCKER_MANIFEST_LIST, mediatypes.OCI_MANIFEST, mediatypes.OCI_INDEX):
        assert t in accept


def test_resolve_then_fetch_verifies_the_digest_the_head_announced(
    client: Client, pushed_image: Pushed, fault_proxy: FaultProxy
) -> None:
    reg = client(via(fault_proxy, pushed_image))
    desc = reg.resolve()
    assert reg.fetch_manifest(desc) == pushed_image.manifest.data
    assert fault_proxy.count("GET", f"/manifests/{pushed_image.digest}") == 1


@pytest.mark.parametrize("dropped", ["Content-Type", "Docker-Content-Digest"])
def test_head_without_a_usable_answer_falls_back_to_get(
    client: Client, pushed_image: Pushed, fault_proxy: FaultProxy, dropped: str
) -> None:
    fault_proxy.add(Rule("HEAD", "/manifests/", drop_headers=(dropped,)))
    reg = client(via(fault_proxy, pushed_image))
    desc = reg.resolve()
    assert desc.digest == pushed_image.digest
    assert desc.media_type == mediatypes.OCI_MANIFEST
    assert [r.method for r in fault_proxy.requests] == ["HEAD", "GET"]
    # the GET's bytes were verified and kept: fetching them again costs no request
    assert reg.fetch_manifest(desc) == pushed_image.manifest.data
    assert fault_proxy.count() == 2


def test_head_not_allowed_falls_back_to_get(client: Client, pushed_image: Pushed, fault_proxy: FaultProxy) -> None:
    fault_proxy.add(Rule("HEAD", "/manifests/", status=405))
    reg = client(via(fault_proxy, pushed_image))
    assert reg.resolve().digest == pushed_image.digest
    assert [r.method for r in fault_proxy.requests] == ["HEAD", "GET"]


def test_get_fallback_without_content_type_takes_the_media_type_from_the_body(
    client: Client, pushed_image: Pushed, fault_proxy: FaultProxy
) -> None:
    fault_proxy.add(Rule(None, "/manifests/", drop_headers=("Content-Type",)))
    reg = client(via(fault_proxy, pushed_image))
    assert reg.resolve().media_type == mediatypes.OCI_MANIFEST


def test_resolve_by_digest(client: Client, pushed_image: Pushed, fault_proxy: FaultProxy) -> None:
    reg = client(via(fault_proxy, pushed_image, pushed_image.digest))
    desc = reg.resolve()
    assert desc.digest == pushed_image.digest
    assert desc.size == pushed_image.manifest.size
    assert fault_proxy.requests[0].path.endswith(f"/manifests/{pushed_image.digest}")


def test_resolve_by_digest_falls_back_to_blobs(client: Client, pushed_image: Pushed, fault_proxy: FaultProxy) -> None:
    cfg = pushed_image.config_descriptor()
    reg = client(via(fault_proxy, pushed_image, cfg.digest))
    desc = reg.resolve()
    assert (desc.digest, desc.size) == (cfg.digest, cfg.size)
    # distribution 2.8 answers 500 ("unrecognized manifest schema version 0") on the manifests
    # endpoint for a blob that is no manifest: retried once, then the blobs endpoint
    assert [(r.method, r.path.rsplit("/", 2)[-2]) for r in fault_proxy.requests] == [
        ("HEAD", "manifests"),
        ("HEAD", "manifests"),
        ("HEAD", "blobs"),
    ]


def test_resolve_by_digest_argument(client: Client, pushed_image: Pushed) -> None:
    reg = client(pushed_image.ref)
    assert reg.resolve(pushed_image.digest).digest == pushed_image.digest
    assert reg.resolve(f"x@{pushed_image.digest}").digest == pushed_image.digest


def test_resolve_another_tag(client: Client, pushed_image: Pushed, push: Push) -> None:
    push(small_image(pushed_image.repo + "2"), pushed_image.repo, "v2")
    reg = client(pushed_image.ref)
    assert reg.resolve("v2").digest != reg.resolve("v1").digest


def test_wrong_digest_on_get_is_caught(client: Client, pushed_image: Pushed, fault_proxy: FaultProxy) -> None:
    fault_proxy.add(Rule("HEAD", "/manifests/", drop_headers=("Content-Type",)))
    fault_proxy.add(Rule("GET", "/manifests/", set_headers={"Docker-Content-Digest": sha(b"something else")}))
    reg = client(via(fault_proxy, pushed_image))
    with pytest.raises(RemoteDigestMismatch) as e:
        reg.resolve()
    assert sha(b"something else") in str(e.value) and pushed_image.digest in str(e.value)


def test_wrong_digest_on_head_is_caught_when_the_manifest_is_fetched(
    client: Client, pushed_image: Pushed, fault_proxy: FaultProxy
) -> None:
    """A lying registry: HEAD announces digest X for the tag, then serves other bytes for X."""
    fake = sha(b"not the manifest")
    fault_proxy.add(Rule("HEAD", "/manifests/v1$", set_headers={"Docker-Content-Digest": fake}))
    fault_proxy.add(
        Rule("GET", f"/manifests/{fake}", status=200, headers={"Content-Type": mediatypes.OCI_MANIFEST},
             body=pushed_image.manifest.data)
    )
    reg = client(via(fault_proxy, pushed_image))
    desc = reg.resolve()
    assert desc.digest == fake  # HEAD is all a resolve has; nothing is trusted yet
    with pytest.raises(RemoteDigestMismatch) as e:
        reg.fetch_manifest(desc)
    assert pushed_image.digest in str(e.value)


def test_head_by_digest_answering_for_another_digest_is_caught(
    client: Client, pushed_image: Pushed, fault_proxy: FaultProxy
) -> None:
    fault_proxy.add(Rule("HEAD", "/manifests/", set_headers={"Docker-Content-Digest": sha(b"other")}))
    reg = client(via(fault_proxy, pushed_image, pushed_image.digest))
    with pytest.raises(RemoteDigestMismatch, match="answers for digest"):
        reg.resolve()


def test_tag_not_found_names_the_reference(client: Client, pushed_image: Pushed) -> None:
    reg = client(f"{pushed_image.registry_host}/{pushed_image.repo}:no-such-tag")
    with pytest.raises(RemoteNotFound) as e:
        reg.resolve()
    assert f"{pushed_image.registry_host}/{pushed_image.repo}:no-such-tag" in str(e.value)
    assert e.value.status == 404


def test_repository_not_found(client: Client, plain_registry: DistributionRegistry, repo: str) -> None:
    reg = client(plain_registry.ref(repo, "v1"))
    with pytest.raises(RemoteNotFound, match=f"{repo}:v1: not found"):
        reg.resolve()


def test_schema1_is_refused_at_resolve(client: Client, pushed_image: Pushed, fault_proxy: FaultProxy) -> None:
    fault_proxy.add(
        Rule("HEAD", "/manifests/", status=200,
             headers={"Content-Type": SCHEMA1_SIGNED, "Docker-Content-Digest": sha(SCHEMA1), "Content-Length": str(len(SCHEMA1))})
    )
    reg = client(via(fault_proxy, pushed_image))
    with pytest.raises(UnsupportedManifest, match="schema 1 manifests are no longer supported"):
        reg.resolve()


def test_schema1_body_with_a_generic_type_is_refused(client: Client, pushed_image: Pushed, fault_proxy: FaultProxy) -> None:
    fault_proxy.add(Rule("HEAD", "/manifests/", status=200, headers={"Content-Length": str(len(SCHEMA1))}))
    fault_proxy.add(Rule("GET", "/manifests/", status=200, headers={"Content-Type": "application/json"}, body=SCHEMA1))
    reg = client(via(fault_proxy, pushed_image))
    with pytest.raises(UnsupportedManifest, match="schema 1"):
        reg.resolve()


def test_schema1_is_refused_when_fetched(client: Client, pushed_image: Pushed, fault_proxy: FaultProxy) -> None:
    d = sha(SCHEMA1)
    fault_proxy.add(Rule("GET", f"/manifests/{d}", status=200,
                         headers={"Content-Type": "application/vnd.docker.distribution.manifest.v1+json"}, body=SCHEMA1))
    reg = client(via(fault_proxy, pushed_image))
    with pytest.raises(UnsupportedManifest, match="schema 1 manifests are no longer supported"):
        reg.fetch_manifest(Descriptor(mediatypes.DOCKER_MANIFEST, d, len(SCHEMA1)))


def test_text_plain_schema1_is_refused(client: Client, pushed_image: Pushed, fault_proxy: FaultProxy) -> None:
    fault_proxy.add(Rule("HEAD", "/manifests/", status=200, headers={"Content-Type": "text/plain",
                                                                      "Content-Length": str(len(SCHEMA1))}))
    reg = client(via(fault_proxy, pushed_image))
    with pytest.raises(UnsupportedManifest):
        reg.resolve()


def test_manifest_over_4_mib_refused_from_head(client: Client, pushed_image: Pushed, fault_proxy: FaultProxy) -> None:
    fault_proxy.add(
        Rule("HEAD", "/manifests/", status=200,
             headers={"Content-Type": mediatypes.OCI_MANIFEST, "Docker-Content-Digest": sha(b"big"),
                      "Content-Length": str(MAX_MANIFEST + 1)})
    )
    reg = client(via(fault_proxy, pushed_image))
    with pytest.raises(ManifestTooLarge) as e:
        reg.resolve()
    assert str(MAX_MANIFEST + 1) in str(e.value) and "refused" in str(e.value)


def test_manifest_over_4_mib_refused_while_reading(client: Client, pushed_image: Pushed, fault_proxy: FaultProxy) -> None:
    big = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","x":"' + b"a" * (MAX_MANIFEST + 10) + b'"}'
    fault_proxy.add(Rule("HEAD", "/manifests/", status=405))
    fault_proxy.add(Rule("GET", "/manifests/", status=200, headers={"Content-Type": mediatypes.OCI_MANIFEST},
                         body=big, no_length=True))
    reg = client(via(fault_proxy, pushed_image))
    with pytest.raises(ManifestTooLarge, match="larger than"):
        reg.resolve()


def test_manifest_over_4_mib_refused_before_asking(client: Client, pushed_image: Pushed, fault_proxy: FaultProxy) -> None:
    reg = client(via(fault_proxy, pushed_image))
    with pytest.raises(ManifestTooLarge):
        reg.fetch_manifest(Descriptor(mediatypes.OCI_MANIFEST, sha(b"x"), MAX_MANIFEST + 1))
    assert fault_proxy.count() == 0


def test_distribution_refuses_a_manifest_over_4_mib_with_manifest_invalid(
    client: Client, plain_registry: DistributionRegistry, repo: str
) -> None:
    """The registry quirk: 400 MANIFEST_INVALID (not 413) for a manifest over 4 MiB."""
    big = json.dumps({"schemaVersion": 2, "mediaType": mediatypes.OCI_MANIFEST,
                      "annotations": {"x": "a" * (MAX_MANIFEST + 10)}}).encode()
    reg = client(plain_registry.ref(repo))
    with pytest.raises(RemoteError) as e:
        reg.put_manifest("big", mediatypes.OCI_MANIFEST, big)
    assert e.value.status == 400 and e.value.code == "MANIFEST_INVALID"


def test_manifest_size_is_checked(client: Client, pushed_image: Pushed, fault_proxy: FaultProxy) -> None:
    fault_proxy.add(Rule("GET", "/manifests/sha256:", extra_bytes=b"  "))
    reg = client(via(fault_proxy, pushed_image))
    with pytest.raises(RemoteSizeMismatch, match="expected"):
        reg.fetch_manifest(pushed_image.descriptor)


def test_corrupt_manifest_is_caught(client: Client, pushed_image: Pushed, fault_proxy: FaultProxy) -> None:
    fault_proxy.add(Rule("GET", "/manifests/sha256:", corrupt=True))
    reg = client(via(fault_proxy, pushed_image))
    with pytest.raises(RemoteDigestMismatch):
        reg.fetch_manifest(pushed_image.descriptor)


def test_media_type_disagreeing_with_content_type_is_refused(
    client: Client, pushed_image: Pushed, fault_proxy: FaultProxy
) -> None:
    fault_proxy.add(Rule("GET", "/manifests/sha256:", set_headers={"Content-Type": mediatypes.OCI_INDEX}))
    reg = client(via(fault_proxy, pushed_image))
    with pytest.raises(InvalidResponse) as e:
        reg.fetch_manifest(pushed_image.descriptor)
    assert mediatypes.OCI_INDEX in str(e.value) and mediatypes.OCI_MANIFEST in str(e.value)


@pytest.mark.parametrize(
    ("content_type", "says"),
    [
        pytest.param(mediatypes.OCI_MANIFEST, "Content-Type", id="told-by-the-content-type"),
        pytest.param("application/octet-stream", "disagrees", id="told-by-the-body-under-a-generic-content-type"),
    ],
)
def test_descriptor_media_type_disagreeing_with_the_manifest_is_refused(
    client: Client, pushed_image: Pushed, fault_proxy: FaultProxy, content_type: str, says: str
) -> None:
    fault_proxy.add(Rule("GET", "/manifests/sha256:", set_headers={"Content-Type": content_type}))
    reg = client(via(fault_proxy, pushed_image))
    wrong = Descriptor(mediatypes.DOCKER_MANIFEST, pushed_image.digest, pushed_image.manifest.size)
    with pytest.raises(InvalidResponse, match=says):
        reg.fetch_manifest(wrong)


def test_resolve_get_content_type_disagreeing_with_the_body_is_refused(
    client: Client, pushed_image: Pushed, fault_proxy: FaultProxy
) -> None:
    fault_proxy.add(Rule("HEAD", "/manifests/", status=405))
    fault_proxy.add(Rule("GET", "/manifests/", set_headers={"Content-Type": mediatypes.DOCKER_MANIFEST_LIST}))
    reg = client(via(fault_proxy, pushed_image))
    with pytest.raises(InvalidResponse, match="Content-Type"):
        reg.resolve()


def test_generic_content_type_is_accepted_for_a_known_descriptor(
    client: Client, pushed_image: Pushed, fault_proxy: FaultProxy
) -> None:
    fault_proxy.add(Rule("GET", "/manifests/sha256:", set_headers={"Content-Type": "application/octet-stream"}))
    reg = client(via(fault_proxy, pushed_image))
    assert reg.fetch_manifest(pushed_image.descriptor) == pushed_image.manifest.data


def test_docker_media_types(client: Client, plain_registry: DistributionRegistry, repo: str, push: Push) -> None:
    img = Image(layers=[[file("d.txt", b"docker")]], media_types="docker")
    pushed = push(img, repo)
    reg = client(pushed.ref)
    desc = reg.resolve()
    assert desc.media_type == mediatypes.DOCKER_MANIFEST
    assert json.loads(reg.fetch_manifest(desc))["mediaType"] == mediatypes.DOCKER_MANIFEST


def test_index_and_its_children(client: Client, repo: str, push: Push) -> None:
    amd = Image(layers=[[file("a", b"amd64")]])
    arm = Image(layers=[[file("a", b"arm64")]], architecture="arm64")
    idx = index_of([amd, arm])
    pushed = push(idx, repo, "multi")
    reg = client(pushed.ref)
    desc = reg.resolve()
    assert desc.media_type == mediatypes.OCI_INDEX and desc.digest == idx.digest
    index = json.loads(reg.fetch_manifest(desc))
    children = [Descriptor.from_json(m) for m in index["manifests"]]
    assert [c.platform.architecture for c in children if c.platform] == ["amd64", "arm64"]
    for c, img in zip(children, (amd, arm), strict=True):
        assert reg.fetch_manifest(c) == img.build().manifest.data


def test_index_with_a_deleted_child(client: Client, plain_registry: DistributionRegistry, repo: str) -> None:
    amd = Image(layers=[[file("a", b"gone")]])
    arm = Image(layers=[[file("a", b"kept")]], architecture="arm64")
    idx = index_of([amd, arm])
    gone = push_index_with_missing_child(plain_registry, repo, "broken", idx)
    reg = client(plain_registry.ref(repo, "broken"))
    desc = reg.resolve()
    index = json.loads(reg.fetch_manifest(desc))
    child = Descriptor.from_json(index["manifests"][0])
    assert child.digest == gone.manifest.digest
    with pytest.raises(RemoteNotFound) as e:
        reg.fetch_manifest(child)
    assert gone.manifest.digest in str(e.value)
    assert reg.fetch_manifest(Descriptor.from_json(index["manifests"][1])) == arm.build().manifest.data


def test_a_raw_pushed_manifest_under_a_digest(client: Client, plain_registry: DistributionRegistry, repo: str) -> None:
    img = small_image(repo, layers=1).build()
    from tests.registry.images import raw_push_blob

    for b in (img.config, *img.layers):
        raw_push_blob(plain_registry, repo, b.data)
    status, _ = raw_put_manifest(plain_registry, repo, img.manifest.digest, img.manifest.media_type, img.manifest.data)
    assert status == 201
    reg = client(f"{plain_registry.host}/{repo}@{img.manifest.digest}")
    assert reg.fetch_manifest(reg.resolve()) == img.manifest.data


def test_an_oci_manifest_without_media_type_field_is_accepted(
    client: Client, pushed_image: Pushed, fault_proxy: FaultProxy
) -> None:
    m = json.loads(pushed_image.manifest.data)
    del m["mediaType"]
    body = json.dumps(m).encode()
    fault_proxy.add(Rule("GET", f"/manifests/{sha(body)}", status=200, headers={"Content-Type": mediatypes.OCI_MANIFEST},
                         body=body))
    reg = client(via(fault_proxy, pushed_image))
    assert reg.fetch_manifest(Descriptor(mediatypes.OCI_MANIFEST, sha(body), len(body))) == body
    with pytest.raises(InvalidResponse, match=r"for a application/vnd\.oci\.image\.index"):  # index descriptor, manifest bytes
        reg.fetch_manifest(Descriptor(mediatypes.OCI_INDEX, sha(body), len(body)))
