"""pytest fixtures around a real registry.  Import them into a conftest.py::

    from tests.registry.fixtures import *  # noqa: F403

Registries (session-scoped, one per xdist worker; each test uses its own repository):

- ``plain_registry``: no auth, plain HTTP;
- ``basic_registry``: htpasswd (bcrypt) with ``BASIC_USERS``;
- ``tls_registry``: HTTPS with a self-signed certificate (``tls_pair``: its cert and key;
  the cert is also the CA to trust);
- ``mtls_registry``: HTTPS that requires a client certificate (``client_pair``);
- ``token_registry`` with ``token_server`` (reset before every test: settings, log).

Per test:

- ``repo``: a repository name unique to the test;
- ``fault_proxy``: a fresh :class:`~tests.registry.faults.FaultProxy` in front of
  ``plain_registry``;
- ``clock``: a :class:`~tests.registry.fakes.FakeClock`;
- ``env``: a clean environment (HOME in a temp dir, no proxies, no DOCKER_CONFIG...);
- ``client(ref, **options)``: a :class:`ctrpy.remote.Registry` with the fake clock and the
  clean env (``env=`` to override), closed after the test;
- ``push(item, repo, tag, registry=plain_registry, creds=None)``: skopeo push, gives a
  :class:`~tests.registry.images.Pushed`;
- ``pushed_image``: a two-layer image pushed to ``plain_registry`` as ``repo:v1``.

Every fixture that needs ``docker-registry``, ``openssl``, ``htpasswd`` or ``skopeo`` skips
the test when the tool is missing (and fails it under CI=true, where peers must be there).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from ctrpy.remote import Registry, RemoteOptions
from tests.builders import Image, file
from tests.peers import have, in_ci
from tests.registry.certs import CertPair, self_signed, signed_by
from tests.registry.distribution import DistributionRegistry, RegistryStartError
from tests.registry.fakes import FakeClock
from tests.registry.faults import FaultProxy
from tests.registry.images import Pushed, PushItem, skopeo_push
from tests.registry.tokens import TokenServer

__all__ = [
    "BASIC_USERS",
    "TOKEN_USERS",
    "basic_registry",
    "client",
    "client_ca",
    "client_pair",
    "clock",
    "env",
    "fault_proxy",
    "mtls_registry",
    "no_user_credentials",
    "plain_registry",
    "push",
    "pushed_image",
    "repo",
    "require",
    "tls_pair",
    "tls_registry",
    "token_pair",
    "token_registry",
    "token_server",
]

BASIC_USERS = {"alice": "wonderland", "bob": "builder"}
TOKEN_USERS = {"alice": "wonderland", "carol": "s3cret-pass"}


def require(*tools: str) -> None:
    """Skip unless every tool is installed (fail under CI=true)."""
    for tool in tools:
        if not have(tool):
            reason = f"{tool} is not installed (run `make peers`)"
            if in_ci():
                pytest.fail(f"{reason} (CI=true: peers must be available)", pytrace=False)
            pytest.skip(reason)


@contextmanager
def _running(reg: DistributionRegistry) -> Iterator[DistributionRegistry]:
    """REG started (the test skips when it cannot start; fails under CI=true), stopped on the
    way out."""
    try:
        reg.start()
    except RegistryStartError as e:
        if in_ci():
            pytest.fail(f"docker-registry did not start: {e}", pytrace=False)
        pytest.skip(f"docker-registry did not start: {e}")
    try:
        yield reg
    finally:
        reg.stop()


@pytest.fixture(scope="session")
def plain_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DistributionRegistry]:
    require("docker-registry")
    with _running(DistributionRegistry(tmp_path_factory.mktemp("reg-plain"))) as reg:
        yield reg


@pytest.fixture(scope="session")
def basic_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DistributionRegistry]:
    require("docker-registry", "htpasswd")
    with _running(DistributionRegistry(tmp_path_factory.mktemp("reg-basic"), htpasswd=BASIC_USERS)) as reg:
        yield reg


@pytest.fixture(scope="session")
def tls_pair(tmp_path_factory: pytest.TempPathFactory) -> CertPair:
    require("openssl")
    return self_signed(tmp_path_factory.mktemp("tls"), "registry")


@pytest.fixture(scope="session")
def tls_registry(tmp_path_factory: pytest.TempPathFactory, tls_pair: CertPair) -> Iterator[DistributionRegistry]:
    require("docker-registry", "openssl")
    with _running(DistributionRegistry(tmp_path_factory.mktemp("reg-tls"), tls=tls_pair)) as reg:
        yield reg


@pytest.fixture(scope="session")
def client_pair(tmp_path_factory: pytest.TempPathFactory, tls_pair: CertPair) -> CertPair:
    """A client certificate signed by ``client-ca.crt`` next to it (the CA mtls_registry trusts)."""
    require("openssl")
    d = tmp_path_factory.mktemp("client-cert")
    ca = self_signed(d, "client-ca", cn="ctrpy client CA", sans=())
    return signed_by(d, "client", ca)


@pytest.fixture(scope="session")
def client_ca(client_pair: CertPair) -> Path:
    return client_pair.cert.parent / "client-ca.crt"


@pytest.fixture(scope="session")
def mtls_registry(
    tmp_path_factory: pytest.TempPathFactory, tls_pair: CertPair, client_ca: Path, client_pair: CertPair
) -> Iterator[DistributionRegistry]:
    require("docker-registry", "openssl")
    mtls = DistributionRegistry(
        tmp_path_factory.mktemp("reg-mtls"), tls=tls_pair, client_ca=client_ca, client_cert=client_pair
    )
    with _running(mtls) as reg:
        yield reg


@pytest.fixture(scope="session")
def token_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TokenServer, DistributionRegistry]]:
    require("docker-registry", "openssl")
    d = tmp_path_factory.mktemp("reg-token")
    ts = TokenServer(d / "tokens", users=TOKEN_USERS).start()
    try:
        with _running(DistributionRegistry(d / "registry", token=ts.registry_auth())) as reg:
            yield ts, reg
    finally:
        ts.stop()


@pytest.fixture
def token_server(token_pair: tuple[TokenServer, DistributionRegistry]) -> TokenServer:
    ts = token_pair[0]
    ts.reset()
    return ts


@pytest.fixture
def token_registry(token_pair: tuple[TokenServer, DistributionRegistry], token_server: TokenServer) -> DistributionRegistry:
    return token_pair[1]


@pytest.fixture
def repo(request: pytest.FixtureRequest) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:48].strip("-") or "t"
    return f"{base}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def fault_proxy(plain_registry: DistributionRegistry) -> Iterator[FaultProxy]:
    proxy = FaultProxy(plain_registry.host).start()
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {"HOME": str(home), "PATH": "/usr/local/bin:/usr/bin:/bin", "XDG_RUNTIME_DIR": str(tmp_path / "run")}


@pytest.fixture
def client(clock: FakeClock, env: dict[str, str]) -> Iterator[Callable[..., Registry]]:
    made: list[Registry] = []

    def make(ref: str, *, env_override: dict[str, str] | None = None, jitter: float = 0.5, **options: Any) -> Registry:
        reg = Registry.for_reference(
            ref,
            RemoteOptions(**options),
            clock=clock,
            env=env_override if env_override is not None else env,
            jitter=lambda: jitter,
        )
        made.append(reg)
        return reg

    try:
        yield make
    finally:
        for r in made:
            r.close()


@pytest.fixture
def push(plain_registry: DistributionRegistry, tmp_path: Path) -> Callable[..., Pushed]:
    require("skopeo")

    def do(
        item: PushItem,
        repo: str,
        tag: str = "v1",
        *,
        registry: DistributionRegistry | None = None,
        creds: str | None = None,
    ) -> Pushed:
        return skopeo_push(registry or plain_registry, item, repo, tag, tmp_path / "push", creds=creds)

    return do


def small_image(seed: str = "x", *, layers: int = 2, size: int = 20_000) -> Image:
    """A small image whose layers differ by ``seed`` (so tests do not share blobs)."""
    import random

    rng = random.Random(seed)
    return Image(
        layers=[[file(f"f{i}.bin", rng.randbytes(size))] for i in range(layers)],
        config_extra={"config": {"Env": [f"SEED={seed}"]}},
    )


@pytest.fixture
def pushed_image(plain_registry: DistributionRegistry, repo: str, push: Callable[..., Pushed]) -> Pushed:
    return push(small_image(repo), repo, "v1")


@pytest.fixture
def no_user_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No credentials, proxies or docker config of the machine's user reach ctrpy."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    for name in ("DOCKER_CONFIG", "REGISTRY_AUTH_FILE", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
                 "http_proxy", "https_proxy", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
