"""Client.pull and Client.fetch against a real registry (distribution 2.8), plain, with
basic auth, TLS and tokens, and behind the fault proxy: what is fetched for which
platforms, what is recorded and labelled, resumed downloads, retries, and failures that
record nothing."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from ctrpy.client import Client
from ctrpy.content.ingest import partial_name
from ctrpy.errors import DigestMismatch, ImageNotFound, PlatformNotFound, SizeMismatch
from ctrpy.metadata.leases import Held
from ctrpy.oci import Descriptor, Matcher, Platform
from ctrpy.progress import Event, LayerDone, LayerProgress, Transfer, UnpackStarted
from ctrpy.pull import LABEL_SOURCE, PullOptions
from ctrpy.remote import AuthError, RemoteDigestMismatch, RemoteNotFound, RemoteOptions
from tests.builders import file, index_of
from tests.helpers import HOST, host_image
from tests.registry.distribution import DistributionRegistry
from tests.registry.faults import FaultProxy, Rule
from tests.registry.fixtures import BASIC_USERS, TOKEN_USERS
from tests.registry.images import Pushed, push_index_with_missing_child

pytestmark = pytest.mark.interop

Push = Callable[..., Pushed]
FAST = RemoteOptions(backoff_base=0.01, backoff_max=0.02)  # retries without real waits


def host_pushed(push: Push, repo: str, *, layers: int = 2, size: int = 20_000, tag: str = "v1",
                **kw: object) -> Pushed:
    """An image of this host's platform with ``layers`` layers of random bytes, layer i
    (i + 1) times ``size`` bytes."""
    import random

    rng = random.Random(repo)
    img = host_image(*[[file(f"f{i}.bin", rng.randbytes(size * (i + 1)))] for i in range(layers)])
    return push(img, repo, tag, **kw)


def via(proxy: FaultProxy, pushed: Pushed) -> str:
    return f"{proxy.host}/{pushed.repo}:{pushed.tag}"


def stored(client: Client, dgst: str) -> bool:
    return client.root.blobs.exists(dgst)


def partials(client: Client) -> list[str]:
    d = client.root.blobs.ingest_dir
    return sorted(p.name for p in d.iterdir()) if d.is_dir() else []


def delete_blob(registry: DistributionRegistry, repo: str, dgst: str) -> None:
    conn = registry.connection()
    try:
        conn.request("DELETE", f"/v2/{repo}/blobs/{dgst}")
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 202, resp.status
    finally:
        conn.close()


def assert_nothing_recorded(client: Client) -> None:
    assert client.images.list() == []
    assert client.content.list() == []


# --------------------------------------------------------------------------- what a pull makes
def test_pull_records_the_image_under_its_normalised_name(client: Client, push: Push, repo: str) -> None:
    pushed = host_pushed(push, repo)
    result = client.pull(pushed.ref)
    assert result.image.name == pushed.ref
    assert result.image.target.digest == pushed.digest
    assert client.image(pushed.ref).target.digest == pushed.digest


def test_pull_stores_every_blob_and_makes_it_visible(client: Client, push: Push, repo: str) -> None:
    pushed = host_pushed(push, repo)
    client.pull(pushed.ref)
    for d in [pushed.descriptor, pushed.config_descriptor(), *pushed.layer_descriptors()]:
        assert client.content.info(d.digest).size == d.size


def test_pull_unpacks_and_reports_the_top_chain_id(client: Client, push: Push, repo: str) -> None:
    pushed = host_pushed(push, repo)
    result = client.pull(pushed.ref)
    ((platform, top),) = result.unpacked
    assert platform.normalized() == HOST.normalized()
    assert top == client.layers(pushed.ref).chain_ids[-1]
    assert client.check(pushed.ref).unpacked


def test_pull_writes_containerds_gc_reference_labels(client: Client, push: Push, repo: str) -> None:
    pushed = host_pushed(push, repo)
    client.pull(pushed.ref)
    labels = client.content.info(pushed.digest).labels
    assert labels["containerd.io/gc.ref.content.config"] == pushed.config_descriptor().digest
    layers = pushed.layer_descriptors()
    assert [labels[f"containerd.io/gc.ref.content.l.{i}"] for i in range(len(layers))] == [d.digest for d in layers]


def test_pull_labels_everything_with_its_distribution_source(client: Client, push: Push, repo: str) -> None:
    pushed = host_pushed(push, repo)
    client.pull(pushed.ref)
    key = LABEL_SOURCE + pushed.registry_host
    for d in [pushed.descriptor, pushed.config_descriptor(), *pushed.layer_descriptors()]:
        assert client.content.info(d.digest).labels[key] == repo


def test_a_second_repository_is_added_to_the_distribution_source(client: Client, push: Push, repo: str) -> None:
    first = host_pushed(push, repo)
    second = host_pushed(push, repo, tag="v1")  # same bytes ...
    other = push(first.image, f"{repo}-b", "v1")  # ... and the same image in another repository
    client.pull(second.ref)
    client.pull(other.ref)
    key = LABEL_SOURCE + first.registry_host
    assert client.content.info(first.digest).labels[key] == ",".join(sorted([repo, f"{repo}-b"]))


def test_pull_sets_the_labels_asked_for_on_the_image(client: Client, push: Push, repo: str) -> None:
    pushed = host_pushed(push, repo)
    client.pull(pushed.ref, options=PullOptions(labels={"team": "infra"}))
    assert client.image(pushed.ref).labels == {"team": "infra"}


def test_pull_by_digest_names_the_image_by_its_digest(client: Client, push: Push, repo: str) -> None:
    pushed = host_pushed(push, repo)
    ref = f"{pushed.registry_host}/{repo}@{pushed.digest}"
    assert client.pull(ref).image.name == ref


def test_fetch_records_without_unpacking(client: Client, push: Push, repo: str) -> None:
    pushed = host_pushed(push, repo)
    image = client.fetch(pushed.ref)
    assert image.target.digest == pushed.digest
    assert all(stored(client, d.digest) for d in pushed.layer_descriptors())
    assert not client.check(pushed.ref).unpacked


def test_a_pull_holds_nothing_once_recorded_but_the_image(client: Client, push: Push, repo: str) -> None:
    pushed = host_pushed(push, repo)
    client.pull(pushed.ref)
    freed = client.collect()
    assert (freed.blobs, freed.snapshots, freed.partial) == (0, 0, 0)
    assert client.leases.list() == []


# --------------------------------------------------------------------------- platforms
@pytest.fixture
def multi(push: Push, repo: str) -> Pushed:
    """An index of this host's image and an image for another platform."""
    other = "arm64" if HOST.architecture != "arm64" else "amd64"
    mine = host_image([file("mine.txt", repo.encode())])
    theirs = host_image([file("theirs.txt", repo.encode() * 2)], architecture=other, variant=None)
    return push(index_of([mine, theirs]), repo, "multi")


