"""The transport against a scripted loopback server: retries, Retry-After, redirects,
headers that must not leave the registry's origin (no registry needed)."""

from __future__ import annotations

import email.utils
import socket
from collections.abc import Iterator

import pytest

from ctrpy.remote.errors import ConnectionFailed, InvalidResponse, RateLimited
from ctrpy.remote.options import RemoteOptions
from ctrpy.remote.transport import Transport
from tests.registry.fakes import FakeClock
from tests.registry.stub import Answer, StubServer


@pytest.fixture
def stub() -> Iterator[StubServer]:
    with StubServer() as s:
        yield s


@pytest.fixture
def other() -> Iterator[StubServer]:
    with StubServer("127.0.0.2") as s:
        yield s


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def transport(clock: FakeClock, **kw: object) -> Transport:
    return Transport(RemoteOptions(**kw), clock=clock, env={}, jitter=lambda: 1.0)  # type: ignore[arg-type]


def test_a_500_then_200_is_retried_once(stub: StubServer, clock: FakeClock) -> None:
    stub.script("GET", "/x", Answer(500), Answer(200, body=b"ok"))
    t = transport(clock)
    with t.request("GET", f"{stub.url}/x") as r:
        assert r.status == 200
        assert r.read() == b"ok"
    assert stub.count("GET", "/x") == 2
    assert clock.sleeps == [0.5]


def test_backoff_grows_between_retries(stub: StubServer, clock: FakeClock) -> None:
    stub.script("GET", "/x", Answer(503), Answer(502), Answer(504), Answer(200))
    with transport(clock).request("GET", f"{stub.url}/x") as r:
        assert r.status == 200
    assert clock.sleeps == [0.5, 1.0, 2.0]


def test_retries_are_bounded_in_count_and_the_last_answer_is_returned(stub: StubServer, clock: FakeClock) -> None:
    stub.script("GET", "/x", Answer(503, body=b"busy"))
    with transport(clock, max_retries=3).request("GET", f"{stub.url}/x") as r:
        assert r.status == 503
    assert stub.count("GET", "/x") == 4
    assert len(clock.sleeps) == 3


def test_retries_are_bounded_in_time(stub: StubServer, clock: FakeClock) -> None:
    stub.script("GET", "/x", Answer(502))
    with transport(clock, max_retries=100, max_retry_time=4.0).request("GET", f"{stub.url}/x") as r:
        assert r.status == 502
    # 0.5 + 1 + 2 = 3.5 s spent; the next wait (4 s) would pass the 4 s budget
    assert clock.sleeps == [0.5, 1.0, 2.0]


def test_429_honours_retry_after_seconds(stub: StubServer, clock: FakeClock) -> None:
    stub.script("GET", "/x", Answer(429, {"Retry-After": "1"}), Answer(200))
    with transport(clock).request("GET", f"{stub.url}/x") as r:
        assert r.status == 200
    assert clock.sleeps == [1.0]


def test_retry_after_as_an_http_date(stub: StubServer, clock: FakeClock) -> None:
    when = email.utils.formatdate(clock.time() + 7, usegmt=True)
    stub.script("GET", "/x", Answer(503, {"Retry-After": when}), Answer(200))
    with transport(clock).request("GET", f"{stub.url}/x") as r:
        assert r.status == 200
    assert clock.sleeps == [pytest.approx(7.0)]


def test_retry_after_beyond_the_cap_fails_at_once_saying_so(stub: StubServer, clock: FakeClock) -> None:
    stub.script("GET", "/x", Answer(429, {"Retry-After": "3600"}), Answer(200))
    with pytest.raises(RateLimited) as e:
        transport(clock).request("GET", f"{stub.url}/x")
    msg = str(e.value)
    assert "3600s" in msg and "60s" in msg and "try again later" in msg
    assert e.value.status == 429
    assert stub.count("GET", "/x") == 1
    assert clock.sleeps == []


def test_a_500_twice_in_a_row_is_not_retried_again(stub: StubServer, clock: FakeClock) -> None:
    stub.script("GET", "/x", Answer(500), Answer(500), Answer(200))
    with transport(clock).request("GET", f"{stub.url}/x") as r:
        assert r.status == 500
    assert stub.count() == 2
    assert clock.sleeps == [0.5]


def test_408_is_retried(stub: StubServer, clock: FakeClock) -> None:
    stub.script("GET", "/x", Answer(408), Answer(200))
    with transport(clock).request("GET", f"{stub.url}/x") as r:
        assert r.status == 200


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 501])
def test_other_errors_are_not_retried(stub: StubServer, clock: FakeClock, status: int) -> None:
    stub.script("GET", "/x", Answer(status))
    with transport(clock).request("GET", f"{stub.url}/x") as r:
        assert r.status == status
    assert stub.count() == 1
    assert clock.sleeps == []


def test_retry_false_sends_once(stub: StubServer, clock: FakeClock) -> None:
    stub.script("PATCH", "/x", Answer(500))
    with transport(clock).request("PATCH", f"{stub.url}/x", body=b"abc", retry=False) as r:
        assert r.status == 500
    assert stub.count() == 1


def test_a_body_is_sent_again_on_retry(stub: StubServer, clock: FakeClock) -> None:
    stub.script("PUT", "/x", Answer(500), Answer(201))
    opened = []

    def source() -> Iterator[bytes]:
        opened.append(1)
        yield b"hello "
        yield b"world"

    with transport(clock).request("PUT", f"{stub.url}/x", headers={"Content-Length": "11"}, body=source) as r:
        assert r.status == 201
    assert stub.bodies == [b"hello world", b"hello world"]
    assert len(opened) == 2


