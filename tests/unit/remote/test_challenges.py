"""WWW-Authenticate parsing, scope merging and token answers (no network)."""

from __future__ import annotations

import json

import pytest

from ctrpy.remote.auth import (
    DEFAULT_EXPIRES_IN,
    Challenge,
    merge_scopes,
    parse_challenges,
    parse_token_response,
    repository_scope,
)
from ctrpy.remote.errors import InvalidResponse


def test_bearer_challenge_with_quoted_params() -> None:
    [c] = parse_challenges(['Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull"'])
    assert c.scheme == "bearer"
    assert c.params == {
        "realm": "https://auth.example.com/token",
        "service": "registry.example.com",
        "scope": "repository:a/b:pull",
    }


def test_basic_challenge() -> None:
    [c] = parse_challenges(['Basic realm="Registry Realm"'])
    assert c == Challenge("basic", {"realm": "Registry Realm"})


def test_scheme_is_case_insensitive_and_param_names_lowered() -> None:
    [c] = parse_challenges(['BEARER Realm="r", SERVICE=s'])
    assert c.scheme == "bearer"
    assert c.params == {"realm": "r", "service": "s"}


def test_several_challenges_in_one_value() -> None:
    cs = parse_challenges(['Basic realm="a", Bearer realm="https://t/token",service="s"'])
    assert [c.scheme for c in cs] == ["basic", "bearer"]
    assert cs[0].params == {"realm": "a"}
    assert cs[1].params == {"realm": "https://t/token", "service": "s"}


def test_several_header_values() -> None:
    cs = parse_challenges(['Basic realm="a"', 'Bearer realm="b"'])
    assert [(c.scheme, c.get("realm")) for c in cs] == [("basic", "a"), ("bearer", "b")]


def test_quoted_value_with_comma_and_escapes() -> None:
    [c] = parse_challenges([r'Bearer realm="https://t/token?a=1,b=2",error="bad \"quote\"",scope="x y"'])
    assert c.get("realm") == "https://t/token?a=1,b=2"
    assert c.get("error") == 'bad "quote"'
    assert c.get("scope") == "x y"


def test_unquoted_token_values() -> None:
    [c] = parse_challenges(["Bearer realm=https://t/token,service=reg,error=invalid_token"])
    assert c.params == {"realm": "https://t/token", "service": "reg", "error": "invalid_token"}


def test_spaces_around_equals_and_commas() -> None:
    [c] = parse_challenges(['Bearer realm = "r" ,  service= "s" , scope ="p"'])
    assert c.params == {"realm": "r", "service": "s", "scope": "p"}


def test_token68_challenge() -> None:
    cs = parse_challenges(["Negotiate abc123==, Basic realm=x"])
    assert [c.scheme for c in cs] == ["negotiate", "basic"]
    assert cs[0].get("token68") == "abc123=="
    assert cs[1].get("realm") == "x"


def test_scheme_without_params() -> None:
    cs = parse_challenges(["Bearer"])
    assert cs == [Challenge("bearer", {})]


def test_empty_and_garbage_values_give_nothing_or_survive() -> None:
    assert parse_challenges([""]) == []
    assert parse_challenges([" , ,"]) == []
    cs = parse_challenges(['Bearer realm="unterminated'])
    assert cs[0].get("realm") == "unterminated"


def test_insufficient_scope_error_is_kept() -> None:
    [c] = parse_challenges(
        ['Bearer realm="http://127.0.0.1:1/token",service="s",scope="repository:r:pull,push",error="insufficient_scope"']
    )
    assert c.get("error") == "insufficient_scope"
    assert c.get("scope") == "repository:r:pull,push"


def test_param_with_empty_quoted_value() -> None:
    [c] = parse_challenges(['Bearer realm="",service="s"'])
    assert c.params == {"realm": "", "service": "s"}


# -- scopes ----------------------------------------------------------------------------------


def test_repository_scope() -> None:
    assert repository_scope("library/busybox", "pull") == "repository:library/busybox:pull"
    assert repository_scope("a", "pull", "push") == "repository:a:pull,push"


def test_merge_scopes_merges_actions_per_repository() -> None:
    assert merge_scopes(["repository:a:pull", "repository:a:push", "repository:b:pull"]) == (
        "repository:a:pull,push",
        "repository:b:pull",
    )


