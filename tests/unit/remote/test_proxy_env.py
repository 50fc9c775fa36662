"""Going through an HTTP proxy named by the environment (forward and CONNECT)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from ctrpy.remote import Registry
from tests.registry.certs import CertPair
from tests.registry.distribution import DistributionRegistry
from tests.registry.fixtures import small_image
from tests.registry.forward_proxy import ForwardProxy
from tests.registry.images import Pushed

pytestmark = pytest.mark.interop

Client = Callable[..., Registry]
Push = Callable[..., Pushed]

# clients never proxy loopback (Go's rule), so the registry goes by a name only the proxy knows


@pytest.fixture
def proxy() -> Iterator[ForwardProxy]:
    with ForwardProxy({"registry.test": "127.0.0.1"}) as p:
        yield p


def test_plain_http_through_a_forward_proxy(
    client: Client, env: dict[str, str], proxy: ForwardProxy, pushed_image: Pushed, plain_registry: DistributionRegistry
) -> None:
    ref = f"registry.test:{plain_registry.port}/{pushed_image.repo}:v1"
    reg = client(ref, plain_http=True, env_override={**env, "HTTP_PROXY": proxy.url})
    desc = reg.resolve()
    assert desc.digest == pushed_image.digest
    assert reg.fetch_manifest(desc) == pushed_image.manifest.data
    targets = [r.target for r in proxy.requests]
    assert targets[0] == f"http://registry.test:{plain_registry.port}/v2/{pushed_image.repo}/manifests/v1"
    assert len(targets) == 2


def test_https_through_a_connect_tunnel(
    client: Client, env: dict[str, str], proxy: ForwardProxy, tls_registry: DistributionRegistry,
    tls_pair: CertPair, repo: str, push: Push,
) -> None:
    pushed = push(small_image(repo, layers=1), repo, registry=tls_registry)
    ref = f"registry.test:{tls_registry.port}/{repo}:v1"
    reg = client(ref, tls_ca_cert=(str(tls_pair.cert),), env_override={**env, "https_proxy": proxy.url})
    assert reg.resolve().digest == pushed.digest
    assert proxy.requests[0].method == "CONNECT"
    assert proxy.requests[0].target == f"registry.test:{tls_registry.port}"


def test_proxy_credentials_from_the_url(
    client: Client, env: dict[str, str], proxy: ForwardProxy, pushed_image: Pushed, plain_registry: DistributionRegistry
) -> None:
    url = proxy.url.replace("http://", "http://puser:p%40ss@")
    reg = client(f"registry.test:{plain_registry.port}/{pushed_image.repo}:v1", plain_http=True,
                 env_override={**env, "HTTP_PROXY": url})
    reg.resolve()
    import base64

    assert proxy.requests[0].proxy_auth == "Basic " + base64.b64encode(b"puser:p@ss").decode()


def test_no_proxy_sends_it_direct(
    client: Client, env: dict[str, str], proxy: ForwardProxy, pushed_image: Pushed
) -> None:
    # loopback by address is never proxied
    reg = client(pushed_image.ref, env_override={**env, "HTTP_PROXY": proxy.url, "NO_PROXY": ""})
    assert reg.resolve().digest == pushed_image.digest
    assert proxy.requests == []
