"""Retries and redirects through the fault proxy in front of a real registry."""

from __future__ import annotations

import base64
import hashlib
import io
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ctrpy.oci import Descriptor
from ctrpy.remote import ConnectionFailed, RateLimited, Registry, RemoteError
from ctrpy.remote.transport import REFUSED_RETRIES
from tests.registry.distribution import DistributionRegistry
from tests.registry.fakes import FakeClock, FileSink
from tests.registry.faults import FaultProxy, Rule
from tests.registry.fixtures import BASIC_USERS, small_image
from tests.registry.images import Pushed

pytestmark = pytest.mark.interop

Client = Callable[..., Registry]
Push = Callable[..., Pushed]


def via(proxy: FaultProxy, pushed: Pushed, tag: str | None = None) -> str:
    return f"{proxy.host}/{pushed.repo}:{tag or pushed.tag}"


def test_500_then_ok(client: Client, clock: FakeClock, pushed_image: Pushed, fault_proxy: FaultProxy) -> None:
    fault_proxy.add(Rule("HEAD", "/manifests/v1$", nth=1, status=500))
    reg = client(via(fault_proxy, pushed_image))
    assert reg.resolve().digest == pushed_image.digest
    assert fault_proxy.count("HEAD") == 2
    assert clock.sleeps == [0.375]  # 0.5 s base with the test's fixed jitter 0.5 -> 75%


def test_429_with_retry_after_1_is_honoured(
    client: Client, clock: FakeClock, pushed_image: Pushed, fault_proxy: FaultProxy, tmp_path: Path
) -> None:
    layer = pushed_image.layer_descriptors()[0]
    fault_proxy.add(Rule("GET", f"/blobs/{layer.digest}", nth=1, status=429, headers={"Retry-After": "1"}))
    reg = client(via(fault_proxy, pushed_image))
    sink = FileSink(tmp_path / "blob", layer.size)
    reg.fetch_blob(layer, sink)
    sink.commit(layer.digest)
    assert clock.sleeps == [1.0]
    assert fault_proxy.count("GET", "/blobs/") == 2


def test_retry_after_3600_fails_fast_saying_so(
    client: Client, clock: FakeClock, pushed_image: Pushed, fault_proxy: FaultProxy
) -> None:
    fault_proxy.add(Rule("HEAD", "/manifests/", status=429, headers={"Retry-After": "3600"}))
    reg = client(via(fault_proxy, pushed_image))
    with pytest.raises(RateLimited) as e:
        reg.resolve()
    msg = str(e.value)
    assert "retry after 3600s" in msg and "longer than the 60s" in msg
    assert fault_proxy.host in msg
    assert clock.sleeps == []
    assert fault_proxy.count() == 1


def test_retries_are_bounded_in_count(
    client: Client, clock: FakeClock, pushed_image: Pushed, fault_proxy: FaultProxy
) -> None:
    fault_proxy.add(Rule(None, "/manifests/", status=503))
    reg = client(via(fault_proxy, pushed_image), max_retries=2)
    with pytest.raises(RemoteError) as e:
        reg.resolve()
    assert e.value.status == 503
    assert "HTTP 503 Service Unavailable" in str(e.value)
    # HEAD: 1 + 2 retries; then GET for the registry's reason: 1 + 2 retries
    assert fault_proxy.count("HEAD") == 3
    assert fault_proxy.count("GET") == 3
    assert len(clock.sleeps) == 4


def test_retry_of_a_blob_upload_reopens_the_source(
    client: Client, plain_registry: DistributionRegistry, repo: str, fault_proxy: FaultProxy
) -> None:
    fault_proxy.add(Rule("PUT", "/blobs/uploads/", nth=1, status=500))
    data = b"upload me twice" * 1000
    desc = Descriptor("application/octet-stream", "sha256:" + hashlib.sha256(data).hexdigest(), len(data))
    opened: list[int] = []

    def source() -> io.BytesIO:
        opened.append(1)
        return io.BytesIO(data)

    reg = client(f"{fault_proxy.host}/{repo}:x")
    reg.upload_blob(desc, source)
    assert reg.blob_exists(desc)
    assert len(opened) == 3  # its size told first, then one reader per attempt
    assert fault_proxy.count("PUT") == 2


def test_a_refused_connection_is_retried_twice_not_max_retries_times(client: Client, clock: FakeClock) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    reg = client(f"127.0.0.1:{port}/app:v1", max_retries=5)
    with pytest.raises(ConnectionFailed) as e:
        reg.resolve()
    assert "connection refused" in str(e.value)
    assert f"gave up after {REFUSED_RETRIES + 1} attempts" in str(e.value)
    assert len(clock.sleeps) == REFUSED_RETRIES


def test_a_refused_connection_gets_no_more_retries_than_max_retries(client: Client, clock: FakeClock) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConnectionFailed, match="gave up after 2 attempts"):
        client(f"127.0.0.1:{port}/app:v1", max_retries=1).resolve()
    assert len(clock.sleeps) == 1