def test_merge_scopes_dedups_and_sorts() -> None:
    assert merge_scopes(["repository:z:push,pull", "repository:z:pull", "repository:a:pull"]) == (
        "repository:a:pull",
        "repository:z:pull,push",
    )


def test_merge_scopes_splits_space_separated_scopes() -> None:
    assert merge_scopes(["repository:a:pull repository:b:pull", "repository:a:push"]) == (
        "repository:a:pull,push",
        "repository:b:pull",
    )


def test_merge_scopes_keeps_other_resource_types() -> None:
    assert merge_scopes(["registry:catalog:*", "repository:a:pull"]) == ("registry:catalog:*", "repository:a:pull")


def test_merge_scopes_with_a_port_like_name() -> None:
    # a name can never hold ":" in distribution, but the last ":" always starts the actions
    assert merge_scopes(["repository:host:5000/a:pull"]) == ("repository:host:5000/a:pull",)


def test_merge_scopes_of_nothing() -> None:
    assert merge_scopes([]) == ()


# -- token answers ---------------------------------------------------------------------------


def _answer(**kw: object) -> bytes:
    return json.dumps(kw).encode()


def test_token_answer_token_field() -> None:
    t = parse_token_response(_answer(token="abc", expires_in=300), 100.0, 1e9, "ts")
    assert t.value == "abc"
    assert t.expires_at == pytest.approx(100.0 + 300 - 10)


def test_token_answer_access_token_wins() -> None:
    t = parse_token_response(_answer(token="old", access_token="new"), 0.0, 1e9, "ts")
    assert t.value == "new"


def test_token_answer_default_lifetime_is_60s() -> None:
    t = parse_token_response(_answer(token="abc"), 50.0, 1e9, "ts")
    assert t.expires_at == pytest.approx(50.0 + DEFAULT_EXPIRES_IN - 6.0)


def test_token_answer_zero_or_bad_lifetime_means_default() -> None:
    for bad in (0, -5, "300", True, None):
        t = parse_token_response(_answer(token="abc", expires_in=bad), 0.0, 1e9, "ts")
        assert t.expires_at == pytest.approx(DEFAULT_EXPIRES_IN - 6.0), bad


def test_token_answer_issued_at_counts_age() -> None:
    # issued 100 s before "now" with a 300 s lifetime: 200 s left, minus the early margin
    t = parse_token_response(_answer(token="abc", expires_in=300, issued_at="2023-11-14T22:11:40Z"), 0.0, 1_700_000_000.0, "ts")
    assert t.expires_at == pytest.approx(200 - 10)


def test_token_answer_issued_at_with_nanoseconds() -> None:
    t = parse_token_response(
        _answer(token="abc", expires_in=300, issued_at="2023-11-14T22:11:40.123456789Z"), 0.0, 1_700_000_000.0, "ts"
    )
    assert t.expires_at == pytest.approx(200.123456 - 10, abs=1e-3)


def test_token_answer_issued_in_the_future_is_not_negative_age() -> None:
    t = parse_token_response(_answer(token="abc", expires_in=300, issued_at="2030-01-01T00:00:00Z"), 0.0, 1_700_000_000.0, "ts")
    assert t.expires_at == pytest.approx(290)


def test_token_answer_unreadable_issued_at_is_ignored() -> None:
    t = parse_token_response(_answer(token="abc", expires_in=120, issued_at="yesterday"), 0.0, 1e9, "ts")
    assert t.expires_at == pytest.approx(110)


def test_token_answer_refresh_token_kept() -> None:
    t = parse_token_response(_answer(access_token="a", refresh_token="r"), 0.0, 1e9, "ts")
    assert t.refresh_token == "r"


@pytest.mark.parametrize("body", [b"not json", b"[]", b"{}", b'{"token": ""}', b'{"token": 5}'])
def test_token_answer_without_token_is_an_invalid_response(body: bytes) -> None:
    with pytest.raises(InvalidResponse, match="ts"):
        parse_token_response(body, 0.0, 1e9, "ts")


def test_token_repr_hides_the_value() -> None:
    t = parse_token_response(_answer(token="very-secret-token"), 0.0, 1e9, "ts")
    assert "very-secret-token" not in repr(t)