def test_the_default_platform_fetches_only_this_hosts_blobs(client: Client, multi: Pushed) -> None:
    mine, theirs = multi.images
    client.pull(multi.ref)
    assert stored(client, multi.digest)
    assert all(stored(client, b.digest) for b in [mine.manifest, mine.config, *mine.layers])
    assert not any(stored(client, b.digest) for b in [theirs.manifest, theirs.config, *theirs.layers])


def test_all_metadata_fetches_other_platforms_manifests_and_configs_but_no_layers(client: Client, multi: Pushed) -> None:
    _mine, theirs = multi.images
    client.pull(multi.ref, options=PullOptions(all_metadata=True))
    assert stored(client, theirs.manifest.digest) and stored(client, theirs.config.digest)
    assert not any(stored(client, b.digest) for b in theirs.layers)


def test_all_platforms_fetches_and_unpacks_every_platform(client: Client, multi: Pushed) -> None:
    result = client.pull(multi.ref, options=PullOptions(matcher=Matcher(all_platforms=True)))
    assert all(stored(client, b.digest) for img in multi.images for b in img.layers)
    other = "arm64" if HOST.architecture != "arm64" else "amd64"
    assert sorted(p.architecture for p, _top in result.unpacked) == sorted([HOST.architecture, other])


def test_metadata_only_fetches_every_manifest_and_config_and_no_layer(client: Client, multi: Pushed) -> None:
    client.fetch(multi.ref, options=PullOptions(metadata_only=True))
    for img in multi.images:
        assert stored(client, img.manifest.digest) and stored(client, img.config.digest)
        assert not any(stored(client, b.digest) for b in img.layers)


