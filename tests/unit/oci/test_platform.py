"""Platforms: parsing ``os/arch[/variant]``, normalising like containerd, strict matching."""

from __future__ import annotations

import platform as stdplatform

import pytest

from ctrpy.errors import InvalidArchive, InvalidArgument
from ctrpy.oci import Matcher, Platform
from tests.helpers import raises_naming

# containerd's normalizeArch for the machines the tests may run on
HOST_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
    stdplatform.machine().lower()
)
needs_known_host = pytest.mark.skipif(HOST_ARCH is None, reason="host architecture not amd64/arm64")


def P(os_: str, arch: str, variant: str = "") -> Platform:
    return Platform(os_, arch, variant)


# --------------------------------------------------------------------------- parse
@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("linux/amd64", P("linux", "amd64")),
        ("linux/arm64", P("linux", "arm64")),
        ("linux/arm64/v8", P("linux", "arm64")),
        ("linux/arm64/8", P("linux", "arm64")),
        ("linux/arm", P("linux", "arm", "v7")),
        ("linux/arm/7", P("linux", "arm", "v7")),
        ("linux/arm/v7", P("linux", "arm", "v7")),
        ("linux/arm/6", P("linux", "arm", "v6")),
        ("linux/arm/v6", P("linux", "arm", "v6")),
        ("linux/arm/5", P("linux", "arm", "v5")),
        ("linux/x86_64", P("linux", "amd64")),
        ("linux/x86-64", P("linux", "amd64")),
        ("linux/amd64/v1", P("linux", "amd64")),
        ("linux/amd64/v3", P("linux", "amd64", "v3")),
        ("linux/aarch64", P("linux", "arm64")),
        ("linux/i386", P("linux", "386")),
        ("linux/armhf", P("linux", "arm", "v7")),
        ("Linux/AMD64", P("linux", "amd64")),
        ("windows/amd64", P("windows", "amd64")),
        ("linux/s390x", P("linux", "s390x")),
        ("linux/ppc64le", P("linux", "ppc64le")),
        ("linux/riscv64", P("linux", "riscv64")),
        ("arm64", P("linux", "arm64")),
        ("amd64", P("linux", "amd64")),
        ("aarch64", P("linux", "arm64")),
        ("arm", P("linux", "arm", "v7")),
    ],
)
def test_parse_normalises_like_containerd(spec: str, expected: Platform) -> None:
    assert Platform.parse(spec) == expected


@pytest.mark.parametrize("spec", ["linux/armel", "armel"])
def test_armel_is_arm_v6(spec: str) -> None:
    assert Platform.parse(spec) == P("linux", "arm", "v6")


@needs_known_host
def test_os_alone_means_that_os_on_the_host_architecture() -> None:
    assert Platform.parse("linux") == P("linux", HOST_ARCH or "")


@pytest.mark.parametrize(
    "spec",
    [
        "",
        " ",
        "/",
        "linux/",
        "/amd64",
        "linux//amd64",
        "linux/amd64/",
        "linux/arm/v7/extra",
        "linux/amd 64",
        "linux/amd64;rm",
        "linux/../amd64",
        "nosuchthing",
    ],
)
def test_invalid_platform_specs_are_refused(spec: str) -> None:
    with pytest.raises(InvalidArgument):
        Platform.parse(spec)


def test_unknown_single_word_error_says_so() -> None:
    with raises_naming(InvalidArgument, "pdp11"):
        Platform.parse("pdp11")


# --------------------------------------------------------------------------- forms
@pytest.mark.parametrize(
    ("p", "text"),
    [(P("linux", "amd64"), "linux/amd64"), (P("linux", "arm", "v7"), "linux/arm/v7")],
)
def test_str_is_os_arch_variant(p: Platform, text: str) -> None:
    assert str(p) == text


def test_normalized_applies_aliases_and_lowercase() -> None:
    assert Platform("Linux", "aarch64", "v8").normalized() == P("linux", "arm64")
    assert Platform("linux", "arm", "").normalized() == P("linux", "arm", "v7")


