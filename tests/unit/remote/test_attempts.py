"""Hosts and endpoints are tried in turn; when all fail, the most telling error is raised."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ctrpy.remote import ConnectionFailed, ManifestTooLarge, RemoteDigestMismatch, RemoteError, RemoteNotFound
from ctrpy.remote.errors import first_answer

RANK = {ConnectionFailed: 1, RemoteNotFound: 2, RemoteError: 3, ManifestTooLarge: 4}


def failing(err: Exception) -> Callable[[], str]:
    def attempt() -> str:
        raise err
    return attempt


def test_the_first_attempt_that_succeeds_wins_and_later_ones_are_not_made() -> None:
    made: list[str] = []

    def ok(name: str) -> Callable[[], str]:
        return lambda: made.append(name) or name  # type: ignore[func-returns-value]

    assert first_answer([failing(RemoteNotFound("a")), ok("b"), ok("c")], final=(), rank=RANK) == "b"
    assert made == ["b"]


def test_a_not_found_from_the_server_beats_a_mirror_that_is_down() -> None:
    gone = RemoteNotFound("app:1: not found", host="server")
    with pytest.raises(RemoteNotFound) as info:
        first_answer([failing(ConnectionFailed("mirror down")), failing(gone)], final=(), rank=RANK)
    assert info.value is gone


def test_the_most_specific_class_in_the_rank_decides() -> None:
    # ConnectionFailed is a RemoteError, yet ranks below a plain one
    plain = RemoteError("500 from the server")
    with pytest.raises(RemoteError) as info:
        first_answer([failing(plain), failing(ConnectionFailed("down"))], final=(), rank=RANK)
    assert info.value is plain


def test_a_final_error_ends_the_search_at_once() -> None:
    tried: list[int] = []

    def later() -> str:
        tried.append(1)
        return "never"

    with pytest.raises(RemoteDigestMismatch):
        first_answer([failing(RemoteDigestMismatch("blob: digest mismatch")), later],
                      final=(RemoteDigestMismatch,), rank=RANK)
    assert tried == []