def test_a_platform_the_index_lacks_fails_and_records_nothing(client: Client, multi: Pushed) -> None:
    with pytest.raises(PlatformNotFound):
        client.pull(multi.ref, options=PullOptions(matcher=Matcher([Platform.parse("linux/s390x")])))
    assert_nothing_recorded(client)


def test_unpack_lines_name_the_platform(client: Client, push: Push, repo: str) -> None:
    pushed = host_pushed(push, repo)
    events: list[Event] = []
    Client(client.root, progress=events.append).pull(pushed.ref)
    (started,) = [e for e in events if isinstance(e, UnpackStarted)]
    assert (started.platform, started.digest) == (str(HOST.normalized()), pushed.digest)


# --------------------------------------------------------------------------- reuse and resume
def test_blobs_already_stored_are_not_downloaded_again(client: Client, push: Push, repo: str,
                                                      fault_proxy: FaultProxy) -> None:
    pushed = host_pushed(push, repo)
    client.pull(via(fault_proxy, pushed))
    fault_proxy.clear()
    result = client.pull(via(fault_proxy, pushed))
    assert result.downloaded == 0
    assert fault_proxy.count("GET", "/blobs/") == 0


def test_a_cut_body_resumes_with_range(client: Client, push: Push, repo: str, fault_proxy: FaultProxy) -> None:
    pushed = host_pushed(push, repo, layers=1, size=300_000)
    (layer,) = pushed.layer_descriptors()
    fault_proxy.add(Rule("GET", f"/blobs/{layer.digest}", nth=1, cut_after=100_000))
    client.pull(via(fault_proxy, pushed), FAST)
    ranges = [r.header("range") for r in fault_proxy.matching("GET", f"/blobs/{layer.digest}")]
    assert ranges == [None, "bytes=100000-"]
    assert client.content.info(layer.digest).size == layer.size


def dead_lease_partial(client: Client, layer: Descriptor, data: bytes) -> Path:
    """A partial download of ``layer`` left by a pull whose process is gone."""
    lease = client.leases.create("ctrpy-pull-0123456789abcdef", owner="no-such-boot/1/1")
    path = client.root.blobs.ingest_dir / partial_name(Held(client.leases, lease.id), layer.digest)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_a_dead_pulls_partial_download_is_resumed(client: Client, push: Push, repo: str, fault_proxy: FaultProxy) -> None:
    pushed = host_pushed(push, repo, layers=1, size=300_000)
    (layer,) = pushed.layer_descriptors()
    blob = next(b for b in pushed.image.layers if b.digest == layer.digest)
    dead_lease_partial(client, layer, blob.data[:120_000])
    result = client.pull(via(fault_proxy, pushed))
    assert result.resumed == 120_000
    assert [r.header("range") for r in fault_proxy.matching("GET", f"/blobs/{layer.digest}")] == ["bytes=120000-"]
    assert client.content.info(layer.digest).size == layer.size
    assert partials(client) == []


def test_a_partial_download_of_wrong_bytes_is_deleted_and_the_pull_fails(client: Client, push: Push, repo: str) -> None:
    pushed = host_pushed(push, repo, layers=1, size=300_000)
    (layer,) = pushed.layer_descriptors()
    dead_lease_partial(client, layer, b"\0" * 120_000)
    with pytest.raises(DigestMismatch) as e:
        client.pull(pushed.ref)
    assert e.value.expected == layer.digest
    assert partials(client) == []
    assert client.pull(pushed.ref).image.target.digest == pushed.digest  # the next one starts afresh


