"""hosts.toml against real endpoints: mirrors, capabilities, override_path, headers."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from ctrpy.oci import Descriptor
from ctrpy.remote import Registry, RemoteNotFound
from tests.registry.distribution import DistributionRegistry
from tests.registry.fakes import FileSink
from tests.registry.faults import FaultProxy, Rule
from tests.registry.images import Pushed

pytestmark = pytest.mark.interop

Client = Callable[..., Registry]


def hosts_dir(tmp_path: Path, host: str, text: str) -> str:
    d = tmp_path / "hosts.d"
    (d / host).mkdir(parents=True, exist_ok=True)
    (d / host / "hosts.toml").write_text(text)
    return str(d)


def mirrored(server: FaultProxy, mirror: FaultProxy, capabilities: str | None = None) -> str:
    """hosts.toml text: ``server`` is the server, ``mirror`` a mirror (with ``capabilities``)."""
    text = f'server = "http://{server.host}"\n[host."http://{mirror.host}"]\n'
    return text + (f"  capabilities = {capabilities}\n" if capabilities else "")


def fetch_first_layer(reg: Registry, image: Pushed, tmp_path: Path) -> Descriptor:
    layer = image.layer_descriptors()[0]
    sink = FileSink(tmp_path / "l", layer.size)
    reg.fetch_blob(layer, sink)
    sink.commit(layer.digest)
    return layer


@pytest.fixture
def image_client(client: Client, pushed_image: Pushed, tmp_path: Path) -> Client:
    """``image_client(hosts_toml, ref=pushed_image.ref, **options)``: a client for the pushed
    image, with ``hosts_toml`` as the hosts.toml of its registry."""

    def make(text: str, ref: str | None = None, **options: object) -> Registry:
        d = hosts_dir(tmp_path, pushed_image.registry_host, text)
        return client(ref or pushed_image.ref, hosts_dir=d, **options)

    return make


@pytest.fixture
def server_proxy(plain_registry: DistributionRegistry) -> Iterator[FaultProxy]:
    """A pass-through proxy standing for the server, to count what reaches it."""
    with FaultProxy(plain_registry.host) as p:
        yield p


def test_mirror_is_tried_first_then_the_server(
    image_client: Client, pushed_image: Pushed, fault_proxy: FaultProxy, server_proxy: FaultProxy
) -> None:
    fault_proxy.add(Rule(status=404, headers={"Content-Type": "application/json"},
                         body=b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"not in the mirror"}]}'))
    reg = image_client(mirrored(server_proxy, fault_proxy, '["pull", "resolve"]'))
    desc = reg.resolve()
    assert desc.digest == pushed_image.digest
    first = fault_proxy.requests[0]
    assert (first.method, first.path) == ("HEAD", f"/v2/{pushed_image.repo}/manifests/v1")
    assert server_proxy.count("HEAD", "/manifests/v1") == 1
    # the mirror was told which registry the image comes from
    assert parse_qs(fault_proxy.requests[0].query) == {"ns": [pushed_image.registry_host]}


def test_a_working_mirror_serves_everything(
    image_client: Client, pushed_image: Pushed, fault_proxy: FaultProxy, server_proxy: FaultProxy, tmp_path: Path
) -> None:
    reg = image_client(mirrored(server_proxy, fault_proxy))
    desc = reg.resolve()
    reg.fetch_manifest(desc)
    fetch_first_layer(reg, pushed_image, tmp_path)
    assert fault_proxy.count() >= 2
    assert server_proxy.count() == 0


def test_a_pull_only_mirror_is_not_asked_to_resolve_a_tag(
    image_client: Client, pushed_image: Pushed, fault_proxy: FaultProxy, server_proxy: FaultProxy, tmp_path: Path
) -> None:
    reg = image_client(mirrored(server_proxy, fault_proxy, '["pull"]'))
    desc = reg.resolve()
    assert fault_proxy.count(path="/manifests/v1") == 0
    assert server_proxy.count("HEAD", "/manifests/v1") == 1
    # content by digest is fine to take from a pull mirror
    reg.fetch_manifest(desc)
    layer = fetch_first_layer(reg, pushed_image, tmp_path)
    assert fault_proxy.count("GET", f"/manifests/{desc.digest}") == 1
    assert fault_proxy.count("GET", f"/blobs/{layer.digest}") == 1
    assert server_proxy.count("GET") == 0


def test_a_pull_only_mirror_resolves_a_digest(
    image_client: Client, pushed_image: Pushed, fault_proxy: FaultProxy, server_proxy: FaultProxy
) -> None:
    by_digest = f"{pushed_image.registry_host}/{pushed_image.repo}@{pushed_image.digest}"
    reg = image_client(mirrored(server_proxy, fault_proxy, '["pull"]'), by_digest)
    assert reg.resolve().digest == pushed_image.digest
    assert fault_proxy.count("HEAD", f"/manifests/{pushed_image.digest}") == 1
    assert server_proxy.count() == 0


def test_pushes_never_go_to_a_mirror_without_push(
    client: Client, plain_registry: DistributionRegistry, repo: str, fault_proxy: FaultProxy,
    server_proxy: FaultProxy, tmp_path: Path
) -> None:
    d = hosts_dir(tmp_path, plain_registry.host, mirrored(server_proxy, fault_proxy, '["pull", "resolve"]'))
    reg = client(plain_registry.ref(repo), hosts_dir=d)
    data = b"pushed through the server only"
    import hashlib

    desc = Descriptor("application/octet-stream", "sha256:" + hashlib.sha256(data).hexdigest(), len(data))
    assert not reg.blob_exists(desc)
    reg.upload_blob(desc, lambda: io.BytesIO(data))
    assert reg.blob_exists(desc)
    assert fault_proxy.count() == 0
    assert server_proxy.count("POST") == 1 and server_proxy.count("PUT") == 1


def test_no_host_with_the_capability_is_a_clear_not_found(image_client: Client, fault_proxy: FaultProxy) -> None:
    reg = image_client(f'server = "http://{fault_proxy.host}"\ncapabilities = ["pull"]\n')
    with pytest.raises(RemoteNotFound, match="may resolve"):
        reg.resolve()
    assert fault_proxy.count() == 0


def test_override_path_puts_the_api_root_where_the_url_says(
    image_client: Client, pushed_image: Pushed, plain_registry: DistributionRegistry
) -> None:
    with FaultProxy(plain_registry.host, path_prefix="/custom/api", upstream_prefix="/v2") as p:
        reg = image_client(f'server = "http://{p.host}/custom/api"\noverride_path = true\n')
        desc = reg.resolve()
        assert reg.fetch_manifest(desc) == pushed_image.manifest.data
        assert p.count() >= 1
        assert all(r.rule != "no-prefix" for r in p.requests)


def test_a_mirror_url_path_gets_v2_appended(
    image_client: Client, pushed_image: Pushed, plain_registry: DistributionRegistry
) -> None:
    with FaultProxy(plain_registry.host, path_prefix="/mirror-root") as p:
        reg = image_client(f'[host."http://{p.host}/mirror-root"]\n')
        assert reg.resolve().digest == pushed_image.digest
        assert p.count("HEAD", "/v2/.*/manifests/v1") == 1
        assert all(r.rule != "no-prefix" for r in p.requests)


def test_headers_from_hosts_toml_and_options_are_sent(
    image_client: Client, pushed_image: Pushed, fault_proxy: FaultProxy
) -> None:
    hosts_toml = f'server = "http://{fault_proxy.host}"\n[header]\n  x-from-file = "file-value"\n  x-list = ["a", "b"]\n'
    reg = image_client(hosts_toml, headers=(("X-From-Flag", "flag-value"),))
    reg.resolve()
    r = fault_proxy.requests[0]
    assert r.header("x-from-file") == "file-value"
    assert r.header("x-list") == "a, b"
    assert r.header("x-from-flag") == "flag-value"
    assert r.header("user-agent", ).startswith("ctrpy/")  # type: ignore[union-attr]


def test_the_default_dir_mirrors_every_registry(
    client: Client, pushed_image: Pushed, fault_proxy: FaultProxy, tmp_path: Path
) -> None:
    d = hosts_dir(tmp_path, "_default", f'[host."http://{fault_proxy.host}"]\n  capabilities = ["pull", "resolve"]\n')
    reg = client(pushed_image.ref, hosts_dir=d)
    assert reg.resolve().digest == pushed_image.digest
    assert fault_proxy.count("HEAD") == 1
