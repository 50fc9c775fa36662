"""Credentials: -u, docker config.json (auths, credHelpers, credsStore), containers'
auth.json.  Helpers are real scripts in a temp PATH; no registry needed."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from ctrpy.remote.credentials import (
    DOCKER_INDEX_SERVER,
    Credentials,
    CredentialStore,
    canonical_host,
    server_url,
)
from ctrpy.remote.errors import CredentialsError
from ctrpy.remote.options import RemoteOptions
from tests.registry.fakes import fake_helper_script


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    h = tmp_path / "home"
    h.mkdir()
    return h


def env_for(home: Path, **extra: str) -> dict[str, str]:
    return {"HOME": str(home), "PATH": f"{home / 'bin'}:/usr/bin:/bin", "XDG_RUNTIME_DIR": str(home / "run"), **extra}


def docker_config(home: Path, cfg: dict[str, object], *, where: Path | None = None) -> Path:
    d = where or home / ".docker"
    d.mkdir(parents=True, exist_ok=True)
    f = d / "config.json"
    f.write_text(json.dumps(cfg))
    return f


def store(home: Path, options: RemoteOptions | None = None, **env: str) -> CredentialStore:
    return CredentialStore(options or RemoteOptions(), env_for(home, **env))


# -- config.json auths ----------------------------------------------------------------------


def test_auths_with_base64_auth(home: Path) -> None:
    docker_config(home, {"auths": {"127.0.0.1:5000": {"auth": b64("alice:wonderland")}}})
    c = store(home).lookup("127.0.0.1:5000")
    assert c is not None
    assert (c.username, c.password) == ("alice", "wonderland")
    assert c.source.endswith("config.json")


def test_auths_password_may_contain_colons(home: Path) -> None:
    docker_config(home, {"auths": {"r.example": {"auth": b64("bob:pa:ss:word")}}})
    c = store(home).lookup("r.example")
    assert c is not None and c.password == "pa:ss:word"


def test_auths_with_username_and_password(home: Path) -> None:
    docker_config(home, {"auths": {"r.example": {"username": "u", "password": "p"}}})
    c = store(home).lookup("r.example")
    assert c is not None and (c.username, c.password) == ("u", "p")


def test_auths_with_identity_token(home: Path) -> None:
    docker_config(home, {"auths": {"r.example": {"identitytoken": "tok-123"}}})
    c = store(home).lookup("r.example")
    assert c is not None
    assert c.identity_token == "tok-123"
    assert not c.has_password and c.usable


@pytest.mark.parametrize(
    "key",
    ["https://index.docker.io/v1/", "index.docker.io", "docker.io", "https://registry-1.docker.io", "registry-1.docker.io"],
)
def test_docker_hub_keys_match_docker_io(home: Path, key: str) -> None:
    docker_config(home, {"auths": {key: {"auth": b64("hub:pw")}}})
    for host in ("docker.io", "registry-1.docker.io", "index.docker.io"):
        c = store(home).lookup(host)
        assert c is not None and c.username == "hub", (key, host)


@pytest.mark.parametrize("key", ["https://r.example:5000", "http://r.example:5000/", "r.example:5000/v1/", "R.EXAMPLE:5000"])
def test_keys_with_scheme_or_path_match_the_host(home: Path, key: str) -> None:
    docker_config(home, {"auths": {key: {"auth": b64("u:p")}}})
    assert store(home).lookup("r.example:5000") is not None


def test_a_bare_key_wins_over_a_url_key(home: Path) -> None:
    docker_config(home, {"auths": {"https://r.example": {"auth": b64("url:1")}, "r.example": {"auth": b64("bare:2")}}})
    c = store(home).lookup("r.example")
    assert c is not None and c.username == "bare"


def test_other_hosts_and_ports_do_not_match(home: Path) -> None:
    docker_config(home, {"auths": {"r.example:5000": {"auth": b64("u:p")}}})
    assert store(home).lookup("r.example") is None
    assert store(home).lookup("r.example:5001") is None
    assert store(home).lookup("other.example:5000") is None


def test_empty_entries_are_skipped(home: Path) -> None:
    docker_config(home, {"auths": {"r.example": {}}})
    assert store(home).lookup("r.example") is None


def test_docker_config_env_points_elsewhere(home: Path, tmp_path: Path) -> None:
    docker_config(home, {"auths": {"r.example": {"auth": b64("home:1")}}})
    other = docker_config(home, {"auths": {"r.example": {"auth": b64("env:2")}}}, where=tmp_path / "dc")
    c = store(home, DOCKER_CONFIG=str(other.parent)).lookup("r.example")
    assert c is not None and c.username == "env"


def test_no_files_no_credentials(home: Path) -> None:
    assert store(home).lookup("r.example") is None


# -- -u wins ---------------------------------------------------------------------------------


def test_user_flag_wins_over_every_file(home: Path) -> None:
    docker_config(home, {"auths": {"r.example": {"auth": b64("file:1")}}})
    c = store(home, RemoteOptions(user="flag", password="2")).lookup("r.example")
    assert c == Credentials("flag", "2", "", "the command line")


def test_user_flag_without_password(home: Path) -> None:
    c = store(home, RemoteOptions(user="flag")).lookup("r.example")
    assert c is not None and c.username == "flag" and not c.has_password


def test_refresh_flag_gives_an_identity_token(home: Path) -> None:
    c = store(home, RemoteOptions(refresh_token="rt")).lookup("r.example")
    assert c is not None and c.identity_token == "rt" and c.source == "the command line"


# -- helpers ---------------------------------------------------------------------------------


def test_cred_helper_for_the_host(home: Path) -> None:
    log = home / "asked"
    fake_helper_script(home / "bin", "x", username="helped", secret="hs", log=log)
    docker_config(home, {"credHelpers": {"127.0.0.1:5000": "x"}, "auths": {"127.0.0.1:5000": {"auth": b64("file:1")}}})
    c = store(home).lookup("127.0.0.1:5000")
    assert c is not None
    assert (c.username, c.password) == ("helped", "hs")
    assert c.source == "docker-credential-x"
    assert log.read_text().splitlines() == ["127.0.0.1:5000"]


def test_cred_helper_is_asked_about_docker_hub_with_the_index_url(home: Path) -> None:
    log = home / "asked"
    fake_helper_script(home / "bin", "hub", username="u", secret="s", log=log)
    docker_config(home, {"credHelpers": {"docker.io": "hub"}})
    assert store(home).lookup("registry-1.docker.io") is not None
    assert log.read_text().splitlines() == [DOCKER_INDEX_SERVER]


def test_cred_helper_token_user_means_identity_token(home: Path) -> None:
    fake_helper_script(home / "bin", "x", username="<token>", secret="id-token")
    docker_config(home, {"credHelpers": {"r.example": "x"}})
    c = store(home).lookup("r.example")
    assert c is not None
    assert c.identity_token == "id-token" and c.username == "" and c.password == ""


def test_creds_store_for_every_host(home: Path) -> None:
    log = home / "asked"
    fake_helper_script(home / "bin", "desktop", username="stored", secret="st", log=log)
    docker_config(home, {"credsStore": "desktop"})
    c = store(home).lookup("a.example")
    assert c is not None and c.username == "stored"
    assert log.read_text().splitlines() == ["a.example"]


def test_cred_helper_wins_over_creds_store(home: Path) -> None:
    fake_helper_script(home / "bin", "one", username="helper", secret="1")
    fake_helper_script(home / "bin", "all", username="store", secret="2")
    docker_config(home, {"credHelpers": {"r.example": "one"}, "credsStore": "all"})
    c = store(home).lookup("r.example")
    assert c is not None and c.username == "helper"


def test_creds_store_without_an_entry_falls_back_to_auths(home: Path) -> None:
    fake_helper_script(home / "bin", "desktop", username="x", secret="y", server="somewhere-else.example")
    docker_config(home, {"credsStore": "desktop", "auths": {"r.example": {"auth": b64("file:1")}}})
    c = store(home).lookup("r.example")
    assert c is not None and c.username == "file"


def test_cred_helper_not_found_means_no_credentials(home: Path) -> None:
    fake_helper_script(home / "bin", "x", username="u", secret="s", server="other.example")
    docker_config(home, {"credHelpers": {"r.example": "x"}})
    assert store(home).lookup("r.example") is None


def test_a_failing_helper_is_an_error_naming_it(home: Path) -> None:
    fake_helper_script(home / "bin", "x", username="u", secret="s", fail="keychain is locked")
    docker_config(home, {"credHelpers": {"r.example": "x"}})
    with pytest.raises(CredentialsError) as e:
        store(home).lookup("r.example")
    assert "docker-credential-x" in str(e.value)
    assert "keychain is locked" in str(e.value)


def test_a_missing_helper_is_an_error_naming_it(home: Path) -> None:
    docker_config(home, {"credHelpers": {"r.example": "absent"}})
    with pytest.raises(CredentialsError, match="docker-credential-absent is not installed"):
        store(home).lookup("r.example")


def test_a_helper_printing_garbage_is_an_error(home: Path) -> None:
    d = home / "bin"
    d.mkdir()
    (d / "docker-credential-bad").write_text("#!/bin/sh\necho not-json\n")
    (d / "docker-credential-bad").chmod(0o755)
    docker_config(home, {"credHelpers": {"r.example": "bad"}})
    with pytest.raises(CredentialsError, match="not JSON"):
        store(home).lookup("r.example")


def test_the_helper_is_run_once_per_host(home: Path) -> None:
    log = home / "asked"
    fake_helper_script(home / "bin", "x", username="u", secret="s", log=log)
    docker_config(home, {"credsStore": "x"})
    s = store(home)
    for _ in range(3):
        s.lookup("r.example")
    assert log.read_text().splitlines() == ["r.example"]


def test_an_injected_helper_runner() -> None:
    calls: list[tuple[str, str]] = []

    def runner(name: str, server: str, env: object) -> tuple[int, str, str]:
        calls.append((name, server))
        return 0, json.dumps({"Username": "i", "Secret": "j"}), ""

    import tempfile

    with tempfile.TemporaryDirectory() as d:
        Path(d, "config.json").write_text(json.dumps({"credsStore": "pass"}))
        s = CredentialStore(RemoteOptions(), {"DOCKER_CONFIG": d, "HOME": d}, helper=runner)
        c = s.lookup("r.example")
    assert c is not None and c.username == "i"
    assert calls == [("pass", "r.example")]


# -- containers auth.json ----------------------------------------------------------------------


def auth_json(path: Path, auths: dict[str, object]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"auths": auths}))
    return path


def test_registry_auth_file(home: Path, tmp_path: Path) -> None:
    f = auth_json(tmp_path / "auth.json", {"r.example": {"auth": b64("podman:1")}})
    c = store(home, REGISTRY_AUTH_FILE=str(f)).lookup("r.example")
    assert c is not None and c.username == "podman"


def test_xdg_runtime_dir_auth_json(home: Path) -> None:
    auth_json(home / "run" / "containers" / "auth.json", {"r.example": {"auth": b64("runtime:1")}})
    c = store(home).lookup("r.example")
    assert c is not None and c.username == "runtime"


def test_xdg_config_home_auth_json(home: Path) -> None:
    auth_json(home / ".config" / "containers" / "auth.json", {"r.example": {"auth": b64("cfg:1")}})
    c = store(home).lookup("r.example")
    assert c is not None and c.username == "cfg"


def test_docker_config_comes_before_auth_json(home: Path) -> None:
    docker_config(home, {"auths": {"r.example": {"auth": b64("docker:1")}}})
    auth_json(home / "run" / "containers" / "auth.json", {"r.example": {"auth": b64("podman:1")}})
    c = store(home).lookup("r.example")
    assert c is not None and c.username == "docker"


def test_auth_json_repository_keys_longest_match_wins(home: Path) -> None:
    auth_json(
        home / "run" / "containers" / "auth.json",
        {
            "r.example": {"auth": b64("host:1")},
            "r.example/team": {"auth": b64("team:1")},
            "r.example/team/app": {"auth": b64("app:1")},
        },
    )
    s = store(home)
    assert (c := s.lookup("r.example", "team/app")) is not None and c.username == "app"
    assert (c := s.lookup("r.example", "team/other")) is not None and c.username == "team"
    assert (c := s.lookup("r.example", "teammate/x")) is not None and c.username == "host"
    assert (c := s.lookup("r.example", "")) is not None and c.username == "host"


def test_registry_auth_file_alone_when_set(home: Path, tmp_path: Path) -> None:
    auth_json(home / "run" / "containers" / "auth.json", {"r.example": {"auth": b64("runtime:1")}})
    f = auth_json(tmp_path / "empty.json", {})
    assert store(home, REGISTRY_AUTH_FILE=str(f)).lookup("r.example") is None


# -- bad files and secrets --------------------------------------------------------------------


def test_malformed_config_json_names_the_file(home: Path) -> None:
    f = home / ".docker" / "config.json"
    f.parent.mkdir()
    f.write_text("{not json")
    with pytest.raises(CredentialsError) as e:
        store(home).lookup("r.example")
    assert str(f) in str(e.value)


def test_config_json_not_an_object(home: Path) -> None:
    f = home / ".docker" / "config.json"
    f.parent.mkdir()
    f.write_text("[1, 2]")
    with pytest.raises(CredentialsError, match="not a JSON object"):
        store(home).lookup("r.example")


def test_empty_config_json_is_fine(home: Path) -> None:
    f = home / ".docker" / "config.json"
    f.parent.mkdir()
    f.write_text("")
    assert store(home).lookup("r.example") is None


def test_bad_base64_auth_names_the_file_not_the_value(home: Path) -> None:
    docker_config(home, {"auths": {"r.example": {"auth": "!!!not-base64-secret!!!"}}})
    with pytest.raises(CredentialsError) as e:
        store(home).lookup("r.example")
    assert "config.json" in str(e.value)
    assert "not-base64-secret" not in str(e.value)


def test_auth_without_colon_is_refused(home: Path) -> None:
    docker_config(home, {"auths": {"r.example": {"auth": b64("nocolon")}}})
    with pytest.raises(CredentialsError, match="user:password"):
        store(home).lookup("r.example")


def test_credentials_repr_never_shows_secrets() -> None:
    c = Credentials("alice", "hunter2", "id-token-xyz", "the command line")
    text = repr(c)
    assert "alice" in text
    assert "hunter2" not in text and "id-token-xyz" not in text


def test_canonical_host_and_server_url() -> None:
    assert canonical_host("https://index.docker.io/v1/") == "docker.io"
    assert canonical_host("Registry.Example.com:5000/path") == "registry.example.com:5000"
    assert server_url("docker.io") == DOCKER_INDEX_SERVER
    assert server_url("127.0.0.1:5000") == "127.0.0.1:5000"