def test_a_live_pulls_partial_download_is_left_alone(client: Client, push: Push, repo: str) -> None:
    pushed = host_pushed(push, repo, layers=1, size=300_000)
    (layer,) = pushed.layer_descriptors()
    with client.lease("pull") as other:  # a pull of this very process, still running
        theirs = client.root.blobs.ingest_dir / partial_name(other, layer.digest)
        theirs.parent.mkdir(parents=True, exist_ok=True)
        theirs.write_bytes(b"x" * 1000)
        result = client.pull(pushed.ref)
        assert theirs.read_bytes() == b"x" * 1000
    assert result.resumed == 0


# --------------------------------------------------------------------------- in parallel
def test_downloads_run_in_parallel_up_to_the_limit(client: Client, push: Push, repo: str, fault_proxy: FaultProxy) -> None:
    pushed = host_pushed(push, repo, layers=4)
    layers = "|".join(d.digest for d in pushed.layer_descriptors())
    fault_proxy.add(Rule("GET", f"/blobs/({layers})", barrier=2, barrier_timeout=5))
    client.pull(via(fault_proxy, pushed), options=PullOptions(max_concurrent_downloads=2))
    assert fault_proxy.max_in_flight == 2


def test_one_download_at_a_time_when_asked(client: Client, push: Push, repo: str, fault_proxy: FaultProxy) -> None:
    pushed = host_pushed(push, repo, layers=3)
    client.pull(via(fault_proxy, pushed), options=PullOptions(max_concurrent_downloads=1))
    assert fault_proxy.max_in_flight == 1


def test_the_largest_layer_is_downloaded_first(client: Client, push: Push, repo: str, fault_proxy: FaultProxy) -> None:
    pushed = host_pushed(push, repo, layers=3)
    client.pull(via(fault_proxy, pushed), options=PullOptions(max_concurrent_downloads=1))
    layers = sorted(pushed.layer_descriptors(), key=lambda d: -d.size)
    gets = [r.path.rsplit("/", 1)[-1] for r in fault_proxy.matching("GET", "/blobs/")]
    config = pushed.config_descriptor().digest
    assert [g for g in gets if g != config] == [d.digest for d in layers]


def test_layer_zero_is_unpacked_while_a_later_layer_still_downloads(client: Client, push: Push, repo: str) -> None:
    pushed = host_pushed(push, repo, layers=2)  # layer 1 is the larger: its download starts first
    big = pushed.layer_descriptors()[1]
    unpacked_first = threading.Event()
    blocked: list[bool] = []

    def sink(event: Event) -> None:
        if isinstance(event, (LayerProgress, LayerDone)) and event.index == 0:
            unpacked_first.set()  # layer 0 is being applied
        if isinstance(event, Transfer) and event.digest == big.digest and event.state == "downloading" and not blocked:
            blocked.append(unpacked_first.wait(timeout=60))  # hold layer 1 until layer 0 is unpacked

    Client(client.root, progress=sink).pull(pushed.ref)
    assert blocked == [True]


# --------------------------------------------------------------------------- faults
def test_a_corrupt_blob_fails_records_nothing_and_leaves_no_partial(client: Client, push: Push, repo: str,
                                                                    fault_proxy: FaultProxy) -> None:
    pushed = host_pushed(push, repo, layers=1)
    (layer,) = pushed.layer_descriptors()
    fault_proxy.add(Rule("GET", f"/blobs/{layer.digest}", corrupt=True))
    with pytest.raises(DigestMismatch) as e:
        client.pull(via(fault_proxy, pushed))
    assert e.value.expected == layer.digest
    assert_nothing_recorded(client)
    assert partials(client) == []
    assert client.snapshotter().list() == []


def test_server_errors_and_rate_limits_are_retried(client: Client, push: Push, repo: str, fault_proxy: FaultProxy) -> None:
    pushed = host_pushed(push, repo)
    layer = pushed.layer_descriptors()[0]
    fault_proxy.add(Rule("GET", f"/blobs/{layer.digest}", nth=1, status=503))
    fault_proxy.add(Rule("GET", f"/blobs/{layer.digest}", nth=2, status=429, headers={"Retry-After": "0"}))
    client.pull(via(fault_proxy, pushed), FAST)
    assert fault_proxy.count("GET", f"/blobs/{layer.digest}") == 3
    assert stored(client, layer.digest)