def test_json_round_trip_keeps_every_field() -> None:
    p = Platform("windows", "amd64", "", "10.0.17763.1")
    assert p.to_json() == {"architecture": "amd64", "os": "windows", "os.version": "10.0.17763.1"}
    assert Platform.from_json(p.to_json()) == p


def test_from_json_keeps_the_archive_values_unnormalised() -> None:
    assert Platform.from_json({"os": "linux", "architecture": "aarch64"}) == P("linux", "aarch64")


@pytest.mark.parametrize(
    "obj",
    [
        None,
        [],
        "linux/amd64",
        {"os": "linux"},
        {"architecture": "amd64"},
        {"os": "", "architecture": "amd64"},
        {"os": 1, "architecture": "amd64"},
        {"os": "linux", "architecture": "arm", "variant": 7},
    ],
)
def test_malformed_json_platform_is_an_invalid_archive(obj: object) -> None:
    with pytest.raises(InvalidArchive):
        Platform.from_json(obj)


@needs_known_host
def test_host_platform_is_linux_on_this_machine_architecture() -> None:
    assert Platform.host() == P("linux", HOST_ARCH or "")


def test_is_known() -> None:
    assert Platform.parse("linux/arm64").is_known()
    assert not P("linux", "pdp11").is_known()
    assert not P("beos", "amd64").is_known()


# --------------------------------------------------------------------------- matching
def test_matcher_is_strict_about_architecture() -> None:
    m = Matcher([Platform.parse("linux/arm64")])
    assert m.match(P("linux", "arm64"))
    assert not m.match(P("linux", "amd64"))
    assert not m.match(P("linux", "arm", "v7"))


def test_matcher_is_strict_about_os() -> None:
    assert not Matcher([Platform.parse("linux/amd64")]).match(P("windows", "amd64"))


def test_linux_arm_means_arm_v7() -> None:
    m = Matcher([Platform.parse("linux/arm")])
    assert m.match(P("linux", "arm", "v7"))
    assert m.match(P("linux", "arm"))  # normalised to v7
    assert not m.match(P("linux", "arm", "v6"))


def test_arm_variants_do_not_match_each_other() -> None:
    assert not Matcher([Platform.parse("linux/arm/v6")]).match(P("linux", "arm", "v7"))
    assert not Matcher([Platform.parse("linux/arm/v7")]).match(P("linux", "arm", "v6"))


def test_matcher_normalises_the_candidate() -> None:
    m = Matcher([Platform.parse("linux/arm64")])
    assert m.match(P("linux", "aarch64"))
    assert m.match(P("Linux", "ARM64", "v8"))


def test_matcher_with_several_platforms_matches_any_of_them() -> None:
    m = Matcher([Platform.parse("linux/amd64"), Platform.parse("linux/arm64")])
    assert m.match(P("linux", "amd64"))
    assert m.match(P("linux", "arm64"))
    assert not m.match(P("linux", "s390x"))


def test_all_platforms_matches_everything() -> None:
    m = Matcher(all_platforms=True)
    assert m.match(P("linux", "s390x"))
    assert m.match(P("windows", "amd64"))
    assert m.describe() == "all platforms"


def test_descriptor_without_platform_matches() -> None:
    assert Matcher([Platform.parse("linux/arm64")]).match(None)


def test_default_matcher_is_the_host() -> None:
    m = Matcher.default()
    assert m.platforms == [Platform.host()]
    assert m.match(Platform.host())


def test_from_options_without_platforms_is_the_host_default() -> None:
    assert Matcher.from_options([], False).platforms == [Platform.host()]


def test_from_options_with_platforms_uses_exactly_those() -> None:
    m = Matcher.from_options(["linux/arm64", "linux/s390x"], False)
    assert m.platforms == [P("linux", "arm64"), P("linux", "s390x")]
    assert m.describe() == "linux/arm64, linux/s390x"


def test_from_options_with_all_platforms_matches_all() -> None:
    assert Matcher.from_options([], True).all


def test_from_options_refuses_an_invalid_platform_even_with_all_platforms() -> None:
    with pytest.raises(InvalidArgument):
        Matcher.from_options(["linux//x"], True)
