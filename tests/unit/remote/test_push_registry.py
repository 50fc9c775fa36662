"""The push side against distribution 2.8: existence checks, mounts, uploads (one PUT or
chunked PATCHes), digests checked, sessions cleaned up, manifests."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from ctrpy.errors import InvalidArgument
from ctrpy.oci import Descriptor, mediatypes
from ctrpy.remote import Registry, RemoteDigestMismatch, RemoteError, RemoteSizeMismatch, UploadError
from tests.builders import Image, file
from tests.peers import run
from tests.registry.distribution import DistributionRegistry
from tests.registry.fakes import FileSink
from tests.registry.faults import FaultProxy, Rule
from tests.registry.fixtures import BASIC_USERS, small_image
from tests.registry.images import Pushed, upload_sessions

pytestmark = pytest.mark.interop

Client = Callable[..., Registry]
Push = Callable[..., Pushed]


def blob(data: bytes) -> Descriptor:
    return Descriptor("application/octet-stream", "sha256:" + hashlib.sha256(data).hexdigest(), len(data))


def opener(data: bytes) -> Callable[[], io.BytesIO]:
    return lambda: io.BytesIO(data)


def test_blob_exists_with_head(client: Client, pushed_image: Pushed, fault_proxy: FaultProxy) -> None:
    reg = client(f"{fault_proxy.host}/{pushed_image.repo}:v1")
    assert reg.blob_exists(pushed_image.layer_descriptors()[0])
    assert not reg.blob_exists(blob(b"never pushed"))
    assert [r.method for r in fault_proxy.requests] == ["HEAD", "HEAD"]


def test_monolithic_upload_is_one_post_and_one_put(
    client: Client, plain_registry: DistributionRegistry, repo: str, fault_proxy: FaultProxy
) -> None:
    data = b"0123456789" * 30_000
    d = blob(data)
    reg = client(f"{fault_proxy.host}/{repo}:x")
    reg.upload_blob(d, opener(data))
    methods = [(r.method, r.path.rsplit("/", 2)[-2:]) for r in fault_proxy.requests]
    assert [m for m, _ in methods] == ["POST", "PUT"]
    put = fault_proxy.requests[1]
    assert parse_qs(put.query)["digest"] == [d.digest]
    assert put.header("content-length") == str(len(data))
    assert put.header("content-type") == "application/octet-stream"
    assert reg.blob_exists(d)


def test_chunked_upload_with_a_chunk_size(
    client: Client, plain_registry: DistributionRegistry, repo: str, fault_proxy: FaultProxy
) -> None:
    data = bytes(range(256)) * 1000  # 256000 bytes
    d = blob(data)
    reg = client(f"{fault_proxy.host}/{repo}:x")
    reg.upload_blob(d, opener(data), chunk_size=100_000)
    patches = fault_proxy.matching("PATCH")
    assert [p.header("content-range") for p in patches] == ["0-99999", "100000-199999", "200000-255999"]
    assert [p.header("content-length") for p in patches] == ["100000", "100000", "56000"]
    [put] = fault_proxy.matching("PUT")
    assert put.header("content-length") == "0"
    # each PATCH went to the Location the previous answer gave
    states = [parse_qs(p.query).get("_state") for p in patches]
    assert len({s[0] for s in states if s}) == 3
    assert reg.blob_exists(d)
    sink = FileSink(Path(plain_registry.dir) / f"check-{repo}", d.size)
    reg.fetch_blob(d, sink)
    assert sink.commit(d.digest) == data


def test_chunked_when_the_registry_asks_for_a_minimum(
    client: Client, repo: str, fault_proxy: FaultProxy
) -> None:
    data = b"x" * 70_000 + b"y" * 70_000
    d = blob(data)
    fault_proxy.add(Rule("POST", "/blobs/uploads/$", set_headers={"OCI-Chunk-Min-Length": "50000"}))
    reg = client(f"{fault_proxy.host}/{repo}:x")
    reg.upload_blob(d, opener(data), chunk_size=20_000)  # raised to the registry's minimum
    patches = fault_proxy.matching("PATCH")
    assert [p.header("content-length") for p in patches] == ["50000", "50000", "40000"]
    assert reg.blob_exists(d)


def test_relative_location_is_followed(client: Client, repo: str, fault_proxy: FaultProxy) -> None:
    data = b"relative" * 5000
    d = blob(data)
    fault_proxy.add(Rule(None, "/blobs/uploads/", relative_location=True))
    reg = client(f"{fault_proxy.host}/{repo}:x")
    reg.upload_blob(d, opener(data), chunk_size=15_000)
    assert reg.blob_exists(d)
    assert len(fault_proxy.matching("PATCH")) == 3


def test_mount_from_another_repository(client: Client, pushed_image: Pushed, repo: str, fault_proxy: FaultProxy) -> None:
    layer = pushed_image.layer_descriptors()[0]
    reg = client(f"{fault_proxy.host}/{repo}-target:v1")
    assert not reg.blob_exists(layer)
    result = reg.mount_blob(layer, pushed_image.repo)
    assert result.mounted and result.session is None
    [post] = fault_proxy.matching("POST")
    assert parse_qs(post.query) == {"mount": [layer.digest], "from": [pushed_image.repo]}
    assert reg.blob_exists(layer)
    assert fault_proxy.count("PUT") == 0


def test_mount_of_a_missing_blob_gives_a_session_to_upload_into(
    client: Client, pushed_image: Pushed, repo: str, fault_proxy: FaultProxy
) -> None:
    data = b"not in the source repository"
    d = blob(data)
    reg = client(f"{fault_proxy.host}/{repo}:v1")
    result = reg.mount_blob(d, pushed_image.repo)
    assert not result.mounted and result.session is not None
    reg.upload_blob(d, opener(data), session=result.session)
    assert fault_proxy.count("POST") == 1  # the mount's session was used, no second POST
    assert reg.blob_exists(d)


def test_wrong_digest_from_the_registry_is_caught(client: Client, repo: str, fault_proxy: FaultProxy) -> None:
    data = b"digest check"
    fault_proxy.add(Rule("PUT", "/blobs/uploads/", set_headers={"Docker-Content-Digest": "sha256:" + "0" * 64}))
    reg = client(f"{fault_proxy.host}/{repo}:x")
    with pytest.raises(RemoteDigestMismatch, match="stored the blob as sha256:000"):
        reg.upload_blob(blob(data), opener(data))


def test_failed_upload_deletes_its_session(
    client: Client, plain_registry: DistributionRegistry, repo: str, fault_proxy: FaultProxy
) -> None:
    data = b"doomed upload"
    fault_proxy.add(Rule("PUT", "/blobs/uploads/", status=400, headers={"Content-Type": "application/json"},
                         body=b'{"errors":[{"code":"DIGEST_INVALID","message":"provided digest did not match"}]}'))
    reg = client(f"{fault_proxy.host}/{repo}:x")
    with pytest.raises(UploadError) as e:
        reg.upload_blob(blob(data), opener(data))
    assert "DIGEST_INVALID" in str(e.value) and e.value.status == 400
    [delete] = fault_proxy.matching("DELETE")
    assert delete.path.startswith(f"/v2/{repo}/blobs/uploads/")
    assert upload_sessions(plain_registry, repo) == []


def test_a_seekable_source_of_the_wrong_size_is_refused_before_any_request(
    client: Client, repo: str, fault_proxy: FaultProxy
) -> None:
    data = b"the real bytes"
    d = Descriptor("application/octet-stream", blob(data).digest, len(data) + 5)
    reg = client(f"{fault_proxy.host}/{repo}:x")
    with pytest.raises(RemoteSizeMismatch, match="the source has 14 bytes"):
        reg.upload_blob(d, opener(data))
    assert fault_proxy.count() == 0


def test_a_file_source_of_the_wrong_size_is_refused_before_any_request(
    client: Client, repo: str, fault_proxy: FaultProxy, tmp_path: Path
) -> None:
    f = tmp_path / "blob"
    f.write_bytes(b"12345")
    reg = client(f"{fault_proxy.host}/{repo}:x")
    with pytest.raises(RemoteSizeMismatch):
        reg.upload_blob(blob(b"123456"), lambda: f.open("rb"))
    assert fault_proxy.count() == 0


class Stream:
    """A source that cannot tell its size (a pipe, a generator)."""

    def __init__(self, data: bytes) -> None:
        self._b = io.BytesIO(data)

    def read(self, n: int = -1) -> bytes:
        return self._b.read(min(n, 7) if n > 0 else 7)


def test_a_short_stream_fails_and_the_session_is_deleted(
    client: Client, plain_registry: DistributionRegistry, repo: str, fault_proxy: FaultProxy
) -> None:
    data = b"the real bytes"
    d = Descriptor("application/octet-stream", blob(data).digest, len(data) + 5)
    reg = client(f"{fault_proxy.host}/{repo}:x")
    with pytest.raises(RemoteSizeMismatch, match="ended after 14 of 19 bytes"):
        reg.upload_blob(d, lambda: Stream(data))
    # the DELETE is sent; distribution 2.8 refuses it ("upload resumed at wrong offset":
    # the bytes that reached it moved the session past the state in its Location), so the
    # session waits for the registry's upload purging
    assert fault_proxy.count("DELETE") == 1


def test_an_unsized_stream_uploads(client: Client, repo: str, plain_registry: DistributionRegistry) -> None:
    data = b"streamed in sevens" * 100
    reg = client(plain_registry.ref(repo))
    reg.upload_blob(blob(data), lambda: Stream(data))
    assert reg.blob_exists(blob(data))


def test_a_long_source_fails_chunked_too(client: Client, repo: str, fault_proxy: FaultProxy) -> None:
    data = b"a" * 1000
    d = Descriptor("application/octet-stream", blob(data[:900]).digest, 900)
    reg = client(f"{fault_proxy.host}/{repo}:x")
    with pytest.raises(RemoteSizeMismatch, match="more than"):
        reg.upload_blob(d, lambda: Stream(data), chunk_size=300)
    assert fault_proxy.count("PATCH") == 3
    assert fault_proxy.count("DELETE") == 1


def test_bad_digest_refused_by_distribution(client: Client, repo: str, plain_registry: DistributionRegistry) -> None:
    data = b"contents"
    d = Descriptor("application/octet-stream", blob(b"other contents").digest, len(data))
    reg = client(plain_registry.ref(repo))
    with pytest.raises(UploadError) as e:
        reg.upload_blob(d, opener(data))
    assert e.value.code == "DIGEST_INVALID"
    assert d.digest in str(e.value)


def test_a_chunk_error_fails_without_retrying_the_patch(client: Client, repo: str, fault_proxy: FaultProxy) -> None:
    data = b"z" * 3000
    fault_proxy.add(Rule("PATCH", "/blobs/uploads/", nth=2, status=500))
    reg = client(f"{fault_proxy.host}/{repo}:x")
    with pytest.raises(UploadError, match="500"):
        reg.upload_blob(blob(data), opener(data), chunk_size=1000)
    assert fault_proxy.count("PATCH") == 2
    assert fault_proxy.count("DELETE") == 1


def test_chunk_size_must_be_positive(client: Client, plain_registry: DistributionRegistry, repo: str) -> None:
    with pytest.raises(InvalidArgument):
        client(plain_registry.ref(repo)).upload_blob(blob(b"x"), opener(b"x"), chunk_size=0)


# -- manifests ----------------------------------------------------------------------------------


def push_image(reg: Registry, img: Image, tag: str, chunk_size: int | None = None) -> str:
    built = img.build()
    for b in (built.config, *built.layers):
        d = Descriptor(b.media_type, b.digest, b.size)
        if not reg.blob_exists(d):
            reg.upload_blob(d, opener(b.data), chunk_size)
    return reg.put_manifest(tag, built.manifest.media_type, built.manifest.data)


def test_push_a_whole_image_and_read_it_back_with_skopeo(
    client: Client, plain_registry: DistributionRegistry, repo: str, tmp_path: Path
) -> None:
    img = small_image(repo, layers=2)
    reg = client(plain_registry.ref(repo, "pushed"))
    dgst = push_image(reg, img, "pushed")
    assert dgst == img.digest
    assert reg.resolve().digest == img.digest
    assert reg.manifest_exists(reg.resolve(), "pushed")
    out = run("skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{plain_registry.host}/{repo}:pushed")
    assert out.stdout.encode() == img.build().manifest.data
    run("skopeo", "copy", "--src-tls-verify=false", f"docker://{plain_registry.host}/{repo}:pushed",
        f"oci:{tmp_path / 'layout'}:x", env={"HOME": str(tmp_path)})


def test_pushing_again_skips_existing_blobs(client: Client, repo: str, fault_proxy: FaultProxy) -> None:
    img = small_image(repo, layers=2)
    reg = client(f"{fault_proxy.host}/{repo}:a")
    push_image(reg, img, "a")
    fault_proxy.clear()
    push_image(reg, img, "b")
    assert [r.method for r in fault_proxy.requests] == ["HEAD", "HEAD", "HEAD", "PUT"]


def test_put_manifest_by_digest(client: Client, plain_registry: DistributionRegistry, repo: str) -> None:
    img = small_image(repo, layers=1)
    reg = client(plain_registry.ref(repo))
    built = img.build()
    for b in (built.config, *built.layers):
        reg.upload_blob(Descriptor(b.media_type, b.digest, b.size), opener(b.data))
    assert reg.put_manifest(built.manifest.digest, built.manifest.media_type, built.manifest.data) == img.digest
    assert not reg.manifest_exists(reg.resolve(img.digest), "no-such-tag")
    assert reg.manifest_exists(reg.resolve(img.digest))


def test_put_manifest_digest_must_match_the_bytes(client: Client, plain_registry: DistributionRegistry, repo: str) -> None:
    with pytest.raises(InvalidArgument):
        client(plain_registry.ref(repo)).put_manifest("sha256:" + "1" * 64, mediatypes.OCI_MANIFEST, b"{}")


def test_put_manifest_with_missing_blobs_is_refused(client: Client, plain_registry: DistributionRegistry, repo: str) -> None:
    img = Image(layers=[[file("never", b"uploaded")]])
    built = img.build()
    with pytest.raises(RemoteError) as e:
        client(plain_registry.ref(repo)).put_manifest("v1", built.manifest.media_type, built.manifest.data)
    assert e.value.code == "MANIFEST_BLOB_UNKNOWN"
    assert f"{repo}:v1" in str(e.value)


def test_put_manifest_wrong_digest_answer_is_caught(client: Client, pushed_image: Pushed, fault_proxy: FaultProxy) -> None:
    fault_proxy.add(Rule("PUT", "/manifests/", set_headers={"Docker-Content-Digest": "sha256:" + "2" * 64}))
    reg = client(f"{fault_proxy.host}/{pushed_image.repo}:again")
    with pytest.raises(RemoteDigestMismatch):
        reg.put_manifest("again", pushed_image.manifest.media_type, pushed_image.manifest.data)


def test_push_an_index(client: Client, plain_registry: DistributionRegistry, repo: str) -> None:
    from tests.builders import index_of

    a, b = small_image(repo + "a", layers=1), small_image(repo + "b", layers=1)
    idx = index_of([a, b])
    reg = client(plain_registry.ref(repo, "multi"))
    for img in (a, b):
        push_image(reg, img, img.digest)
    assert reg.put_manifest("multi", idx.media_type, idx.data) == idx.digest
    desc = reg.resolve()
    assert desc.media_type == mediatypes.OCI_INDEX
    assert json.loads(reg.fetch_manifest(desc))["manifests"][1]["digest"] == b.digest


def test_push_with_basic_auth(client: Client, basic_registry: DistributionRegistry, repo: str) -> None:
    reg = client(basic_registry.ref(repo, "v1"), user="alice", password=BASIC_USERS["alice"])
    img = small_image(repo, layers=1)
    assert push_image(reg, img, "v1", chunk_size=5000) == img.digest
    assert reg.resolve().digest == img.digest


def test_push_with_basic_auth_denied_without_credentials(client: Client, basic_registry: DistributionRegistry, repo: str) -> None:
    from ctrpy.remote import AuthError

    reg = client(basic_registry.ref(repo, "v1"))
    with pytest.raises(AuthError, match="requires a user name and password"):
        reg.upload_blob(blob(b"x"), opener(b"x"))
