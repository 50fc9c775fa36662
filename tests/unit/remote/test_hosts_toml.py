"""hosts.toml, defaults, and when loopback gets plain HTTP (no network)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctrpy.remote.errors import ConfigError
from ctrpy.remote.hosts import (
    Capability,
    RegistryHost,
    TLSConfig,
    host_dirs,
    is_loopback,
    load_hosts,
    parse_hosts_toml,
    split_host_port,
)
from ctrpy.remote.options import RemoteOptions


def write(d: Path, host: str, text: str) -> Path:
    (d / host).mkdir(parents=True, exist_ok=True)
    f = d / host / "hosts.toml"
    f.write_text(text)
    return f


# -- defaults --------------------------------------------------------------------------------


def test_docker_io_is_served_by_registry_1() -> None:
    [h] = load_hosts("docker.io", RemoteOptions())
    assert (h.scheme, h.host, h.path) == ("https", "registry-1.docker.io", "/v2")
    assert h.capabilities == Capability.ALL
    assert not h.mirror


def test_other_hosts_are_https_by_default() -> None:
    [h] = load_hosts("registry.example.com:5000", RemoteOptions())
    assert (h.scheme, h.host) == ("https", "registry.example.com:5000")


@pytest.mark.parametrize("host", ["127.0.0.1:5000", "127.9.9.9:80", "localhost:5000", "localhost", "[::1]:5000"])
def test_loopback_gets_plain_http_like_ctr(host: str) -> None:
    [h] = load_hosts(host, RemoteOptions())
    assert h.scheme == "http"


@pytest.mark.parametrize(
    "opts",
    [
        RemoteOptions(tls_ca_cert=("/ca.pem",)),
        RemoteOptions(tls_cert="/c.pem", tls_key="/k.pem"),
        RemoteOptions(skip_verify=True),
    ],
)
def test_loopback_with_tls_flags_is_not_downgraded(opts: RemoteOptions) -> None:
    [h] = load_hosts("127.0.0.1:5000", opts)
    assert h.scheme == "https"


def test_loopback_with_tls_in_hosts_toml_is_not_downgraded(tmp_path: Path) -> None:
    write(tmp_path, "127.0.0.1:5000", 'ca = "ca.pem"\n')
    [h] = load_hosts("127.0.0.1:5000", RemoteOptions(hosts_dir=str(tmp_path)))
    assert h.scheme == "https"
    assert h.tls.ca_certs == (str(tmp_path / "127.0.0.1:5000" / "ca.pem"),)


def test_loopback_skip_verify_in_hosts_toml_is_tls(tmp_path: Path) -> None:
    write(tmp_path, "localhost:5000", "skip_verify = true\n")
    [h] = load_hosts("localhost:5000", RemoteOptions(hosts_dir=str(tmp_path)))
    assert h.scheme == "https"
    assert h.tls.skip_verify


def test_plain_http_flag_forces_http() -> None:
    [h] = load_hosts("registry.example.com", RemoteOptions(plain_http=True))
    assert h.scheme == "http"
    [h] = load_hosts("127.0.0.1:5000", RemoteOptions(plain_http=True, tls_ca_cert=("/ca",)))
    assert h.scheme == "http"


def test_plain_http_keeps_an_explicit_https_in_hosts_toml(tmp_path: Path) -> None:
    write(tmp_path, "r.example", 'server = "https://r.example"\n')
    [h] = load_hosts("r.example", RemoteOptions(hosts_dir=str(tmp_path), plain_http=True))
    assert h.scheme == "https"


def test_plain_http_applies_to_a_server_without_scheme(tmp_path: Path) -> None:
    write(tmp_path, "r.example", 'server = "r.example:8080"\n')
    [h] = load_hosts("r.example", RemoteOptions(hosts_dir=str(tmp_path), plain_http=True))
    assert (h.scheme, h.host) == ("http", "r.example:8080")


def test_flags_tls_reaches_every_host() -> None:
    opts = RemoteOptions(tls_ca_cert=("/a.pem", "/b.pem"), tls_cert="/c.pem", tls_key="/k.pem", skip_verify=True)
    [h] = load_hosts("r.example", opts)
    assert h.tls == TLSConfig(("/a.pem", "/b.pem"), (("/c.pem", "/k.pem"),), True)


def test_option_headers_are_sent_to_every_host() -> None:
    [h] = load_hosts("r.example", RemoteOptions(headers=(("X-A", "1"), ("X-A", "2"))))
    assert h.headers == (("X-A", "1"), ("X-A", "2"))


# -- the file --------------------------------------------------------------------------------


def test_mirrors_come_first_in_file_order_then_the_server(tmp_path: Path) -> None:
    write(
        tmp_path,
        "docker.io",
        """
server = "https://registry-1.docker.io"

[host."https://mirror-b.example"]
  capabilities = ["pull", "resolve"]

[host."http://mirror-a.example:5000"]
  capabilities = ["pull"]