def test_a_redirect_to_another_host_gets_no_authorization(client: Client, push: Push, repo: str,
                                                           fault_proxy: FaultProxy) -> None:
    pushed = host_pushed(push, repo)
    fault_proxy.add(Rule("GET", "/blobs/", redirect=True))
    remote = RemoteOptions(headers=(("Authorization", "Bearer secret"),))
    client.pull(via(fault_proxy, pushed), remote)
    assert len(fault_proxy.side_requests) == len(pushed.layer_descriptors()) + 1  # and the config
    assert all(r.header("authorization") is None for r in fault_proxy.side_requests)
    assert all(r.header("authorization") == "Bearer secret" for r in fault_proxy.matching("GET", "/blobs/"))


def test_a_wrong_docker_content_digest_is_refused(client: Client, push: Push, repo: str, fault_proxy: FaultProxy) -> None:
    pushed = host_pushed(push, repo)
    wrong = "sha256:" + "0" * 64
    fault_proxy.add(Rule("HEAD", "/manifests/", status=405))  # so that the tag is resolved by GET
    fault_proxy.add(Rule("GET", f"/manifests/{pushed.tag}", set_headers={"Docker-Content-Digest": wrong}))
    with pytest.raises(RemoteDigestMismatch) as e:
        client.pull(via(fault_proxy, pushed))
    assert wrong in str(e.value)
    assert_nothing_recorded(client)


def test_a_missing_tag_is_not_found(client: Client, pushed_image: Pushed) -> None:
    with pytest.raises(RemoteNotFound) as e:
        client.pull(f"{pushed_image.registry_host}/{pushed_image.repo}:nope")
    assert "nope" in str(e.value)
    assert_nothing_recorded(client)


def test_a_missing_digest_is_not_found(client: Client, pushed_image: Pushed) -> None:
    with pytest.raises(RemoteNotFound):
        client.pull(f"{pushed_image.registry_host}/{pushed_image.repo}@sha256:{'1' * 64}")
    assert_nothing_recorded(client)


def test_a_deleted_layer_fails_naming_it(client: Client, push: Push, repo: str,
                                        plain_registry: DistributionRegistry) -> None:
    pushed = host_pushed(push, repo)
    layer = pushed.layer_descriptors()[1]
    delete_blob(plain_registry, repo, layer.digest)  # layer 0 may be unpacked before the 404
    with pytest.raises(RemoteNotFound) as e:
        client.pull(pushed.ref)
    assert layer.digest in str(e.value)
    assert_nothing_recorded(client)
    assert client.snapshotter().list() == []  # layer 0's snapshot, if made, was removed


def test_an_index_whose_child_was_deleted_fails(client: Client, repo: str, plain_registry: DistributionRegistry) -> None:
    mine = host_image([file("a.txt", repo.encode())]).build()
    index = index_of([mine])
    gone = push_index_with_missing_child(plain_registry, repo, "idx", index)
    with pytest.raises(RemoteNotFound) as e:
        client.pull(f"{plain_registry.host}/{repo}:idx")
    assert gone.manifest.digest in str(e.value)
    assert_nothing_recorded(client)


def test_a_failed_pull_leaves_an_existing_image_alone(client: Client, push: Push, repo: str,
                                                     fault_proxy: FaultProxy) -> None:
    pushed = host_pushed(push, repo)
    client.pull(pushed.ref)
    before = client.image(pushed.ref)
    other = host_pushed(push, f"{repo}-2")
    fault_proxy.add(Rule("GET", "/blobs/", corrupt=True))
    with pytest.raises(DigestMismatch):
        client.pull(via(fault_proxy, other))
    assert client.images.list() == [before]
    with pytest.raises(ImageNotFound):
        client.image(via(fault_proxy, other))