def test_a_host_name_that_does_not_resolve_fails_at_once_naming_it(
    client: Client, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    real = socket.getaddrinfo

    def getaddrinfo(host: object, *args: object, **kw: object) -> object:
        if host == "registry.nowhere.test":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    with pytest.raises(ConnectionFailed) as e:
        client("registry.nowhere.test/app:v1", max_retries=5).resolve()
    assert "registry.nowhere.test" in str(e.value) and e.value.topic == "dns"
    assert clock.sleeps == []


# -- redirects ---------------------------------------------------------------------------------


@pytest.fixture
def basic_proxy(basic_registry: DistributionRegistry) -> Iterator[FaultProxy]:
    """A fault proxy before the htpasswd registry; its side server has its own credentials."""
    creds = base64.b64encode(b"alice:" + BASIC_USERS["alice"].encode()).decode()
    with FaultProxy(basic_registry.host, side_upstream_headers={"Authorization": f"Basic {creds}"}) as p:
        yield p


@pytest.fixture
def basic_image(basic_registry: DistributionRegistry, repo: str, push: Push) -> Pushed:
    return push(small_image(repo), repo, registry=basic_registry, creds=f"alice:{BASIC_USERS['alice']}")


def test_blob_redirect_is_followed_without_authorization(
    client: Client, basic_image: Pushed, basic_proxy: FaultProxy, tmp_path: Path
) -> None:
    layer = basic_image.layer_descriptors()[0]
    basic_proxy.add(Rule("GET", f"/blobs/{layer.digest}", redirect=True))
    reg = client(f"{basic_proxy.host}/{basic_image.repo}:v1", user="bob", password=BASIC_USERS["bob"],
                 headers=(("X-Registry-Only", "yes"),))
    reg.resolve()  # the registry asks for Basic: from now on every request carries it
    sink = FileSink(tmp_path / "blob", layer.size)
    reg.fetch_blob(layer, sink)
    sink.commit(layer.digest)
    [there] = basic_proxy.side_requests
    assert there.path.endswith(f"/blobs/{layer.digest}")
    assert there.header("authorization") is None
    assert there.header("x-registry-only") is None
    # the registry itself did get the credentials
    home = basic_proxy.matching("GET", f"/blobs/{layer.digest}")
    assert home[-1].header("authorization").startswith("Basic ")  # type: ignore[union-attr]
    assert home[-1].header("x-registry-only") == "yes"


def test_redirected_download_resumes_at_the_new_location(
    client: Client, pushed_image: Pushed, fault_proxy: FaultProxy, tmp_path: Path
) -> None:
    layer = pushed_image.layer_descriptors()[0]
    fault_proxy.add(Rule("GET", f"/blobs/{layer.digest}", nth=1, cut_after=layer.size // 3))
    fault_proxy.add(Rule("GET", f"/blobs/{layer.digest}", redirect=True))
    reg = client(via(fault_proxy, pushed_image))
    sink = FileSink(tmp_path / "blob", layer.size)
    reg.fetch_blob(layer, sink)
    sink.commit(layer.digest)
    [there] = fault_proxy.side_requests
    assert there.header("range") == f"bytes={layer.size // 3}-"


def test_redirect_loops_end_in_a_clear_error(client: Client, pushed_image: Pushed, fault_proxy: FaultProxy,
                                             tmp_path: Path) -> None:
    layer = pushed_image.layer_descriptors()[0]
    loc = f"http://{fault_proxy.host}/v2/{pushed_image.repo}/blobs/{layer.digest}"
    fault_proxy.add(Rule("GET", "/blobs/", status=302, headers={"Location": loc}))
    reg = client(via(fault_proxy, pushed_image), max_redirects=4)
    with pytest.raises(RemoteError, match="more than 4 redirects"):
        reg.fetch_blob(layer, FileSink(tmp_path / "b", layer.size))
    assert fault_proxy.count("GET") == 5


def test_a_read_timeout_is_retried(client: Client, clock: FakeClock, pushed_image: Pushed, fault_proxy: FaultProxy) -> None:
    fault_proxy.add(Rule("HEAD", "/manifests/v1$", nth=1, delay=2.0))
    reg = client(via(fault_proxy, pushed_image), read_timeout=0.5)
    assert reg.resolve().digest == pushed_image.digest
    assert fault_proxy.count("HEAD") == 2
    assert len(clock.sleeps) == 1


def test_the_library_writes_nothing_to_stdout(
    client: Client, pushed_image: Pushed, fault_proxy: FaultProxy, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    fault_proxy.add(Rule("GET", "/blobs/", nth=1, cut_after=1000))
    fault_proxy.add(Rule("HEAD", "/manifests/", nth=1, status=503))
    with client(via(fault_proxy, pushed_image)) as reg:
        desc = reg.resolve()
        reg.fetch_manifest(desc)
        layer = pushed_image.layer_descriptors()[0]
        reg.fetch_blob(layer, FileSink(tmp_path / "b", layer.size))
    out, err = capfd.readouterr()
    assert out == "" and err == ""
