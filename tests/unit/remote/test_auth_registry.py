"""Every way to authenticate, against distribution 2.8 (htpasswd and a token server)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from ctrpy.remote import AuthError, Registry
from tests.registry.distribution import DistributionRegistry
from tests.registry.fakes import FakeClock, FileSink
from tests.registry.fixtures import BASIC_USERS, TOKEN_USERS, small_image
from tests.registry.images import Pushed
from tests.registry.tokens import TokenServer

pytestmark = pytest.mark.interop

Client = Callable[..., Registry]
Push = Callable[..., Pushed]


def pull_all(reg: Registry, pushed: Pushed, tmp: Path) -> None:
    """resolve, manifest, config and every layer, each checked."""
    desc = reg.resolve()
    assert desc.digest == pushed.digest
    assert reg.fetch_manifest(desc) == pushed.manifest.data
    for i, d in enumerate([pushed.config_descriptor(), *pushed.layer_descriptors()]):
        sink = FileSink(tmp / f"blob{i}", d.size)
        reg.fetch_blob(d, sink)
        sink.commit(d.digest)


# -- anonymous and basic -------------------------------------------------------------------------


def test_anonymous_pull_from_an_open_registry(client: Client, pushed_image: Pushed, tmp_path: Path) -> None:
    reg = client(pushed_image.ref)
    pull_all(reg, pushed_image, tmp_path)


def test_basic_auth_pull(client: Client, basic_registry: DistributionRegistry, repo: str, push: Push, tmp_path: Path) -> None:
    pushed = push(small_image(repo), repo, registry=basic_registry, creds="alice:wonderland")
    reg = client(pushed.ref, user="bob", password=BASIC_USERS["bob"])
    pull_all(reg, pushed, tmp_path)


def test_basic_auth_sends_credentials_after_the_first_challenge(
    client: Client, basic_registry: DistributionRegistry, repo: str, push: Push
) -> None:
    pushed = push(small_image(repo), repo, registry=basic_registry, creds="alice:wonderland")
    reg = client(pushed.ref, user="alice", password="wonderland")
    reg.resolve()
    host = reg.remote.hosts[0]
    assert reg.remote.auth(host, reg.path).authorize([]).header is not None  # Basic from now on


def test_basic_auth_without_credentials_says_what_is_needed(client: Client, basic_registry: DistributionRegistry) -> None:
    reg = client(basic_registry.ref("nothing-here"))
    with pytest.raises(AuthError) as e:
        reg.resolve()
    msg = str(e.value)
    assert basic_registry.host in msg
    assert "user name and password" in msg
    assert "-u" not in msg  # the library names no flag: the CLI's hint does
    assert e.value.status == 401


def test_basic_auth_with_a_user_and_no_password_names_the_missing_password(
    client: Client, basic_registry: DistributionRegistry
) -> None:
    reg = client(basic_registry.ref("nothing-here"), user="alice")
    with pytest.raises(AuthError) as e:
        reg.resolve()
    assert "a password for user 'alice'" in str(e.value)
    assert e.value.topic == "password"


def test_basic_auth_wrong_password_names_the_user_not_the_password(
    client: Client, basic_registry: DistributionRegistry
) -> None:
    reg = client(basic_registry.ref("x"), user="alice", password="not-the-password")
    with pytest.raises(AuthError) as e:
        reg.resolve()
    msg = str(e.value)
    assert "rejected the credentials of user 'alice'" in msg
    assert "not-the-password" not in msg
    assert basic_registry.host in msg


# -- tokens ------------------------------------------------------------------------------------


@pytest.fixture
def token_image(token_registry: DistributionRegistry, token_server: TokenServer, repo: str, push: Push) -> Pushed:
    """An image pushed as alice; the token server is reset after the push (default settings,
    an empty log), so that a test sees only its own token requests."""
    pushed = push(small_image(repo), repo, registry=token_registry, creds=f"alice:{TOKEN_USERS['alice']}")
    token_server.reset()
    return pushed


def test_token_anonymous_get(client: Client, token_server: TokenServer, token_image: Pushed, tmp_path: Path) -> None:
    token_server.settings.anonymous_actions = ("pull",)
    reg = client(token_image.ref)
    pull_all(reg, token_image, tmp_path)
    [req] = token_server.requests
    assert (req.method, req.user, req.basic) == ("GET", "", False)
    assert req.scopes == (f"repository:{token_image.repo}:pull",)
    assert req.service == token_server.service


def test_token_anonymous_without_rights_is_denied_clearly(client: Client, token_server: TokenServer, token_image: Pushed) -> None:
    reg = client(token_image.ref)
    with pytest.raises(AuthError) as e:
        reg.resolve()
    msg = str(e.value)
    assert "access denied" in msg
    assert "insufficient_scope" in msg
    assert "-u USER[:PASSWORD]" in msg
    # one anonymous token, refused: no second try with the same result
    assert token_server.count() == 1


def test_token_post_with_password(client: Client, token_server: TokenServer, token_image: Pushed, tmp_path: Path) -> None:
    reg = client(token_image.ref, user="carol", password=TOKEN_USERS["carol"])
    pull_all(reg, token_image, tmp_path)
    [req] = token_server.requests
    assert (req.method, req.grant_type, req.user, req.client_id) == ("POST", "password", "carol", "ctrpy")
    assert req.scopes == (f"repository:{token_image.repo}:pull",)


def test_token_post_with_an_identity_token(client: Client, token_server: TokenServer, token_image: Pushed, tmp_path: Path) -> None:
    token_server.settings.refresh_tokens["rt-for-carol"] = "carol"
    reg = client(token_image.ref, refresh_token="rt-for-carol")
    pull_all(reg, token_image, tmp_path)
    [req] = token_server.requests
    assert (req.method, req.grant_type, req.user) == ("POST", "refresh_token", "carol")


@pytest.mark.parametrize("status", [404, 405, 400, 401])
def test_token_post_unsupported_falls_back_to_get_with_basic(
    client: Client, token_server: TokenServer, token_image: Pushed, tmp_path: Path, status: int
) -> None:
    token_server.settings.post_status = status
    reg = client(token_image.ref, user="alice", password=TOKEN_USERS["alice"])
    pull_all(reg, token_image, tmp_path)
    assert [(r.method, r.status) for r in token_server.requests] == [("POST", status), ("GET", 200)]
    get = token_server.requests[1]
    assert get.basic and get.user == "alice"


def test_token_post_other_failure_is_an_error(client: Client, token_server: TokenServer, token_image: Pushed) -> None:
    token_server.settings.post_status = 500
    reg = client(token_image.ref, user="alice", password=TOKEN_USERS["alice"], max_retries=1)
    with pytest.raises(Exception) as e:
        reg.resolve()
    assert "token server" in str(e.value) and "500" in str(e.value)


def test_token_wrong_password_is_refused_by_the_token_server(
    client: Client, token_server: TokenServer, token_image: Pushed
) -> None:
    reg = client(token_image.ref, user="alice", password="wrong-password-here")
    with pytest.raises(AuthError) as e:
        reg.resolve()
    msg = str(e.value)
    assert "token server" in msg and "rejected the credentials of user 'alice'" in msg
    assert "wrong-password-here" not in msg
    # the POST said 401, so the GET was tried too; both refused; no loop
    assert [(r.method, r.status) for r in token_server.requests] == [("POST", 401), ("GET", 401)]


def test_token_is_cached_per_scope(client: Client, token_server: TokenServer, token_image: Pushed, tmp_path: Path) -> None:
    token_server.settings.anonymous_actions = ("pull",)
    reg = client(token_image.ref)
    pull_all(reg, token_image, tmp_path)
    pull_all(reg, token_image, tmp_path)
    assert token_server.count() == 1


def test_token_refreshed_when_expired_mid_sequence(
    client: Client, clock: FakeClock, token_server: TokenServer, token_image: Pushed, tmp_path: Path
) -> None:
    token_server.settings.anonymous_actions = ("pull",)
    token_server.settings.expires_in = 60
    reg = client(token_image.ref)
    desc = reg.resolve()
    assert token_server.count() == 1
    clock.advance(30)
    reg.fetch_manifest(desc)
    assert token_server.count() == 1  # still fresh
    clock.advance(31)  # past 60 s (minus the early margin): a new token before the next call
    layer = token_image.layer_descriptors()[0]
    reg.fetch_blob(layer, FileSink(tmp_path / "l", layer.size))
    assert token_server.count() == 2


def test_token_refused_by_the_registry_is_fetched_again(
    client: Client, token_server: TokenServer, token_image: Pushed, tmp_path: Path
) -> None:
    """A cached token that the registry no longer takes (expired on its clock): one new token."""
    token_server.settings.anonymous_actions = ("pull",)
    reg = client(token_image.ref)
    desc = reg.resolve()
    token_server.settings.expired_tokens = 0
    # make the cached token stale on the registry's side by swapping it for an expired one
    host = reg.remote.hosts[0]
    auth = reg.remote.auth(host, reg.path)
    for key, tok in list(auth._tokens.items()):
        tok.value = token_server.make_token("", [{"type": "repository", "name": token_image.repo, "actions": ["pull"]}], expired=True)
        auth._tokens[key] = tok
    before = token_server.count()
    assert reg.fetch_manifest(desc) == token_image.manifest.data
    assert token_server.count() == before + 1


def test_token_issued_expired_is_retried_once_then_works(
    client: Client, token_server: TokenServer, token_image: Pushed, tmp_path: Path
) -> None:
    token_server.settings.anonymous_actions = ("pull",)
    token_server.settings.expired_tokens = 1
    reg = client(token_image.ref)
    # the first token (expired) is fetched for this request and refused: a fresh-token refusal
    # fails at once; the next call fetches a good token
    with pytest.raises(AuthError, match="invalid_token"):
        reg.resolve()
    assert reg.resolve().digest == token_image.digest
    assert token_server.count() == 2


def test_repeated_401_is_bounded_with_one_clear_error(
    client: Client, token_server: TokenServer, token_registry: DistributionRegistry, repo: str
) -> None:
    token_server.settings.user_actions = ("pull",)  # alice may not push
    reg = client(token_registry.ref(repo), user="alice", password=TOKEN_USERS["alice"])
    from ctrpy.oci import Descriptor

    blob = b"some blob"
    import hashlib
    import io

    desc = Descriptor("application/octet-stream", "sha256:" + hashlib.sha256(blob).hexdigest(), len(blob))
    with pytest.raises(AuthError) as e:
        reg.upload_blob(desc, lambda: io.BytesIO(blob))
    msg = str(e.value)
    assert token_registry.host in msg
    assert "insufficient_scope" in msg
    assert token_server.count() <= 2


def test_parallel_requests_share_one_token_fetch(
    client: Client, token_server: TokenServer, token_image: Pushed, tmp_path: Path
) -> None:
    token_server.settings.anonymous_actions = ("pull",)
    reg = client(token_image.ref)
    reg.resolve()
    host = reg.remote.hosts[0]
    reg.remote.auth(host, reg.path)._tokens.clear()  # every thread now needs a token at once
    before = token_server.count()
    layers = token_image.layer_descriptors()
    errors: list[BaseException] = []

    def get(i: int) -> None:
        try:
            d = layers[i % len(layers)]
            s = FileSink(tmp_path / f"p{i}", d.size)
            reg.fetch_blob(d, s)
            s.commit(d.digest)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=get, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    assert token_server.count() == before + 1


def test_push_token_has_push_scope_and_mount_adds_the_source(
    client: Client, token_server: TokenServer, token_image: Pushed
) -> None:
    target = token_image.repo + "-copy"
    reg = client(f"{token_image.registry_host}/{target}:v1", user="alice", password=TOKEN_USERS["alice"])
    layer = token_image.layer_descriptors()[0]
    result = reg.mount_blob(layer, token_image.repo)
    assert result.mounted
    scopes = [r.scopes for r in token_server.requests]
    assert (f"repository:{token_image.repo}:pull", f"repository:{target}:pull,push") in scopes