""",
    )
    hosts = load_hosts("docker.io", RemoteOptions(hosts_dir=str(tmp_path)))
    assert [(h.scheme, h.host) for h in hosts] == [
        ("https", "mirror-b.example"),
        ("http", "mirror-a.example:5000"),
        ("https", "registry-1.docker.io"),
    ]
    assert hosts[0].capabilities == Capability.PULL | Capability.RESOLVE
    assert hosts[1].capabilities == Capability.PULL
    assert hosts[2].capabilities == Capability.ALL
    assert [h.mirror for h in hosts] == [True, True, False]


def mirror(url: str) -> str:
    """A hosts.toml naming one mirror."""
    return f'[host."{url}"]\n'


@pytest.mark.parametrize(
    ("files", "host", "urls"),
    [
        pytest.param({"r.example": mirror("https://m")}, "r.example", ["https://m", "https://r.example"],
                     id="server-defaults-to-the-host"),
        pytest.param({"docker.io": mirror("https://m")}, "docker.io", ["https://m", "https://registry-1.docker.io"],
                     id="docker-io-server-defaults-to-registry-1"),
        pytest.param({"_default": mirror("https://everything")}, "r.example", ["https://everything", "https://r.example"],
                     id="default-dir-when-the-host-has-none"),
        pytest.param({"_default": mirror("https://default"), "r.example": mirror("https://own")}, "r.example",
                     ["https://own", "https://r.example"], id="host-dir-wins-over-default"),
        pytest.param({"r.example_5000_": mirror("https://m")}, "r.example:5000", ["https://m", "https://r.example:5000"],
                     id="host-with-port-in-the-underscore-dir"),
        pytest.param({}, "r.example", ["https://r.example"], id="no-dir-means-defaults"),
    ],
)
def test_the_hosts_dir_gives_the_mirrors_then_the_server(
    tmp_path: Path, files: dict[str, str], host: str, urls: list[str]
) -> None:
    for name, text in files.items():
        write(tmp_path, name, text)
    hosts = load_hosts(host, RemoteOptions(hosts_dir=str(tmp_path)))
    assert [f"{h.scheme}://{h.host}" for h in hosts] == urls


def test_a_host_with_a_port_is_looked_up_as_given_then_with_underscores_then_default(tmp_path: Path) -> None:
    assert host_dirs(tmp_path, "r.example:5000") == [tmp_path / "r.example:5000", tmp_path / "r.example_5000_", tmp_path / "_default"]


def test_v2_is_appended_unless_override_path(tmp_path: Path) -> None:
    write(
        tmp_path,
        "r.example",
        """
[host."https://a.example/some/prefix"]
[host."https://b.example/some/v2"]
[host."https://c.example/custom/api"]
  override_path = true
[host."https://d.example"]
  override_path = true
""",
    )
    hosts = load_hosts("r.example", RemoteOptions(hosts_dir=str(tmp_path)))
    assert [h.path for h in hosts] == ["/some/prefix/v2", "/some/v2", "/custom/api", "/", "/v2"]


def test_url_building_with_override_path() -> None:
    h = RegistryHost("https", "c.example", "/custom/api")
    assert h.url("lib/app", "manifests", "v1") == "https://c.example/custom/api/lib/app/manifests/v1"
    assert h.url("app", "blobs", "uploads", "") == "https://c.example/custom/api/app/blobs/uploads/"
    assert RegistryHost("http", "h:1").url() == "http://h:1/v2/"


def test_ca_as_string_or_list_relative_to_the_file(tmp_path: Path) -> None:
    write(
        tmp_path,
        "r.example",
        """
ca = ["ca1.pem", "/abs/ca2.pem"]
[host."https://m.example"]
  ca = "mirror-ca.pem"
""",
    )
    m, s = load_hosts("r.example", RemoteOptions(hosts_dir=str(tmp_path)))
    base = tmp_path / "r.example"
    assert m.tls.ca_certs == (str(base / "mirror-ca.pem"),)
    assert s.tls.ca_certs == (str(base / "ca1.pem"), "/abs/ca2.pem")


def test_flag_cas_come_before_the_file_cas(tmp_path: Path) -> None:
    write(tmp_path, "r.example", 'ca = "file-ca.pem"\n')
    [h] = load_hosts("r.example", RemoteOptions(hosts_dir=str(tmp_path), tls_ca_cert=("/flag.pem",)))
    assert h.tls.ca_certs == ("/flag.pem", str(tmp_path / "r.example" / "file-ca.pem"))


def test_client_forms(tmp_path: Path) -> None:
    write(
        tmp_path,
        "r.example",
        """
[host."https://a.example"]
  client = "both.pem"
[host."https://b.example"]
  client = [["c.pem", "k.pem"], "other.pem"]