# --------------------------------------------------------------------------- auth and TLS
def test_pull_with_basic_auth(client: Client, push: Push, repo: str, basic_registry: DistributionRegistry) -> None:
    user, password = next(iter(BASIC_USERS.items()))
    pushed = host_pushed(push, repo, registry=basic_registry, creds=f"{user}:{password}")
    image = client.pull(pushed.ref, RemoteOptions(user=user, password=password)).image
    assert image.target.digest == pushed.digest


def test_wrong_credentials_are_refused(client: Client, push: Push, repo: str, basic_registry: DistributionRegistry) -> None:
    user, password = next(iter(BASIC_USERS.items()))
    pushed = host_pushed(push, repo, registry=basic_registry, creds=f"{user}:{password}")
    with pytest.raises(AuthError):
        client.pull(pushed.ref, RemoteOptions(user=user, password="wrong"))
    assert_nothing_recorded(client)


def test_pull_over_tls_with_the_registrys_ca(client: Client, push: Push, repo: str, tls_registry: DistributionRegistry) -> None:
    pushed = host_pushed(push, repo, registry=tls_registry)
    assert tls_registry.tls is not None
    image = client.pull(pushed.ref, RemoteOptions(tls_ca_cert=(str(tls_registry.tls.cert),))).image
    assert image.target.digest == pushed.digest


def test_pull_with_a_token_server(client: Client, push: Push, repo: str, token_registry: DistributionRegistry) -> None:
    user, password = next(iter(TOKEN_USERS.items()))
    pushed = host_pushed(push, repo, registry=token_registry, creds=f"{user}:{password}")
    image = client.pull(pushed.ref, RemoteOptions(user=user, password=password)).image
    assert image.target.digest == pushed.digest


def test_bad_options_are_refused_before_any_request(client: Client) -> None:
    from ctrpy.errors import InvalidArgument

    with pytest.raises(InvalidArgument):
        client.pull("127.0.0.1:1/x:y", options=PullOptions(max_concurrent_downloads=0))
    assert not os.path.exists(client.root.path / "content")


def test_a_tag_pulled_again_after_it_moved_points_at_the_new_image(client: Client, push: Push, repo: str) -> None:
    first = host_pushed(push, repo)
    client.pull(first.ref, options=PullOptions(labels={"kept": "yes"}))
    moved = push(host_image([file("new.txt", repo.encode())]), repo, "v1")
    image = client.pull(moved.ref).image
    assert image.target.digest == moved.digest != first.digest
    assert image.labels == {"kept": "yes"}  # labels merge, as import's do


def test_transfer_events_follow_each_blob_from_waiting_to_done(client: Client, push: Push, repo: str) -> None:
    pushed = host_pushed(push, repo)
    events: list[Event] = []
    Client(client.root, progress=events.append).pull(pushed.ref)
    for layer in pushed.layer_descriptors():
        states = [e.state for e in events if isinstance(e, Transfer) and e.ref == f"layer-{layer.digest}"]
        assert states[0] == "waiting" and states[-1] == "done" and "downloading" in states
    assert [e.state for e in events if isinstance(e, Transfer) and e.ref == pushed.ref] == ["resolving", "done"]
    again: list[Event] = []
    Client(client.root, progress=again.append).pull(pushed.ref)
    layer = pushed.layer_descriptors()[0]
    assert [e.state for e in again if isinstance(e, Transfer) and e.ref == f"layer-{layer.digest}"][-1] == "exists"


def test_more_bytes_than_the_descriptor_says_abort_the_blob_and_delete_its_partial(
    client: Client, push: Push, repo: str, fault_proxy: FaultProxy
) -> None:
    pushed = host_pushed(push, repo, layers=1)
    (layer,) = pushed.layer_descriptors()
    fault_proxy.add(Rule("GET", f"/blobs/{layer.digest}", extra_bytes=b"more"))
    with pytest.raises(SizeMismatch):
        client.pull(via(fault_proxy, pushed))
    assert partials(client) == []
    assert_nothing_recorded(client)
