"""containerd's filter syntax (``ctrpy.filters``): the grammar as containerd 1.6 parses it
(its ``filters`` tests are the reference for what parses, what matches and where an error
is reported), the operators, and the map rule for labels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from ctrpy import filters
from ctrpy.errors import FilterError, InvalidArgument


@dataclass
class Entry:
    name: str
    other: str = ""
    labels: dict[str, str] = field(default_factory=dict)

    def fields(self, path: Sequence[str]) -> tuple[str, bool]:
        if path[0] == "name":
            return self.name, bool(self.name)
        if path[0] == "other":
            return self.other, bool(self.other)
        if path[0] == "labels":
            key = ".".join(path[1:])
            return self.labels.get(key, ""), key in self.labels
        return "", False


CORPUS = [
    Entry("foo", labels={"foo": "true"}),
    Entry("bar"),
    Entry("foo", labels={"foo": "present", "more complex label": "present"}),
    Entry("bar", labels={"bar": "true"}),
    Entry("fooer", labels={'more complex label with \\ and "': "present"}),
    Entry("fooer", labels={'more complex label with \\ and ".post': "present"}),
    Entry("baz", other="too complex, yo"),
    Entry("bazo", other="abc"),
    Entry("compound", labels={"foo": "omg_asdf.asdf-qwer"}),
]


def matching(text: str) -> list[int]:
    f = filters.parse(text)
    return [i for i, entry in enumerate(CORPUS) if f.match(entry.fields)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("", list(range(9)), id="empty"),
        pytest.param("name", list(range(9)), id="present"),
        pytest.param("labels.foo", [0, 2, 8], id="label-present"),
        pytest.param("labels.foo,name", [0, 2, 8], id="and"),
        pytest.param("labels.foo==true", [0], id="label-value"),
        pytest.param("labels.foo==omg_asdf.asdf-qwer", [8], id="punctuated-value"),
        pytest.param("name==bar", [1, 3], id="equal"),
        pytest.param("name!=bar", [0, 2, 4, 5, 6, 7, 8], id="not-equal"),
        pytest.param("name==bar,labels.bar", [3], id="name-and-label"),
        pytest.param('other=="too complex, yo"', [6], id="quoted-value"),
        pytest.param("other~=[abc]+,name!=foo", [6, 7], id="regexp"),
        pytest.param("other~=/[abc]+/,name!=foo", [6, 7], id="regexp-slashes"),
        pytest.param("other~=/[abc]{1,2}/,name!=foo", [6, 7], id="regexp-comma-inside-quotes"),
        pytest.param('other~=/[abc]{0,1}"\\//,name!=foo', [], id="regexp-escaped-slash"),
        pytest.param("other~=|a/b|", [], id="regexp-pipes"),
        pytest.param("name==bar,labels.bar==true", [3], id="name-and-label-value"),
        pytest.param("name==bar,labels.bar==wrong", [], id="no-match"),
        pytest.param('name==foo,labels."more complex label"', [2], id="quoted-field"),
        pytest.param('labels."more complex label with \\\\ and \\""==present', [4], id="quoted-field-escapes"),
        pytest.param('labels."more complex label with \\\\ and \\"".post==present', [5], id="quoted-then-plain"),
        pytest.param(" name == bar", [1, 3], id="spaces-around-operator"),
    ],
)
def test_a_filter_matches_what_containerd_matches(text: str, expected: list[int]) -> None:
    assert matching(text) == expected


@pytest.mark.parametrize(
    ("text", "reason", "where"),
    [
        ("labels.|foo|==omg_asdf.asdf-qwer", "invalid quote encountered", "[labels. >|||< foo|==omg_asdf.asdf-qwer]"),
        ('labels.?"x".post==present', "expected field or quoted", '[labels. >|?|< "x".post==present]'),
        ("name==foo,", "expected field or quoted", "[name==foo,]"),
        ("labels.", "expected field or quoted", "[labels.]"),
        ("image~=,id?=?fbaq", "expected value or quoted", "[image~= >|,|< id?=?fbaq]"),
        ("labels.ns/key==value", "quoted literal not terminated", "[labels.ns >|/|< key==value]"),
        ("labels.key==/value", "quoted literal not terminated", "[labels.key== >|/|< value]"),
        ("name=x", 'unsupported operator "="', "[name >|=|< x]"),
        ("name===x", 'unsupported operator "==="', "[name >|=|< ==x]"),
        ("name==", "expected value or quoted", "[name==]"),
        ("name==x y", "unexpected input:  ", "[name==x >| |< y]"),
        (" name == x ", "unexpected input:  ", "[ name == x >| |< ]"),
        ("name==/x/", "invalid quote encountered", "[name== >|/|< x/]"),
        ('name=="x\\qy"', "illegal escape sequence", '[name== >|"|< x\\qy"]'),
        ('name=="\\x4"', "illegal numeric escape sequence", '[name== >|"|< \\x4"]'),
        (".name", "expected field or quoted", "[ >|.|< name]"),
        ("a..b", "expected field or quoted", "[a. >|.|< b]"),
        ("name==a\0b", "unexpected input: \ufffd", "[name==a >|\0|< b]"),
        ("name==\udcff", "rune error", "[name== >|\udcff|< ]"),
    ],
)
def test_a_bad_filter_is_refused_where_containerd_refuses_it(text: str, reason: str, where: str) -> None:
    with pytest.raises(FilterError) as info:
        filters.parse(text)
    assert (info.value.filter, info.value.reason, info.value.where) == (text, reason, where)


def test_a_filter_error_is_an_invalid_argument_that_names_the_filter() -> None:
    with pytest.raises(InvalidArgument) as info:
        filters.parse("name=x")
    assert "'name=x'" in str(info.value)


def test_a_regular_expression_that_does_not_compile_is_refused_at_its_position() -> None:
    with pytest.raises(FilterError) as info:
        filters.parse("name~=[")
    assert info.value.position == len("name~=")
    assert "regular expression" in info.value.reason


def test_a_regular_expression_is_searched_not_anchored() -> None:
    assert matching("name~=oo") == [0, 2, 4, 5]
    assert matching("name~=^ba") == [1, 3, 6, 7]


def test_not_equal_matches_an_object_without_the_field() -> None:
    assert matching("labels.bar!=true") == [0, 1, 2, 4, 5, 6, 7, 8]


def test_equal_needs_the_field_present_even_for_an_empty_value() -> None:
    assert matching('other==""') == []


def test_a_regular_expression_sees_an_absent_field_as_empty() -> None:
    assert matching("other~=^$") == [0, 1, 2, 3, 4, 5, 8]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('"a\\tb"', "a\tb"),
        ('"\\x41\\102\\u00e9\\U0001F600"', "AB\u00e9\U0001f600"),
        ('"\\"quoted\\""', '"quoted"'),
        ('"caf\u00e9"', "caf\u00e9"),
    ],
)
def test_a_quoted_value_is_unquoted_as_a_go_string(text: str, value: str) -> None:
    (selector,) = filters.parse(f"name=={text}").selectors  # type: ignore[attr-defined]
    assert selector.value == value


def test_several_filters_match_when_any_does() -> None:
    f = filters.parse_all(["name==bar", "labels.foo==true"])
    assert [i for i, e in enumerate(CORPUS) if f.match(e.fields)] == [0, 1, 3]


def test_no_filter_matches_everything() -> None:
    assert filters.parse_all([]) is filters.ALWAYS
    assert filters.any_of([]) is filters.ALWAYS


def test_check_map_joins_the_rest_of_the_path_with_dots() -> None:
    labels = {"containerd.io/gc.root": "x", "a": "1"}
    assert filters.check_map(["containerd", "io/gc", "root"], labels) == ("x", True)
    assert filters.check_map(["a"], labels) == ("1", True)
    assert filters.check_map(["b"], labels) == ("", False)
    assert filters.check_map(["a"], {}) == ("", False)