""",
    )
    a, b, _ = load_hosts("r.example", RemoteOptions(hosts_dir=str(tmp_path)))
    base = tmp_path / "r.example"
    assert a.tls.client_pairs == ((str(base / "both.pem"), ""),)
    assert b.tls.client_pairs == ((str(base / "c.pem"), str(base / "k.pem")), (str(base / "other.pem"), ""))


def test_host_client_replaces_the_flag_client(tmp_path: Path) -> None:
    write(tmp_path, "r.example", 'client = [["h.pem", "h.key"]]\n[host."https://m.example"]\n')
    m, s = load_hosts("r.example", RemoteOptions(hosts_dir=str(tmp_path), tls_cert="/f.pem", tls_key="/f.key"))
    assert m.tls.client_pairs == (("/f.pem", "/f.key"),)
    assert s.tls.client_pairs == ((str(tmp_path / "r.example" / "h.pem"), str(tmp_path / "r.example" / "h.key")),)


def test_skip_verify_per_host_overrides_the_flag(tmp_path: Path) -> None:
    write(tmp_path, "r.example", 'skip_verify = false\n[host."https://m.example"]\n  skip_verify = true\n')
    m, s = load_hosts("r.example", RemoteOptions(hosts_dir=str(tmp_path), skip_verify=True))
    assert m.tls.skip_verify is True
    assert s.tls.skip_verify is False


def test_headers_string_and_list(tmp_path: Path) -> None:
    write(
        tmp_path,
        "r.example",
        """
[header]
  x-one = "1"
  x-many = ["a", "b"]
[host."https://m.example".header]
  x-mirror = "m"
""",
    )
    m, s = load_hosts("r.example", RemoteOptions(hosts_dir=str(tmp_path), headers=(("X-Flag", "f"),)))
    assert m.headers == (("X-Flag", "f"), ("x-mirror", "m"))
    assert s.headers == (("X-Flag", "f"), ("x-one", "1"), ("x-many", "a"), ("x-many", "b"))


def test_docker_style_cert_dir_without_hosts_toml(tmp_path: Path) -> None:
    d = tmp_path / "r.example"
    d.mkdir()
    (d / "ca.crt").write_text("x")
    (d / "client.cert").write_text("x")
    (d / "client.key").write_text("x")
    (d / "lonely.cert").write_text("x")
    [h] = load_hosts("r.example", RemoteOptions(hosts_dir=str(tmp_path)))
    assert h.tls.ca_certs == (str(d / "ca.crt"),)
    assert h.tls.client_pairs == ((str(d / "client.cert"), str(d / "client.key")), (str(d / "lonely.cert"), ""))


def test_a_mirror_is_flagged_for_the_ns_parameter(tmp_path: Path) -> None:
    write(tmp_path, "docker.io", 'server = "https://registry-1.docker.io"\n[host."https://m.example"]\n')
    m, s = load_hosts("docker.io", RemoteOptions(hosts_dir=str(tmp_path)))
    assert m.mirror and not s.mirror


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("this is = = not toml", "hosts.toml"),
        ('capabilities = ["pull", "fly"]', "unknown capability 'fly'"),
        ("capabilities = 3", "capabilities must be"),
        ("ca = 3", "ca must be"),
        ("client = [[1, 2]]", "invalid client entry"),
        ("client = 5", "client must be"),
        ('skip_verify = "yes"', "skip_verify must be true or false"),
        ("override_path = 1", "override_path must be"),
        ("header = 1", "header must be a table"),
        ("[header]\nx = 1", "header 'x'"),
        ("server = 5", "server must be a string"),
        ('server = "ftp://r.example"', "only http:// and https://"),
        ('[host."https://"]', "has no host"),
        ("host = 3", "host must be a table"),
    ],
)
def test_bad_files_are_config_errors_naming_the_problem(tmp_path: Path, text: str, message: str) -> None:
    f = write(tmp_path, "r.example", text + "\n")
    with pytest.raises(ConfigError) as e:
        load_hosts("r.example", RemoteOptions(hosts_dir=str(tmp_path)))
    assert message in str(e.value)
    assert str(f) in str(e.value)


def test_parse_hosts_toml_returns_the_server_last() -> None:
    entries = parse_hosts_toml('server = "https://s.example"\n[host."https://m.example"]\n', "/base")
    assert [e.host for e in entries] == ["m.example", "s.example"]
    assert [e.scheme for e in entries] == ["https", "https"]


# -- helpers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "parts"),
    [
        ("h", ("h", "")),
        ("h:5000", ("h", "5000")),
        ("[::1]:5000", ("::1", "5000")),
        ("[::1]", ("::1", "")),
        ("::1", ("::1", "")),
    ],
)
def test_split_host_port(host: str, parts: tuple[str, str]) -> None:
    assert split_host_port(host) == parts


@pytest.mark.parametrize(
    ("host", "loop"),
    [
        ("localhost", True),
        ("LOCALHOST:5000", True),
        ("127.0.0.1", True),
        ("127.255.0.1:80", True),
        ("[::1]:5000", True),
        ("::1", True),
        ("10.0.0.1", False),
        ("registry.example.com", False),
        ("localhost.example.com", False),
        ("128.0.0.1", False),
    ],
)
def test_is_loopback(host: str, loop: bool) -> None:
    assert is_loopback(host) is loop