def test_connection_refused_is_retried_then_fails_clearly(clock: FakeClock) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConnectionFailed) as e:
        transport(clock, max_retries=2).request("GET", f"http://127.0.0.1:{port}/v2/")
    msg = str(e.value)
    assert "connection refused" in msg
    assert "gave up after 3 attempts" in msg
    assert f"127.0.0.1:{port}" in msg
    assert len(clock.sleeps) == 2


def test_user_agent_is_sent(stub: StubServer, clock: FakeClock) -> None:
    stub.script("GET", "/x", Answer(200))
    transport(clock, user_agent="ctrpy-test/9").request("GET", f"{stub.url}/x").close()
    assert stub.requests[0].header("User-Agent") == "ctrpy-test/9"


# -- redirects --------------------------------------------------------------------------------


def test_redirect_is_followed_and_origin_headers_stay_home(stub: StubServer, other: StubServer, clock: FakeClock) -> None:
    stub.script("GET", "/blob", Answer(307, {"Location": f"{other.url}/storage/blob?sig=1"}))
    other.script("GET", "/storage/blob", Answer(200, body=b"bytes"))
    with transport(clock).request(
        "GET",
        f"{stub.url}/blob",
        headers={"Accept": "*/*"},
        origin_headers={"Authorization": "Bearer secret-token", "X-Registry-Key": "k"},
    ) as r:
        assert r.status == 200
        assert r.read() == b"bytes"
        assert r.url.startswith(other.url)
    assert stub.requests[0].header("Authorization") == "Bearer secret-token"
    there = other.requests[0]
    assert there.header("Authorization") is None
    assert there.header("X-Registry-Key") is None
    assert there.header("Accept") == "*/*"
    assert there.query == "sig=1"


def test_relative_redirect_on_the_same_host_keeps_authorization(stub: StubServer, clock: FakeClock) -> None:
    stub.script("GET", "/a", Answer(302, {"Location": "/b"}))
    stub.script("GET", "/b", Answer(200))
    transport(clock).request("GET", f"{stub.url}/a", origin_headers={"Authorization": "Basic x"}).close()
    assert [r.path for r in stub.requests] == ["/a", "/b"]
    assert stub.requests[1].header("Authorization") == "Basic x"


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_every_redirect_status_is_followed(stub: StubServer, clock: FakeClock, status: int) -> None:
    stub.script("GET", "/a", Answer(status, {"Location": "/b"}))
    stub.script("GET", "/b", Answer(200, body=b"here"))
    with transport(clock).request("GET", f"{stub.url}/a") as r:
        assert r.read() == b"here"


def test_303_turns_a_post_into_a_get(stub: StubServer, clock: FakeClock) -> None:
    stub.script("POST", "/a", Answer(303, {"Location": "/b"}))
    stub.script("GET", "/b", Answer(200))
    transport(clock).request("POST", f"{stub.url}/a", body=b"x", headers={"Content-Length": "1"}).close()
    assert [(r.method, r.path) for r in stub.requests] == [("POST", "/a"), ("GET", "/b")]


def test_307_keeps_the_method_and_body(stub: StubServer, clock: FakeClock) -> None:
    stub.script("PUT", "/a", Answer(307, {"Location": "/b"}))
    stub.script("PUT", "/b", Answer(201))
    transport(clock).request("PUT", f"{stub.url}/a", body=b"data", headers={"Content-Length": "4"}).close()
    assert [(r.method, r.path) for r in stub.requests] == [("PUT", "/a"), ("PUT", "/b")]
    assert stub.bodies == [b"data", b"data"]


def test_redirect_loops_are_bounded(stub: StubServer, clock: FakeClock) -> None:
    stub.script("GET", "/a", Answer(302, {"Location": "/a"}))
    with pytest.raises(InvalidResponse, match="more than 3 redirects"):
        transport(clock, max_redirects=3).request("GET", f"{stub.url}/a")
    assert stub.count() == 4


def test_redirects_not_followed_when_asked(stub: StubServer, clock: FakeClock) -> None:
    stub.script("GET", "/a", Answer(302, {"Location": "/b"}))
    with transport(clock).request("GET", f"{stub.url}/a", follow_redirects=False) as r:
        assert r.status == 302
    assert stub.count() == 1


def test_redirect_to_a_non_http_scheme_is_refused(stub: StubServer, clock: FakeClock) -> None:
    stub.script("GET", "/a", Answer(302, {"Location": "file:///etc/passwd"}))
    with pytest.raises(InvalidResponse, match="non-HTTP"):
        transport(clock).request("GET", f"{stub.url}/a")


def test_redirect_back_home_gets_authorization_again(stub: StubServer, other: StubServer, clock: FakeClock) -> None:
    stub.script("GET", "/a", Answer(302, {"Location": f"{other.url}/hop"}))
    other.script("GET", "/hop", Answer(302, {"Location": f"{stub.url}/b"}))
    stub.script("GET", "/b", Answer(200))
    transport(clock).request("GET", f"{stub.url}/a", origin_headers={"Authorization": "Basic x"}).close()
    assert other.requests[0].header("Authorization") is None
    assert stub.requests[1].header("Authorization") == "Basic x"


# -- bodies -----------------------------------------------------------------------------------


def test_read_capped_stops_past_the_limit(stub: StubServer, clock: FakeClock) -> None:
    stub.script("GET", "/big", Answer(200, body=b"x" * 5000))
    with transport(clock).request("GET", f"{stub.url}/big") as r:
        data = r.read_capped(1000)
    assert len(data) == 1001


def test_error_body_is_read_and_closed(stub: StubServer, clock: FakeClock) -> None:
    stub.script("GET", "/e", Answer(400, body=b'{"errors":[]}'))
    r = transport(clock).request("GET", f"{stub.url}/e")
    assert r.error_body() == b'{"errors":[]}'
    assert r.read() == b""
