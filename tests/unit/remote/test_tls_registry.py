"""TLS against distribution with a self-signed certificate (and one requiring client certs)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from ctrpy.remote import ConfigError, ConnectionFailed, Registry, TLSVerifyError
from tests.registry.certs import CertPair, self_signed
from tests.registry.distribution import DistributionRegistry
from tests.registry.fixtures import small_image
from tests.registry.images import Pushed

pytestmark = pytest.mark.interop

Client = Callable[..., Registry]
Push = Callable[..., Pushed]


@pytest.fixture
def tls_image(tls_registry: DistributionRegistry, repo: str, push: Push) -> Pushed:
    return push(small_image(repo, layers=1), repo, registry=tls_registry)


def test_custom_ca_is_trusted(client: Client, tls_image: Pushed, tls_pair: CertPair) -> None:
    reg = client(tls_image.ref, tls_ca_cert=(str(tls_pair.cert),))
    assert reg.remote.hosts[0].scheme == "https"
    desc = reg.resolve()
    assert desc.digest == tls_image.digest
    assert reg.fetch_manifest(desc) == tls_image.manifest.data


def test_loopback_with_a_ca_is_not_downgraded_to_http(client: Client, tls_image: Pushed, tls_pair: CertPair) -> None:
    """ctr 1.6.20 sends plain HTTP here and fails; the CA says this host speaks TLS."""
    reg = client(tls_image.ref, tls_ca_cert=(str(tls_pair.cert),))
    assert reg.remote.hosts[0].origin.startswith("https://127.0.0.1:")
    assert reg.resolve().digest == tls_image.digest


def test_ca_from_hosts_toml(client: Client, tls_image: Pushed, tls_pair: CertPair, tmp_path: Path) -> None:
    d = tmp_path / "hosts" / tls_image.registry_host
    d.mkdir(parents=True)
    (d / "ca.pem").write_bytes(tls_pair.cert.read_bytes())
    (d / "hosts.toml").write_text('ca = "ca.pem"\n')
    reg = client(tls_image.ref, hosts_dir=str(tmp_path / "hosts"))
    assert reg.resolve().digest == tls_image.digest


def test_docker_cert_dir_in_hosts_dir(client: Client, tls_image: Pushed, tls_pair: CertPair, tmp_path: Path) -> None:
    d = tmp_path / "certs.d" / tls_image.registry_host
    d.mkdir(parents=True)
    (d / "ca.crt").write_bytes(tls_pair.cert.read_bytes())
    reg = client(tls_image.ref, hosts_dir=str(tmp_path / "certs.d"))
    assert reg.resolve().digest == tls_image.digest


def test_unknown_ca_is_refused_clearly(client: Client, tls_image: Pushed, tmp_path: Path) -> None:
    d = tmp_path / "hosts" / tls_image.registry_host
    d.mkdir(parents=True)
    (d / "hosts.toml").write_text(f'server = "https://{tls_image.registry_host}"\n')
    reg = client(tls_image.ref, hosts_dir=str(tmp_path / "hosts"))
    with pytest.raises(TLSVerifyError) as e:
        reg.resolve()
    msg = str(e.value)
    assert "certificate verify failed: self-signed certificate" in msg
    assert tls_image.registry_host in msg
    assert e.value.topic == "tls-verify"  # the CLI's hint: give its CA, or skip verification


def test_wrong_ca_is_refused_clearly(client: Client, tls_image: Pushed, tmp_path: Path) -> None:
    other = self_signed(tmp_path, "other-ca")
    reg = client(tls_image.ref, tls_ca_cert=(str(other.cert),))
    with pytest.raises(TLSVerifyError, match="certificate verify failed"):
        reg.resolve()


def test_tls_errors_are_not_retried(client: Client, clock: object, tls_image: Pushed, tmp_path: Path) -> None:
    other = self_signed(tmp_path, "other-ca")
    reg = client(tls_image.ref, tls_ca_cert=(str(other.cert),))
    with pytest.raises(TLSVerifyError):
        reg.resolve()
    assert clock.sleeps == []  # type: ignore[attr-defined]


def test_skip_verify(client: Client, tls_image: Pushed) -> None:
    reg = client(tls_image.ref, skip_verify=True)
    assert reg.remote.hosts[0].scheme == "https"
    assert reg.resolve().digest == tls_image.digest


def test_plain_http_to_a_tls_registry_fails_clearly(client: Client, tls_image: Pushed) -> None:
    reg = client(tls_image.ref, plain_http=True, max_retries=0)
    with pytest.raises(ConnectionFailed) as e:
        reg.resolve()
    # Go answers plain HTTP on a TLS port with a 400 "Client sent an HTTP request to an HTTPS
    # server": ctr 1.6 stops there; we say what to do
    msg = str(e.value)
    assert f"{tls_image.registry_host} speaks HTTPS, not plain HTTP" in msg
    assert e.value.topic == "https"  # the CLI's hint: drop --plain-http


def test_loopback_tls_registry_without_tls_options_hints_at_them(client: Client, tls_image: Pushed) -> None:
    reg = client(tls_image.ref)
    assert reg.remote.hosts[0].scheme == "http"  # as ctr 1.6: loopback, nothing said about TLS
    with pytest.raises(ConnectionFailed, match="speaks HTTPS, not plain HTTP") as e:
        reg.resolve()
    assert e.value.topic == "https"


def test_a_missing_ca_file_is_a_config_error(client: Client, tls_image: Pushed, tmp_path: Path) -> None:
    reg = client(tls_image.ref, tls_ca_cert=(str(tmp_path / "nope.pem"),))
    with pytest.raises(ConfigError, match=r"nope\.pem does not exist"):
        reg.resolve()


def test_client_certificate_accepted(client: Client, mtls_registry: DistributionRegistry, tls_pair: CertPair,
                                     client_pair: CertPair, repo: str) -> None:
    reg = client(mtls_registry.ref(repo), tls_ca_cert=(str(tls_pair.cert),), tls_cert=str(client_pair.cert),
                 tls_key=str(client_pair.key))
    from ctrpy.remote import RemoteNotFound

    with pytest.raises(RemoteNotFound):  # the TLS handshake worked: the registry says "unknown"
        reg.resolve()


def test_client_certificate_missing_is_refused(client: Client, mtls_registry: DistributionRegistry, tls_pair: CertPair,
                                               repo: str) -> None:
    reg = client(mtls_registry.ref(repo), tls_ca_cert=(str(tls_pair.cert),), max_retries=0)
    with pytest.raises(ConnectionFailed) as e:
        reg.resolve()
    assert mtls_registry.host in str(e.value)
    assert e.value.topic == "client-cert"  # the CLI says: --tlscert and --tlskey
    assert "_ssl.c" not in str(e.value)


def test_client_certificate_from_hosts_toml(client: Client, mtls_registry: DistributionRegistry, tls_pair: CertPair,
                                            client_pair: CertPair, repo: str, tmp_path: Path) -> None:
    d = tmp_path / "hosts" / mtls_registry.host
    d.mkdir(parents=True)
    (d / "hosts.toml").write_text(
        f'ca = "{tls_pair.cert}"\nclient = [["{client_pair.cert}", "{client_pair.key}"]]\n'
    )
    reg = client(mtls_registry.ref(repo), hosts_dir=str(tmp_path / "hosts"))
    from ctrpy.remote import RemoteNotFound

    with pytest.raises(RemoteNotFound):
        reg.resolve()
