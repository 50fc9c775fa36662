"""Image references, docker-style: parse, normalise, familiar form, lookup candidates."""

from __future__ import annotations

import pytest

from ctrpy.errors import InvalidArgument
from ctrpy.oci import reference
from ctrpy.oci.reference import Reference

D = "sha256:" + "0123456789abcdef" * 4


# --------------------------------------------------------------------------- parse
@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("busybox", Reference("docker.io", "library/busybox")),
        ("busybox:1.36", Reference("docker.io", "library/busybox", "1.36")),
        ("library/busybox", Reference("docker.io", "library/busybox")),
        ("me/app:v1", Reference("docker.io", "me/app", "v1")),
        ("docker.io/library/busybox:latest", Reference("docker.io", "library/busybox", "latest")),
        ("docker.io/busybox", Reference("docker.io", "library/busybox")),
        ("index.docker.io/library/busybox", Reference("docker.io", "library/busybox")),
        ("quay.io/coreos/etcd:v3.5", Reference("quay.io", "coreos/etcd", "v3.5")),
        ("localhost/app", Reference("localhost", "app")),
        ("localhost:5000/app:1", Reference("localhost:5000", "app", "1")),
        ("example.com:5000/a/b/c", Reference("example.com:5000", "a/b/c")),
        ("Registry/app", Reference("Registry", "app")),  # uppercase first part: a domain
        ("[::1]:5000/app", Reference("[::1]:5000", "app")),
        (f"busybox@{D}", Reference("docker.io", "library/busybox", "", D)),
        (f"busybox:1@{D}", Reference("docker.io", "library/busybox", "1", D)),
        ("a/b__c/d-e.f_g--h:T_a.g-1", Reference("docker.io", "a/b__c/d-e.f_g--h", "T_a.g-1")),
    ],
)
def test_parse(ref: str, expected: Reference) -> None:
    assert reference.parse(ref) == expected


@pytest.mark.parametrize(
    "ref",
    [
        "",
        " busybox",
        "busybox ",
        "BusyBox",
        "me/App",
        "busybox:",
        "busybox:-tag",
        "busybox:.tag",
        "busybox:" + "t" * 129,
        "busybox@sha256:abc",
        "busybox@sha256:" + "A" * 64,
        "busybox@" + "a" * 64,
        "a//b",
        "a/b/",
        "/a",
        "-a",
        "a..b",
        "a/b_-c",
        "bad_domain.com:x/a",
        "exa_mple.com/a",
        "docker.io/" + "a" * 250,
    ],
)
def test_invalid_references_are_refused(ref: str) -> None:
    with pytest.raises(InvalidArgument):
        reference.parse(ref)


def test_tag_of_128_characters_is_the_longest_allowed() -> None:
    assert reference.parse("busybox:" + "t" * 128).tag == "t" * 128


@pytest.mark.parametrize("ref", ["busybox:caf\u00e9", "busybox:\u0661\u0662"])
def test_non_ascii_tag_is_refused(ref: str) -> None:
    with pytest.raises(InvalidArgument):
        reference.parse(ref)


def test_name_of_255_characters_is_the_longest_allowed() -> None:
    path = "me/" + "a" * (255 - len("docker.io/me/"))
    assert reference.parse("docker.io/" + path).path == path
    with pytest.raises(InvalidArgument):
        reference.parse("docker.io/" + path + "a")


def test_reference_str_puts_the_parts_back_together() -> None:
    assert str(Reference("quay.io", "a/b", "1", D)) == f"quay.io/a/b:1@{D}"
    assert str(Reference("docker.io", "library/x")) == "docker.io/library/x"


# --------------------------------------------------------------------------- normalize
@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("busybox", "docker.io/library/busybox:latest"),
        ("busybox:1.36", "docker.io/library/busybox:1.36"),
        ("me/app", "docker.io/me/app:latest"),
        ("docker.io/library/busybox:latest", "docker.io/library/busybox:latest"),
        ("index.docker.io/busybox", "docker.io/library/busybox:latest"),
        ("quay.io/a/b", "quay.io/a/b:latest"),
        ("localhost:5000/app", "localhost:5000/app:latest"),
        (f"busybox@{D}", f"docker.io/library/busybox@{D}"),
        (f"busybox:1@{D}", f"docker.io/library/busybox:1@{D}"),
    ],
)
def test_normalize(ref: str, expected: str) -> None:
    assert reference.normalize(ref) == expected


def test_normalize_of_an_invalid_reference_raises() -> None:
    with pytest.raises(InvalidArgument):
        reference.normalize("Not Valid")


def test_try_normalize_gives_none_for_an_invalid_reference() -> None:
    assert reference.try_normalize("Not Valid") is None
    assert reference.try_normalize("busybox") == "docker.io/library/busybox:latest"


# --------------------------------------------------------------------------- familiar
@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("docker.io/library/busybox:latest", "busybox:latest"),
        ("docker.io/library/busybox", "busybox"),
        ("docker.io/me/app:1", "me/app:1"),
        ("docker.io/library/a/b:1", "library/a/b:1"),
        ("quay.io/a/b:1", "quay.io/a/b:1"),
        ("localhost:5000/app:1", "localhost:5000/app:1"),
        (f"docker.io/library/busybox@{D}", f"busybox@{D}"),
        ("unknown/unknown:latest", "unknown/unknown:latest"),
        ("Not Valid", "Not Valid"),
    ],
)
def test_familiar(ref: str, expected: str) -> None:
    assert reference.familiar(ref) == expected


@pytest.mark.parametrize("ref", ["busybox:latest", "me/app:1", "quay.io/a/b:2", "localhost:5000/x:y"])
def test_familiar_of_normalized_is_the_short_form_back(ref: str) -> None:
    assert reference.familiar(reference.normalize(ref)) == ref


# --------------------------------------------------------------------------- lookups
def test_candidates_are_the_name_as_given_then_normalised() -> None:
    assert reference.candidates("busybox") == ["busybox", "docker.io/library/busybox:latest"]


def test_candidates_of_a_normalised_name_is_just_that_name() -> None:
    assert reference.candidates("docker.io/library/busybox:1") == ["docker.io/library/busybox:1"]


def test_candidates_of_an_unparseable_name_is_just_that_name() -> None:
    assert reference.candidates("Some Name") == ["Some Name"]


# --------------------------------------------------------------------------- naming helpers
@pytest.mark.parametrize(
    ("ref_name", "full"),
    [
        ("latest", False),
        ("v1.0", False),
        ("1", False),
        ("foo/bar", True),
        ("foo:bar", True),
        (f"foo@{D}", True),
        ("docker.io/library/busybox:latest", True),
    ],
)
def test_ref_name_with_slash_colon_or_at_is_a_full_name(ref_name: str, full: bool) -> None:
    assert reference.is_full_ref_name(ref_name) is full


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a/b:1", ("a/b", "1")),
        ("a/b", ("a/b", "")),
        ("localhost:5000/a", ("localhost:5000/a", "")),
        ("localhost:5000/a:2", ("localhost:5000/a", "2")),
        (f"a/b:1@{D}", ("a/b", "1")),
        (f"a/b@{D}", ("a/b", "")),
    ],
)
def test_split_tag(name: str, expected: tuple[str, str]) -> None:
    assert reference.split_tag(name) == expected


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        ("unknown/unknown", f"unknown/unknown@{D}"),
        ("foo/bar:v1", f"foo/bar@{D}"),
        ("localhost:5000/foo", f"localhost:5000/foo@{D}"),
    ],
)
def test_with_digest_drops_the_tag(base: str, expected: str) -> None:
    assert reference.with_digest(base, D) == expected
