"""Blob downloads into a sink: resume after a cut, restarts, size limits, foreign URLs,
and parallel downloads through one Registry."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from ctrpy.errors import DigestMismatch, SizeMismatch
from ctrpy.oci import Descriptor
from ctrpy.remote import ConnectionFailed, Registry, RemoteNotFound, RemoteSizeMismatch
from tests.registry.fakes import FileSink
from tests.registry.faults import FaultProxy, Rule
from tests.registry.fixtures import small_image
from tests.registry.images import Pushed
from tests.registry.stub import Answer, StubServer

pytestmark = pytest.mark.interop

Client = Callable[..., Registry]
Push = Callable[..., Pushed]


@pytest.fixture
def big(repo: str, push: Push) -> Pushed:
    """An image with one ~600 KB layer (random bytes: gzip cannot shrink it)."""
    return push(small_image(repo, layers=1, size=600_000), repo)


def via(proxy: FaultProxy, pushed: Pushed) -> str:
    return f"{proxy.host}/{pushed.repo}:{pushed.tag}"


def layer_of(pushed: Pushed) -> Descriptor:
    return pushed.layer_descriptors()[0]


def test_fetch_blob_streams_into_the_sink_with_progress(client: Client, big: Pushed, tmp_path: Path) -> None:
    layer = layer_of(big)
    reg = client(big.ref)
    seen: list[int] = []
    sink = FileSink(tmp_path / "b", layer.size)
    reg.fetch_blob(layer, sink, seen.append)
    assert sink.commit(layer.digest)
    assert seen == sorted(seen) and seen[-1] == layer.size
    assert len(seen) == sink.writes


def test_a_cut_body_resumes_with_range(client: Client, big: Pushed, fault_proxy: FaultProxy, tmp_path: Path) -> None:
    layer = layer_of(big)
    cut = 200_000
    fault_proxy.add(Rule("GET", "/blobs/", nth=1, cut_after=cut))
    reg = client(via(fault_proxy, big))
    sink = FileSink(tmp_path / "b", layer.size)
    reg.fetch_blob(layer, sink)
    sink.commit(layer.digest)
    gets = fault_proxy.matching("GET", "/blobs/")
    assert len(gets) == 2
    assert gets[0].header("range") is None
    assert gets[1].header("range") == f"bytes={cut}-"
    assert sink.restarts == 0


def test_several_cuts_resume_each_time(client: Client, big: Pushed, fault_proxy: FaultProxy, tmp_path: Path) -> None:
    layer = layer_of(big)
    fault_proxy.add(Rule("GET", "/blobs/", nth={1, 2, 3}, cut_after=100_000))
    reg = client(via(fault_proxy, big))
    sink = FileSink(tmp_path / "b", layer.size)
    reg.fetch_blob(layer, sink)
    sink.commit(layer.digest)
    ranges = [r.header("range") for r in fault_proxy.matching("GET", "/blobs/")]
    assert ranges == [None, "bytes=100000-", "bytes=200000-", "bytes=300000-"]


def test_a_200_answer_to_range_restarts_the_sink(client: Client, big: Pushed, fault_proxy: FaultProxy, tmp_path: Path) -> None:
    layer = layer_of(big)
    fault_proxy.add(Rule("GET", "/blobs/", nth=1, cut_after=150_000))
    fault_proxy.add(Rule("GET", "/blobs/", ignore_range=True))
    reg = client(via(fault_proxy, big))
    sink = FileSink(tmp_path / "b", layer.size)
    reg.fetch_blob(layer, sink)
    assert sink.restarts == 1
    sink.commit(layer.digest)


def test_a_206_for_another_range_restarts_without_range(
    client: Client, big: Pushed, fault_proxy: FaultProxy, tmp_path: Path
) -> None:
    layer = layer_of(big)
    fault_proxy.add(Rule("GET", "/blobs/", nth=1, cut_after=150_000))
    fault_proxy.add(Rule("GET", "/blobs/", nth=2, set_headers={"Content-Range": "bytes 5-9/10"}))
    reg = client(via(fault_proxy, big))
    sink = FileSink(tmp_path / "b", layer.size)
    reg.fetch_blob(layer, sink)
    sink.commit(layer.digest)
    ranges = [r.header("range") for r in fault_proxy.matching("GET", "/blobs/")]
    assert ranges == [None, "bytes=150000-", None]
    assert sink.restarts == 1


def test_a_resumed_sink_starts_with_range(client: Client, big: Pushed, fault_proxy: FaultProxy, tmp_path: Path) -> None:
    layer = layer_of(big)
    whole = tmp_path / "whole"
    s0 = FileSink(whole, layer.size)
    client(big.ref).fetch_blob(layer, s0)
    part = tmp_path / "part"
    part.write_bytes(whole.read_bytes()[:123_456])
    sink = FileSink(part, layer.size, offset_from_file=True)
    reg = client(via(fault_proxy, big))
    reg.fetch_blob(layer, sink)
    sink.commit(layer.digest)
    [get] = fault_proxy.matching("GET", "/blobs/")
    assert get.header("range") == "bytes=123456-"


def test_a_complete_sink_needs_no_request(client: Client, big: Pushed, fault_proxy: FaultProxy, tmp_path: Path) -> None:
    layer = layer_of(big)
    whole = tmp_path / "whole"
    client(big.ref).fetch_blob(layer, FileSink(whole, layer.size))
    sink = FileSink(whole, layer.size, offset_from_file=True)
    client(via(fault_proxy, big)).fetch_blob(layer, sink)
    assert fault_proxy.count() == 0
    sink.commit(layer.digest)


def test_resumes_are_bounded(client: Client, big: Pushed, fault_proxy: FaultProxy, tmp_path: Path) -> None:
    layer = layer_of(big)
    fault_proxy.add(Rule("GET", "/blobs/", cut_after=1000))
    reg = client(via(fault_proxy, big), max_resumes=3)
    with pytest.raises(ConnectionFailed) as e:
        reg.fetch_blob(layer, FileSink(tmp_path / "b", layer.size))
    assert "broke off 4 times" in str(e.value)
    assert layer.digest in str(e.value)
    assert fault_proxy.count("GET") == 4


def test_more_bytes_than_the_descriptor_says_aborts(
    client: Client, big: Pushed, fault_proxy: FaultProxy, tmp_path: Path
) -> None:
    layer = layer_of(big)
    fault_proxy.add(Rule("GET", "/blobs/", extra_bytes=b"trailing garbage"))
    reg = client(via(fault_proxy, big))
    sink = FileSink(tmp_path / "b", layer.size)
    with pytest.raises(RemoteSizeMismatch) as e:
        reg.fetch_blob(layer, sink)
    assert str(layer.size) in str(e.value)
    assert sink.offset == 0  # refused on the announced length, before any byte


def test_more_bytes_without_a_length_aborts_at_the_limit(
    client: Client, big: Pushed, fault_proxy: FaultProxy, tmp_path: Path
) -> None:
    layer = layer_of(big)
    whole = tmp_path / "whole"
    client(big.ref).fetch_blob(layer, FileSink(whole, layer.size))
    fault_proxy.add(Rule("GET", "/blobs/", status=200, body=whole.read_bytes() + b"xx", no_length=True))
    sink = FileSink(tmp_path / "b", layer.size)
    with pytest.raises(RemoteSizeMismatch, match="more than"):
        client(via(fault_proxy, big)).fetch_blob(layer, sink)
    assert sink.offset <= layer.size


def test_a_sink_refusing_bytes_stops_the_download(client: Client, big: Pushed, tmp_path: Path) -> None:
    layer = layer_of(big)
    sink = FileSink(tmp_path / "b", layer.size - 10)  # the sink's owner expects fewer bytes
    with pytest.raises(SizeMismatch):
        client(big.ref).fetch_blob(layer, sink)


def test_a_corrupt_body_is_caught_by_the_sinks_owner(
    client: Client, big: Pushed, fault_proxy: FaultProxy, tmp_path: Path
) -> None:
    layer = layer_of(big)
    fault_proxy.add(Rule("GET", "/blobs/", corrupt=True))
    sink = FileSink(tmp_path / "b", layer.size)
    client(via(fault_proxy, big)).fetch_blob(layer, sink)  # the fetcher hashes nothing
    with pytest.raises(DigestMismatch):
        sink.commit(layer.digest)


def test_a_missing_blob_is_not_found_naming_it(client: Client, pushed_image: Pushed, tmp_path: Path) -> None:
    d = Descriptor("application/octet-stream", "sha256:" + "ab" * 32, 10)
    with pytest.raises(RemoteNotFound) as e:
        client(pushed_image.ref).fetch_blob(d, FileSink(tmp_path / "b", 10))
    assert d.digest in str(e.value) and pushed_image.repo in str(e.value)


def test_416_on_resume_restarts(client: Client, big: Pushed, fault_proxy: FaultProxy, tmp_path: Path) -> None:
    layer = layer_of(big)
    fault_proxy.add(Rule("GET", "/blobs/", nth=1, cut_after=50_000))
    fault_proxy.add(Rule("GET", "/blobs/", nth=2, status=416))
    sink = FileSink(tmp_path / "b", layer.size)
    client(via(fault_proxy, big)).fetch_blob(layer, sink)
    sink.commit(layer.digest)
    assert sink.restarts == 1


def test_foreign_urls_only_when_asked(client: Client, big: Pushed, fault_proxy: FaultProxy, tmp_path: Path) -> None:
    layer = layer_of(big)
    whole = tmp_path / "whole"
    client(big.ref).fetch_blob(layer, FileSink(whole, layer.size))
    with StubServer("127.0.0.2") as foreign:
        foreign.script("GET", "/layers/l.tar.gz", Answer(200, body=whole.read_bytes()))
        d = Descriptor(layer.media_type, layer.digest, layer.size, urls=(f"{foreign.url}/layers/l.tar.gz", "ftp://x/y"))
        reg = client(via(fault_proxy, big))
        s1 = FileSink(tmp_path / "1", layer.size)
        reg.fetch_blob(d, s1)
        s1.commit(layer.digest)
        assert foreign.count() == 0 and fault_proxy.count("GET") == 1
        s2 = FileSink(tmp_path / "2", layer.size)
        reg.fetch_blob(d, s2, use_urls=True)
        s2.commit(layer.digest)
        assert foreign.count() == 1 and fault_proxy.count("GET") == 1
        assert foreign.requests[0].header("authorization") is None


def test_a_foreign_url_that_fails_falls_back_to_the_registry(
    client: Client, big: Pushed, fault_proxy: FaultProxy, tmp_path: Path
) -> None:
    layer = layer_of(big)
    with StubServer("127.0.0.2") as foreign:  # unscripted: 404
        d = Descriptor(layer.media_type, layer.digest, layer.size, urls=(f"{foreign.url}/gone",))
        sink = FileSink(tmp_path / "b", layer.size)
        client(via(fault_proxy, big)).fetch_blob(d, sink, use_urls=True)
        sink.commit(layer.digest)
        assert foreign.count() == 1 and fault_proxy.count("GET") == 1


# -- concurrency --------------------------------------------------------------------------------


def test_parallel_downloads_through_one_registry(
    client: Client, repo: str, push: Push, fault_proxy: FaultProxy, tmp_path: Path
) -> None:
    n = 4
    pushed = push(small_image(repo, layers=n, size=50_000), repo)
    layers = pushed.layer_descriptors()
    # every blob GET waits until all n are in flight together (bounded): only a client that
    # really runs them in parallel gets them through without waiting out the barrier
    rule = fault_proxy.add(Rule("GET", "/blobs/", barrier=n, barrier_timeout=30))
    reg = client(via(fault_proxy, pushed))
    reg.resolve()
    errors: list[BaseException] = []
    sinks = [FileSink(tmp_path / f"l{i}", d.size) for i, d in enumerate(layers)]

    def get(i: int) -> None:
        try:
            reg.fetch_blob(layers[i], sinks[i])
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=get, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    for s, d in zip(sinks, layers, strict=True):
        s.commit(d.digest)
    assert rule.fired == n
    assert fault_proxy.max_in_flight == n
