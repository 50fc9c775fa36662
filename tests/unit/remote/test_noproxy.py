"""Proxies from the environment with Go's NO_PROXY rules (no network)."""

from __future__ import annotations

import pytest

from ctrpy.remote.proxies import NoProxy, proxy_for

ENV = {"HTTPS_PROXY": "http://proxy.example:3128", "HTTP_PROXY": "http://plain-proxy.example:3128"}


def test_https_url_uses_https_proxy() -> None:
    assert proxy_for("https://registry.example.com/v2/", ENV) == "http://proxy.example:3128"


def test_http_url_uses_http_proxy() -> None:
    assert proxy_for("http://registry.example.com/v2/", ENV) == "http://plain-proxy.example:3128"


def test_no_proxy_variable_no_proxy() -> None:
    assert proxy_for("https://registry.example.com/v2/", {}) is None


def test_lower_case_variables_work() -> None:
    env = {"https_proxy": "http://lower:1", "no_proxy": "skip.example"}
    assert proxy_for("https://registry.example.com/", env) == "http://lower:1"
    assert proxy_for("https://skip.example/", env) is None


def test_upper_case_wins_over_lower_case() -> None:
    env = {"HTTPS_PROXY": "http://upper:1", "https_proxy": "http://lower:1"}
    assert proxy_for("https://r.example/", env) == "http://upper:1"


def test_proxy_without_scheme_is_http() -> None:
    assert proxy_for("https://r.example/", {"HTTPS_PROXY": "proxy.example:8080"}) == "http://proxy.example:8080"


def test_other_schemes_never_proxied() -> None:
    assert proxy_for("ftp://r.example/", {"HTTPS_PROXY": "http://p:1", "HTTP_PROXY": "http://p:1"}) is None


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "127.3.4.5", "[::1]"])
def test_loopback_never_proxied(host: str) -> None:
    assert proxy_for(f"http://{host}:5000/v2/", ENV) is None


def test_star_disables_every_proxy() -> None:
    assert proxy_for("https://anything.example/", {**ENV, "NO_PROXY": "*"}) is None


@pytest.mark.parametrize(
    ("rule", "host", "bypass"),
    [
        # domain names: the name and its subdomains; a leading "." or "*." only subdomains
        ("example.com", "example.com", True),
        ("example.com", "registry.example.com", True),
        ("example.com", "notexample.com", False),
        (".example.com", "example.com", False),
        (".example.com", "registry.example.com", True),
        ("*.example.com", "example.com", False),
        ("*.example.com", "a.b.example.com", True),
        ("EXAMPLE.COM", "registry.example.com", True),
        (" example.com ", "example.com", True),
        ("other.org", "example.com", False),
        # IP addresses and CIDR ranges
        ("10.0.0.0/8", "10.1.2.3", True),
        ("10.0.0.0/8", "11.1.2.3", False),
        ("192.168.1.0/24", "192.168.1.77", True),
        ("192.168.1.5", "192.168.1.5", True),
        ("192.168.1.5", "192.168.1.6", False),
        ("2001:db8::/32", "2001:db8::1", True),
        ("2001:db8::/32", "2001:db9::1", False),
        ("[2001:db8::1]", "2001:db8::1", True),
    ],
)
def test_rule_bypasses_exactly_the_hosts_it_matches(rule: str, host: str, bypass: bool) -> None:
    assert NoProxy(rule).bypass(host, "443") is bypass


def test_domain_rule_with_port_matches_only_that_port() -> None:
    np = NoProxy("example.com:5000")
    assert np.bypass("example.com", "5000")
    assert not np.bypass("example.com", "443")
    assert np.bypass("r.example.com", "5000")


def test_ip_rule_with_port() -> None:
    np = NoProxy("10.0.0.1:5000")
    assert np.bypass("10.0.0.1", "5000")
    assert not np.bypass("10.0.0.1", "5001")


def test_ip_rules_do_not_match_names_and_domains_do_not_match_ips() -> None:
    np = NoProxy("10.0.0.0/8,example.com")
    assert not np.bypass("ten.example.org", "443")
    assert not np.bypass("192.0.2.1", "443")


def test_several_rules_and_empty_entries() -> None:
    np = NoProxy(",foo.com,, 10.0.0.0/8 ,bar.org:8080,")
    assert np.bypass("x.foo.com", "443")
    assert np.bypass("10.9.9.9", "443")
    assert np.bypass("bar.org", "8080")
    assert not np.bypass("bar.org", "443")
    assert not np.bypass("baz.net", "443")


def test_invalid_cidr_is_ignored() -> None:
    np = NoProxy("10.0.0.0/99,foo.com")
    assert not np.bypass("10.0.0.1", "443")
    assert np.bypass("foo.com", "443")


def test_no_proxy_applies_with_default_ports() -> None:
    env = {**ENV, "NO_PROXY": "r.example:443"}
    assert proxy_for("https://r.example/v2/", env) is None
    assert proxy_for("https://r.example:5000/v2/", env) == "http://proxy.example:3128"
    env = {**ENV, "NO_PROXY": "r.example:80"}
    assert proxy_for("http://r.example/v2/", env) is None
