"""Credentials without flags against real registries: config.json, helpers, auth.json."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from ctrpy.remote import AuthError, Registry
from tests.registry.distribution import DistributionRegistry
from tests.registry.fakes import fake_helper_script
from tests.registry.fixtures import BASIC_USERS, TOKEN_USERS, small_image
from tests.registry.images import Pushed
from tests.registry.tokens import TokenServer

pytestmark = pytest.mark.interop

Client = Callable[..., Registry]
Push = Callable[..., Pushed]


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


@pytest.fixture
def basic_image(basic_registry: DistributionRegistry, repo: str, push: Push) -> Pushed:
    return push(small_image(repo, layers=1), repo, registry=basic_registry, creds=f"alice:{BASIC_USERS['alice']}")


def docker_config(env: dict[str, str], cfg: dict[str, object]) -> None:
    d = Path(env["HOME"]) / ".docker"
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.json").write_text(json.dumps(cfg))


def test_config_json_auths(client: Client, env: dict[str, str], basic_image: Pushed) -> None:
    docker_config(env, {"auths": {basic_image.registry_host: {"auth": b64("bob:" + BASIC_USERS["bob"])}}})
    assert client(basic_image.ref).resolve().digest == basic_image.digest


def test_config_json_key_with_scheme(client: Client, env: dict[str, str], basic_image: Pushed) -> None:
    docker_config(env, {"auths": {f"http://{basic_image.registry_host}/": {"username": "bob", "password": BASIC_USERS["bob"]}}})
    assert client(basic_image.ref).resolve().digest == basic_image.digest


def test_cred_helper_in_path(client: Client, env: dict[str, str], basic_image: Pushed, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    log = tmp_path / "asked"
    fake_helper_script(bin_dir, "x", username="alice", secret=BASIC_USERS["alice"], log=log)
    docker_config(env, {"credHelpers": {basic_image.registry_host: "x"}})
    env = {**env, "PATH": f"{bin_dir}:{env['PATH']}"}
    assert client(basic_image.ref, env_override=env).resolve().digest == basic_image.digest
    assert log.read_text().splitlines() == [basic_image.registry_host]


def test_creds_store_in_path(client: Client, env: dict[str, str], basic_image: Pushed, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    fake_helper_script(bin_dir, "secretservice", username="bob", secret=BASIC_USERS["bob"])
    docker_config(env, {"credsStore": "secretservice"})
    env = {**env, "PATH": f"{bin_dir}:{env['PATH']}"}
    assert client(basic_image.ref, env_override=env).resolve().digest == basic_image.digest


def test_registry_auth_file(client: Client, env: dict[str, str], basic_image: Pushed, tmp_path: Path) -> None:
    f = tmp_path / "auth.json"
    f.write_text(json.dumps({"auths": {basic_image.registry_host: {"auth": b64("alice:" + BASIC_USERS["alice"])}}}))
    env = {**env, "REGISTRY_AUTH_FILE": str(f)}
    assert client(basic_image.ref, env_override=env).resolve().digest == basic_image.digest


def test_user_flag_wins_over_a_wrong_config(client: Client, env: dict[str, str], basic_image: Pushed) -> None:
    docker_config(env, {"auths": {basic_image.registry_host: {"auth": b64("bob:wrong")}}})
    reg = client(basic_image.ref, user="bob", password=BASIC_USERS["bob"])
    assert reg.resolve().digest == basic_image.digest


def test_wrong_user_flag_is_not_rescued_by_the_config(client: Client, env: dict[str, str], basic_image: Pushed) -> None:
    docker_config(env, {"auths": {basic_image.registry_host: {"auth": b64("bob:" + BASIC_USERS["bob"])}}})
    reg = client(basic_image.ref, user="bob", password="wrong")
    with pytest.raises(AuthError, match="from the command line"):
        reg.resolve()


def test_wrong_config_password_names_the_file(client: Client, env: dict[str, str], basic_image: Pushed) -> None:
    docker_config(env, {"auths": {basic_image.registry_host: {"auth": b64("bob:Pa55-Not-Right")}}})
    with pytest.raises(AuthError) as e:
        client(basic_image.ref).resolve()
    assert "config.json" in str(e.value)
    assert "Pa55-Not-Right" not in str(e.value)


def test_identity_token_in_config_json(
    client: Client, env: dict[str, str], token_server: TokenServer, token_registry: DistributionRegistry,
    repo: str, push: Push,
) -> None:
    pushed = push(small_image(repo, layers=1), repo, registry=token_registry, creds=f"alice:{TOKEN_USERS['alice']}")
    token_server.reset()
    token_server.settings.refresh_tokens["id-token-of-carol"] = "carol"
    docker_config(env, {"auths": {pushed.registry_host: {"identitytoken": "id-token-of-carol"}}})
    assert client(pushed.ref).resolve().digest == pushed.digest
    [req] = token_server.requests
    assert (req.method, req.grant_type, req.user) == ("POST", "refresh_token", "carol")
