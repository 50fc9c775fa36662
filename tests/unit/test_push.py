"""Client.push (ctrpy/push.py) against a real registry (distribution 2.8), plain, with
basic auth, TLS and tokens, and through the fault proxy: what is sent, in which order,
what is not sent again, mounts, retries, and that a failed push leaves no tag.

What was pushed is read back with direct HTTP GETs (and skopeo where the registry wants
credentials), never with ctrpy's own registry client."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from ctrpy import Client
from ctrpy.errors import (
    ContentNotFound,
    DigestMismatch,
    ImageNotFound,
    InvalidArgument,
    PlatformContentMissing,
    PlatformNotFound,
)
from ctrpy.formats import ImportOptions
from ctrpy.oci import Matcher, Platform, mediatypes
from ctrpy.progress import Transfer
from ctrpy.push import SOURCE_LABEL, PushOptions, mount_candidate, plan, ref_key, select
from ctrpy.remote import AuthError, ConnectionFailed, RemoteOptions, UploadError
from tests.builders import BuiltImage, IndexBlob, Layer, OCILayout, file, index_of
from tests.helpers import HOST, OTHER_ARCH, THIRD_ARCH, blob_path, host_image, named_archive, tamper
from tests.peers import run
from tests.registry.distribution import DistributionRegistry
from tests.registry.faults import FaultProxy, Rule
from tests.registry.fixtures import BASIC_USERS, TOKEN_USERS, require

pytestmark = [pytest.mark.interop, pytest.mark.usefixtures("no_user_credentials")]

APP = "docker.io/library/app:1"
BLOB_PUT = r"/blobs/uploads/"


def app_image(seed: str, layers: int = 2) -> BuiltImage:
    return host_image(*[[file(f"f{i}.txt", f"{seed} layer {i} ".encode() * 500)] for i in range(layers)]).build()


def imported(client: Client, img: BuiltImage | IndexBlob, name: str = APP, *, all_platforms: bool = False) -> None:
    if isinstance(img, IndexBlob):
        layout = OCILayout()
        layout.add_manifest(img, {"io.containerd.image.name": name})
        data = layout.tar_bytes()
    else:
        data = named_archive((img, name))
    opts = ImportOptions(matcher=Matcher(all_platforms=True)) if all_platforms else None
    client.import_archive(io.BytesIO(data), options=opts)


def get(registry: DistributionRegistry, path: str, accept: str = "*/*") -> tuple[int, bytes]:
    conn = registry.connection()
    try:
        conn.request("GET", path, headers={"Accept": accept})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


ACCEPT = ", ".join([mediatypes.OCI_MANIFEST, mediatypes.OCI_INDEX, mediatypes.DOCKER_MANIFEST,
                    mediatypes.DOCKER_MANIFEST_LIST])


def manifest_at(registry: DistributionRegistry, repo: str, ref: str) -> bytes | None:
    status, body = get(registry, f"/v2/{repo}/manifests/{ref}", ACCEPT)
    return body if status == 200 else None


def has_blob(registry: DistributionRegistry, repo: str, digest: str) -> bool:
    return get(registry, f"/v2/{repo}/blobs/{digest}")[0] == 200


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def uploads(proxy: FaultProxy) -> int:
    """Requests that send blob bytes or open an upload (a mount's POST too)."""
    return proxy.count("POST") + proxy.count("PATCH") + proxy.count("PUT", BLOB_PUT)


# --------------------------------------------------------------------------- what is sent
def test_push_sends_every_blob_and_tags_the_manifest(
    client: Client, plain_registry: DistributionRegistry, repo: str
) -> None:
    img = app_image(repo)
    imported(client, img)
    result = client.push(f"{plain_registry.host}/{repo}:v1", APP)
    assert manifest_at(plain_registry, repo, "v1") == img.manifest.data
    for b in (img.config, *img.layers):
        assert get(plain_registry, f"/v2/{repo}/blobs/{b.digest}") == (200, b.data)
    assert result.reference == f"{plain_registry.host}/{repo}:v1"
    assert result.descriptor.digest == img.manifest.digest
    assert result.statuses == [(f"manifest-{img.manifest.digest}", "done"), (f"config-{img.config.digest}", "done"),
                               *[(f"layer-{b.digest}", "done") for b in img.layers]]


def test_remote_names_the_local_image_when_local_is_not_given(
    client: Client, plain_registry: DistributionRegistry, repo: str
) -> None:
    img = app_image(repo)
    remote = f"{plain_registry.host}/{repo}:v2"
    imported(client, img, remote)
    client.push(remote)
    assert manifest_at(plain_registry, repo, "v2") == img.manifest.data


def test_a_remote_without_tag_is_pushed_as_latest(client: Client, plain_registry: DistributionRegistry, repo: str) -> None:
    img = app_image(repo)
    imported(client, img)
    assert client.push(f"{plain_registry.host}/{repo}", APP).reference.endswith(f"/{repo}:latest")
    assert manifest_at(plain_registry, repo, "latest") == img.manifest.data


def test_a_remote_by_digest_pushes_no_tag(client: Client, plain_registry: DistributionRegistry, repo: str) -> None:
    img = app_image(repo)
    imported(client, img)
    client.push(f"{plain_registry.host}/{repo}@{img.manifest.digest}", APP)
    assert manifest_at(plain_registry, repo, img.manifest.digest) == img.manifest.data
    assert get(plain_registry, f"/v2/{repo}/tags/list")[1].count(b"latest") == 0


def test_a_remote_digest_that_is_not_the_image_is_refused_before_any_request(
    client: Client, fault_proxy: FaultProxy, repo: str
) -> None:
    img = app_image(repo)
    imported(client, img)
    with pytest.raises(InvalidArgument, match=img.manifest.digest):
        client.push(f"{fault_proxy.host}/{repo}@sha256:{'0' * 64}", APP)
    assert fault_proxy.count() == 0


def test_children_go_before_parents_and_the_tag_is_the_last_request(
    client: Client, fault_proxy: FaultProxy, repo: str
) -> None:
    images = [app_image(f"{repo}-a"), host_image([file("b", repo.encode())], architecture=OTHER_ARCH,
                                                  variant=None).build()]
    index = index_of(images)
    imported(client, index, all_platforms=True)
    client.push(f"{fault_proxy.host}/{repo}:multi", APP)
    puts = [r.path for r in fault_proxy.requests if r.method == "PUT"]
    manifest_puts = [p for p in puts if "/manifests/" in p]
    assert manifest_puts == [f"/v2/{repo}/manifests/{images[1].manifest.digest}",
                             f"/v2/{repo}/manifests/{images[0].manifest.digest}",
                             f"/v2/{repo}/manifests/multi"]
    first_manifest = puts.index(manifest_puts[0])
    assert all("/blobs/uploads/" in p for p in puts[:first_manifest])
    assert len(puts[:first_manifest]) == sum(1 + len(i.layers) for i in images)
    last = fault_proxy.requests[-1]
    assert (last.method, last.path) == ("PUT", f"/v2/{repo}/manifests/multi")


def test_each_blob_is_asked_for_before_it_is_sent(client: Client, fault_proxy: FaultProxy, repo: str) -> None:
    img = app_image(repo)
    imported(client, img)
    client.push(f"{fault_proxy.host}/{repo}:v1", APP)
    for b in (img.config, *img.layers):
        heads = [i for i, r in enumerate(fault_proxy.requests) if r.method == "HEAD" and r.path.endswith(b.digest)]
        puts = [i for i, r in enumerate(fault_proxy.requests)
                if r.method == "PUT" and parse_qs(r.query).get("digest") == [b.digest]]
        assert len(heads) == 1 and len(puts) == 1 and heads[0] < puts[0]


def test_a_second_push_of_the_same_image_uploads_no_blob(client: Client, fault_proxy: FaultProxy, repo: str) -> None:
    img = app_image(repo)
    imported(client, img)
    client.push(f"{fault_proxy.host}/{repo}:v1", APP)
    fault_proxy.clear()
    result = client.push(f"{fault_proxy.host}/{repo}:v1", APP)
    assert uploads(fault_proxy) == 0
    assert fault_proxy.count("PUT") == 0  # the tag names the manifest already
    assert {s for _, s in result.statuses} == {"exists"}
    assert {r.method for r in fault_proxy.requests} == {"HEAD"}


def test_a_push_under_a_new_tag_sends_only_the_tag(client: Client, fault_proxy: FaultProxy, repo: str) -> None:
    img = app_image(repo)
    imported(client, img)
    client.push(f"{fault_proxy.host}/{repo}:v1", APP)
    fault_proxy.clear()
    client.push(f"{fault_proxy.host}/{repo}:v2", APP)
    assert [(r.method, r.path) for r in fault_proxy.requests if r.method != "HEAD"] == [
        ("PUT", f"/v2/{repo}/manifests/v2")]


# --------------------------------------------------------------------------- mounts
def test_a_blob_labelled_with_another_repository_is_mounted_from_it(
    client: Client, fault_proxy: FaultProxy, repo: str
) -> None:
    img = app_image(repo)
    imported(client, img)
    client.push(f"{fault_proxy.host}/{repo}-source:v1", APP)
    for b in (img.config, *img.layers):
        client.content.set_labels(b.digest, {SOURCE_LABEL + fault_proxy.host: f"{repo}-source"})
    fault_proxy.clear()
    result = client.push(f"{fault_proxy.host}/{repo}-target:v1", APP)
    posts = fault_proxy.matching("POST")
    assert sorted(parse_qs(p.query)["mount"][0] for p in posts) == sorted(b.digest for b in (img.config, *img.layers))
    assert {parse_qs(p.query)["from"][0] for p in posts} == {f"{repo}-source"}
    assert fault_proxy.count("PUT", BLOB_PUT) == 0
    assert result.count("mounted") == 1 + len(img.layers)



def test_a_mounted_blobs_progress_ends_mounted(client: Client, fault_proxy: FaultProxy, repo: str) -> None:
    img = app_image(repo)
    imported(client, img)
    client.push(f"{fault_proxy.host}/{repo}-source:v1", APP)
    client.content.set_labels(img.layers[0].digest, {SOURCE_LABEL + fault_proxy.host: f"{repo}-source"})
    events: list[object] = []
    Client(client.root, progress=events.append).push(f"{fault_proxy.host}/{repo}-target:v1", APP)
    last = {e.digest: e for e in events if isinstance(e, Transfer)}
    assert last[img.layers[0].digest].state == "mounted"
    assert last[img.layers[0].digest].finished
    assert last[img.config.digest].state == "done"  # not labelled with a source: uploaded


def test_a_mount_the_registry_answers_with_a_session_uploads_into_it(
    client: Client, fault_proxy: FaultProxy, plain_registry: DistributionRegistry, repo: str
) -> None:
    img = app_image(repo)
    imported(client, img)
    for b in (img.config, *img.layers):  # that repository never had them
        client.content.set_labels(b.digest, {SOURCE_LABEL + fault_proxy.host: f"{repo}-nowhere"})
    result = client.push(f"{fault_proxy.host}/{repo}:v1", APP)
    assert fault_proxy.count("POST") == 1 + len(img.layers)  # one each: the mount's session was used
    assert all("mount" in parse_qs(p.query) for p in fault_proxy.matching("POST"))
    assert result.count("done") == 2 + len(img.layers)
    assert manifest_at(plain_registry, repo, "v1") == img.manifest.data


def test_a_label_for_another_registry_is_not_a_mount_source(client: Client, fault_proxy: FaultProxy, repo: str) -> None:
    img = app_image(repo)
    imported(client, img)
    for b in (img.config, *img.layers):
        client.content.set_labels(b.digest, {SOURCE_LABEL + "registry.example.com": f"{repo}-source"})
    client.push(f"{fault_proxy.host}/{repo}:v1", APP)
    assert not [p for p in fault_proxy.matching("POST") if "mount" in parse_qs(p.query)]


@pytest.mark.parametrize(("value", "target", "chosen"), [
    ("team/base", "team/app", "team/base"),
    ("other/x,team/base", "team/app", "team/base"),  # the longest common prefix
    ("a,b", "team/app", "a"),  # a tie: the first
    ("team/app", "team/app", None),  # the target itself is no source
    ("", "team/app", None),
])
def test_the_mount_source_is_containerds_choice(value: str, target: str, chosen: str | None) -> None:
    assert mount_candidate({SOURCE_LABEL + "r.io": value}, "r.io", target) == chosen


# --------------------------------------------------------------------------- uploads
def test_chunk_size_uploads_in_patches(client: Client, fault_proxy: FaultProxy, plain_registry: DistributionRegistry,
                                       repo: str) -> None:
    img = host_image(Layer(b"x" * 10_000, compression="none")).build()
    imported(client, img)
    client.push(f"{fault_proxy.host}/{repo}:v1", APP, PushOptions(chunk_size=4096))
    layer = img.layers[0]
    ranges = [p.header("content-range") for p in fault_proxy.matching("PATCH")]
    assert "8192-" + str(layer.size - 1) in ranges and "0-4095" in ranges
    assert get(plain_registry, f"/v2/{repo}/blobs/{layer.digest}") == (200, layer.data)


def test_uploads_run_in_parallel_up_to_the_limit(client: Client, fault_proxy: FaultProxy, repo: str) -> None:
    img = app_image(repo, layers=4)
    imported(client, img)
    fault_proxy.add(Rule("PUT", BLOB_PUT, barrier=3))
    client.push(f"{fault_proxy.host}/{repo}:v1", APP, PushOptions(max_concurrent=3))
    assert fault_proxy.max_in_flight == 3


def test_one_upload_at_a_time_when_asked(client: Client, fault_proxy: FaultProxy, repo: str) -> None:
    img = app_image(repo, layers=4)
    imported(client, img)
    client.push(f"{fault_proxy.host}/{repo}:v1", APP, PushOptions(max_concurrent=1))
    assert fault_proxy.max_in_flight == 1


def test_a_blob_put_answered_500_is_retried(
    client: Client, fault_proxy: FaultProxy, plain_registry: DistributionRegistry, repo: str
) -> None:
    img = app_image(repo)
    imported(client, img)
    fault_proxy.add(Rule("PUT", BLOB_PUT, nth=1, status=500))
    client.push(f"{fault_proxy.host}/{repo}:v1", APP, PushOptions(max_concurrent=1))
    assert fault_proxy.count("PUT", BLOB_PUT) == 2 + len(img.layers)
    assert manifest_at(plain_registry, repo, "v1") == img.manifest.data


def test_a_failure_mid_push_leaves_no_tag(
    client: Client, fault_proxy: FaultProxy, plain_registry: DistributionRegistry, repo: str
) -> None:
    img = app_image(repo, layers=3)
    imported(client, img)
    fault_proxy.add(Rule("PUT", BLOB_PUT, nth=2, status=400, headers={"Content-Type": "application/json"},
                         body=b'{"errors":[{"code":"BLOB_UPLOAD_INVALID","message":"no"}]}'))
    with pytest.raises(UploadError) as e:
        client.push(f"{fault_proxy.host}/{repo}:v1", APP, PushOptions(max_concurrent=1))
    assert e.value.code == "BLOB_UPLOAD_INVALID"
    assert fault_proxy.count("PUT", "/manifests/") == 0
    assert manifest_at(plain_registry, repo, "v1") is None
    fault_proxy.clear()
    client.push(f"{fault_proxy.host}/{repo}:v1", APP)  # the store is as it was: the same push works
    assert manifest_at(plain_registry, repo, "v1") == img.manifest.data


def test_a_refused_manifest_leaves_no_tag(
    client: Client, fault_proxy: FaultProxy, plain_registry: DistributionRegistry, repo: str
) -> None:
    index = index_of([app_image(repo), host_image([file("o", b"o")], architecture=OTHER_ARCH, variant=None).build()])
    imported(client, index, all_platforms=True)
    fault_proxy.add(Rule("PUT", "/manifests/sha256:", nth=1, status=400, headers={"Content-Type": "application/json"},
                         body=b'{"errors":[{"code":"MANIFEST_INVALID","message":"no"}]}'))
    with pytest.raises(UploadError):
        client.push(f"{fault_proxy.host}/{repo}:v1", APP)
    assert fault_proxy.count("PUT", "/manifests/v1") == 0
    assert manifest_at(plain_registry, repo, "v1") is None


def test_a_tampered_blob_in_the_store_is_not_pushed(
    client: Client, root: Path, fault_proxy: FaultProxy, plain_registry: DistributionRegistry, repo: str
) -> None:
    img = app_image(repo)
    imported(client, img)
    tamper(blob_path(root, img.layers[1].digest))
    with pytest.raises((DigestMismatch, UploadError)):
        client.push(f"{fault_proxy.host}/{repo}:v1", APP, PushOptions(max_concurrent=1))
    assert not has_blob(plain_registry, repo, img.layers[1].digest)
    assert manifest_at(plain_registry, repo, "v1") is None


# --------------------------------------------------------------------------- what is chosen
def three_platforms(repo: str) -> tuple[IndexBlob, list[BuiltImage]]:
    images = [app_image(repo),
              host_image([file("o", b"other " + repo.encode())], architecture=OTHER_ARCH, variant=None).build(),
              host_image([file("t", b"third " + repo.encode())], architecture=THIRD_ARCH, variant=None).build()]
    return index_of(images), images


def test_one_platform_pushes_that_platforms_manifest_under_the_tag(
    client: Client, plain_registry: DistributionRegistry, repo: str
) -> None:
    index, images = three_platforms(repo)
    imported(client, index, all_platforms=True)
    result = client.push(f"{plain_registry.host}/{repo}:one", APP, PushOptions(platforms=(Platform("linux", OTHER_ARCH),)))
    assert manifest_at(plain_registry, repo, "one") == images[1].manifest.data
    assert result.descriptor.digest == images[1].manifest.digest
    assert not has_blob(plain_registry, repo, images[0].layers[0].digest)
    assert not has_blob(plain_registry, repo, images[2].layers[0].digest)


def test_one_platform_of_an_image_imported_for_it_alone_pushes(
    client: Client, plain_registry: DistributionRegistry, repo: str
) -> None:
    index, images = three_platforms(repo)
    imported(client, index)  # the host's platform only
    client.push(f"{plain_registry.host}/{repo}:host", APP, PushOptions(platforms=(HOST,)))
    assert manifest_at(plain_registry, repo, "host") == images[0].manifest.data


def test_several_platforms_push_an_index_of_their_entries(
    client: Client, plain_registry: DistributionRegistry, repo: str
) -> None:
    index, images = three_platforms(repo)
    imported(client, index, all_platforms=True)
    wanted = (HOST, Platform("linux", THIRD_ARCH))
    result = client.push(f"{plain_registry.host}/{repo}:two", APP, PushOptions(platforms=wanted))
    data = manifest_at(plain_registry, repo, "two")
    assert data is not None and sha(data) == result.descriptor.digest != index.digest
    pushed = json.loads(data)
    assert [m["digest"] for m in pushed["manifests"]] == [images[0].manifest.digest, images[2].manifest.digest]
    assert {k: v for k, v in pushed.items() if k != "manifests"} == {k: v for k, v in index.json().items()
                                                                        if k != "manifests"}
    assert not has_blob(plain_registry, repo, images[1].layers[0].digest)


def test_a_platform_the_image_does_not_offer_is_refused_before_any_request(
    client: Client, fault_proxy: FaultProxy, repo: str
) -> None:
    imported(client, app_image(repo))
    with pytest.raises(PlatformNotFound):
        client.push(f"{fault_proxy.host}/{repo}:v1", APP, PushOptions(platforms=(Platform("linux", OTHER_ARCH),)))
    assert fault_proxy.count() == 0


def test_an_index_whose_other_platforms_are_not_stored_is_refused_before_any_request(
    client: Client, fault_proxy: FaultProxy, repo: str
) -> None:
    index, images = three_platforms(repo)
    imported(client, index)
    client.content.delete(images[1].manifest.digest)  # as if pulled for the host's platform only
    with pytest.raises(PlatformContentMissing) as e:
        client.push(f"{fault_proxy.host}/{repo}:v1", APP)
    assert e.value.digest == images[1].manifest.digest
    assert fault_proxy.count() == 0


def test_manifest_pushes_that_stored_manifest(client: Client, plain_registry: DistributionRegistry, repo: str) -> None:
    index, images = three_platforms(repo)
    imported(client, index, all_platforms=True)
    client.push(f"{plain_registry.host}/{repo}:m", manifest=images[2].manifest.digest)
    assert manifest_at(plain_registry, repo, "m") == images[2].manifest.data


def test_manifest_that_is_not_stored_is_refused(client: Client, fault_proxy: FaultProxy, repo: str) -> None:
    imported(client, app_image(repo))
    with pytest.raises(ContentNotFound):
        client.push(f"{fault_proxy.host}/{repo}:m", manifest="sha256:" + "1" * 64)
    assert fault_proxy.count() == 0


def test_an_unknown_local_image_is_refused_before_any_request(client: Client, fault_proxy: FaultProxy, repo: str) -> None:
    imported(client, app_image(repo))
    with pytest.raises(ImageNotFound):
        client.push(f"{fault_proxy.host}/{repo}:v1", "docker.io/library/nope:1")
    assert fault_proxy.count() == 0


def foreign_image(seed: str) -> BuiltImage:
    """An image whose second layer has a non-distributable media type (no URLs: distribution
    2.8 refuses foreign URLs unless configured to allow them)."""
    foreign = Layer([file("win", seed.encode())], media_type=mediatypes.OCI_LAYER_ND_GZIP)
    return host_image([file("a", seed.encode())], foreign).build()


def test_non_distributable_layers_are_left_out(
    client: Client, fault_proxy: FaultProxy, plain_registry: DistributionRegistry, repo: str
) -> None:
    img = foreign_image(repo)
    imported(client, img)
    foreign = img.layers[1].digest
    work = plan(client.walker, select(client.walker, client.image(APP).target, (), APP), APP, allow_non_distributable=False)
    assert foreign not in [d.digest for d in work.blobs] and [d.digest for d in work.skipped] == [foreign]
    # distribution 2.8 then refuses the manifest (it wants a non-distributable layer without
    # URLs to be there): what matters here is that the layer was never sent nor asked for
    with pytest.raises(UploadError, match="MANIFEST_BLOB_UNKNOWN"):
        client.push(f"{fault_proxy.host}/{repo}:v1", APP)
    assert fault_proxy.count("PUT", "/manifests/v1") == 1
    assert not [r for r in fault_proxy.requests if foreign in r.path or foreign in r.query]


def test_non_distributable_layers_are_pushed_when_allowed(
    client: Client, plain_registry: DistributionRegistry, repo: str
) -> None:
    img = foreign_image(repo)
    imported(client, img)
    client.push(f"{plain_registry.host}/{repo}:v1", APP, PushOptions(allow_non_distributable=True))
    assert get(plain_registry, f"/v2/{repo}/blobs/{img.layers[1].digest}") == (200, img.layers[1].data)


@pytest.mark.parametrize("options", [PushOptions(max_concurrent=0), PushOptions(chunk_size=0)])
def test_bad_options_are_refused(client: Client, options: PushOptions, plain_registry: DistributionRegistry) -> None:
    with pytest.raises(InvalidArgument):
        client.push(f"{plain_registry.host}/x:1", APP, options)


def test_the_ref_keys_are_ctrs() -> None:
    from ctrpy.oci import Descriptor

    d = "sha256:" + "a" * 64
    assert [ref_key(Descriptor(t, d, 1)) for t in (mediatypes.OCI_INDEX, mediatypes.DOCKER_MANIFEST,
                                                   mediatypes.OCI_LAYER_GZIP, mediatypes.OCI_CONFIG,
                                                   "application/x-other")] == [
        f"index-{d}", f"manifest-{d}", f"layer-{d}", f"config-{d}", f"unknown-{d}"]


# --------------------------------------------------------------------------- auth and TLS
def skopeo_digest(ref: str, *args: str) -> str:
    require("skopeo")
    out = run("skopeo", "inspect", "--raw", *args, f"docker://{ref}", text=False)
    return sha(out.stdout)


@pytest.mark.parametrize(("registry", "users"), [("basic_registry", BASIC_USERS), ("token_registry", TOKEN_USERS)],
                         ids=["basic-auth", "token"])
def test_push_with_credentials(
    client: Client, request: pytest.FixtureRequest, registry: str, users: dict[str, str], repo: str
) -> None:
    reg: DistributionRegistry = request.getfixturevalue(registry)
    img = app_image(repo)
    imported(client, img)
    user, password = next(iter(users.items()))
    result = client.push(f"{reg.host}/{repo}:v1", APP, remote_options=RemoteOptions(user=user, password=password))
    assert result.count("done") == 2 + len(img.layers)
    assert skopeo_digest(f"{reg.host}/{repo}:v1", "--tls-verify=false",
                         "--creds", f"{user}:{password}") == img.manifest.digest


def test_wrong_credentials_fail_naming_the_user_and_push_nothing(
    client: Client, basic_registry: DistributionRegistry, repo: str
) -> None:
    imported(client, app_image(repo))
    with pytest.raises(AuthError, match="alice"):
        client.push(f"{basic_registry.host}/{repo}:v1", APP, remote_options=RemoteOptions(user="alice", password="nope"))


def test_push_over_tls_with_the_registry_ca(
    client: Client, tls_registry: DistributionRegistry, tls_pair: object, repo: str, tmp_path: Path
) -> None:
    img = app_image(repo)
    imported(client, img)
    cert = tls_registry.tls.cert  # type: ignore[union-attr]
    client.push(f"{tls_registry.host}/{repo}:v1", APP, remote_options=RemoteOptions(tls_ca_cert=(str(cert),)))
    certs = tmp_path / "certs"
    certs.mkdir()
    (certs / "ca.crt").write_bytes(cert.read_bytes())
    assert skopeo_digest(f"{tls_registry.host}/{repo}:v1", "--cert-dir", str(certs)) == img.manifest.digest


def test_plain_http_to_a_tls_registry_says_it_speaks_https(
    client: Client, tls_registry: DistributionRegistry, repo: str
) -> None:
    imported(client, app_image(repo))
    # loopback gets plain HTTP when no TLS is configured; the first request is a HEAD, whose
    # 400 has no body: the registry client asks GET /v2/ why (ctrpy/remote/registry.py)
    with pytest.raises(ConnectionFailed) as e:
        client.push(f"{tls_registry.host}/{repo}:v1", APP)
    assert e.value.topic == "https"
