"""ctr's FILTER arguments on ``images ls``, ``images check`` and ``content ls``: they select
as containerd does (the grammar itself is tested in ``tests/unit/test_filters.py``), and a
filter that does not parse is a usage error that names it."""

from __future__ import annotations

import json

import pytest

from tests.builders import file
from tests.helpers import Cli, host_image, named_archive

DEBIAN = "docker.io/library/debian:bookworm"
APP = "docker.io/me/app:v1"


@pytest.fixture
def two(run: Cli) -> Cli:
    """Two images, one labelled team=infra; nothing unpacked."""
    debian = host_image([file("etc/debian_version", b"12\n")]).build()
    app = host_image([file("app", b"app")]).build()
    run.ok("images", "import", "--no-unpack", run.write(named_archive((debian, DEBIAN), (app, APP))))
    run.ok("images", "label", APP, "team=infra")
    return run


def names(run: Cli, *args: str) -> list[str]:
    return run.ok(*args).stdout.split()


@pytest.mark.parametrize("command", [("images", "ls"), ("images", "check")])
def test_a_filter_selects_the_images_it_matches(two: Cli, command: tuple[str, str]) -> None:
    assert names(two, *command, "-q", "name~=debian") == [DEBIAN]


@pytest.mark.parametrize("command", [("images", "ls"), ("images", "check")])
def test_several_filters_select_the_images_any_of_them_matches(two: Cli, command: tuple[str, str]) -> None:
    assert names(two, *command, "-q", "name~=debian", 'labels."team"==infra') == [DEBIAN, APP]


def test_a_comma_selects_the_images_every_selector_matches(two: Cli) -> None:
    assert names(two, "images", "ls", "-q", "name~=debian,labels.team") == []
    assert names(two, "images", "ls", "-q", "name~=app,labels.team") == [APP]


def test_a_filter_on_the_target_media_type_selects_by_it(two: Cli) -> None:
    mediatype = two.image(APP)["target"]["mediaType"]
    assert names(two, "images", "ls", "-q", f"target.mediatype=={mediatype}") == [DEBIAN, APP]
    assert names(two, "images", "ls", "-q", "target.mediatype!=" + mediatype) == []


def test_a_filter_applies_to_the_table_and_to_json_alike(two: Cli) -> None:
    table = two.ok("images", "ls", "name~=app").stdout.splitlines()
    assert len(table) == 2 and table[1].startswith(APP + " ")
    items = json.loads(two.ok("images", "ls", "--json", "name~=app").stdout)["items"]
    assert [i["name"] for i in items] == [APP]


def test_content_ls_filters_on_labels(two: Cli) -> None:
    manifests = two.ok("content", "ls", "-q", 'labels."containerd.io/gc.ref.content.config"').stdout.split()
    assert sorted(manifests) == sorted(two.image(n)["target"]["digest"] for n in (DEBIAN, APP))


def test_content_ls_filters_on_the_digest(two: Cli) -> None:
    digest = two.image(APP)["target"]["digest"]
    assert names(two, "content", "ls", "-q", f"digest=={digest}") == [digest]


def test_images_check_with_no_image_left_prints_nothing_as_ctr(two: Cli) -> None:
    assert two.ok("images", "check", "name==nothing").stdout == ""


def test_images_check_json_with_no_image_left_is_an_empty_envelope(two: Cli) -> None:
    assert json.loads(two.ok("images", "check", "--json", "name==nothing").stdout)["items"] == []


def test_images_ls_with_no_image_left_prints_the_header_as_ctr(two: Cli) -> None:
    assert two.ok("images", "ls", "name==nothing").stdout.split() == ["REF", "TYPE", "DIGEST", "SIZE", "PLATFORMS", "LABELS"]


@pytest.mark.parametrize("command", [("images", "ls"), ("images", "check"), ("content", "ls")])
@pytest.mark.parametrize("bad", ["name=x", 'labels."unterminated', "name~=[", "a..b"])
def test_a_bad_filter_is_a_usage_error_naming_it(two: Cli, command: tuple[str, str], bad: str) -> None:
    r = two.usage_error(*command, "name~=fine", bad)
    assert repr(bad) in r.stderr
    assert r.stdout == ""


def test_a_bad_filter_says_where_it_stops_parsing(two: Cli) -> None:
    assert "[name >|=|< x]" in two.usage_error("images", "ls", "name=x").stderr


def test_the_filters_are_parsed_before_the_store_is_read(run: Cli) -> None:
    run.usage_error("images", "ls", "name=x")
    assert not run.root.exists()
