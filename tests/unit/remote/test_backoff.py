"""Retry waits: the backoff schedule, Retry-After parsing, retries with a fake clock (no network)."""

from __future__ import annotations

import email.utils

import pytest

from ctrpy.remote.transport import backoff_delay, origin_of, parse_retry_after, strip_query


def test_backoff_doubles_from_the_base() -> None:
    waits = [backoff_delay(n, 0.5, 10.0, 1.0) for n in range(1, 6)]
    assert waits == [0.5, 1.0, 2.0, 4.0, 8.0]


def test_backoff_is_capped() -> None:
    assert backoff_delay(10, 0.5, 10.0, 1.0) == 10.0
    assert backoff_delay(60, 0.5, 10.0, 1.0) == 10.0


def test_backoff_jitter_scales_into_half_to_full() -> None:
    assert backoff_delay(3, 0.5, 10.0, 0.0) == 1.0
    assert backoff_delay(3, 0.5, 10.0, 0.5) == 1.5
    assert backoff_delay(3, 0.5, 10.0, 0.999) == pytest.approx(2.0, abs=0.01)


def test_backoff_jitter_out_of_range_is_clamped() -> None:
    assert backoff_delay(1, 1.0, 10.0, -3.0) == 0.5
    assert backoff_delay(1, 1.0, 10.0, 7.0) == 1.0


def test_backoff_attempt_zero_is_the_base() -> None:
    assert backoff_delay(0, 0.5, 10.0, 1.0) == 0.5


def test_retry_after_seconds() -> None:
    assert parse_retry_after("1", 0.0) == 1.0
    assert parse_retry_after(" 120 ", 0.0) == 120.0
    assert parse_retry_after("0", 0.0) == 0.0


def test_retry_after_http_date() -> None:
    now = 1_700_000_000.0
    when = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after(when, now) == pytest.approx(30.0)


def test_retry_after_date_in_the_past_is_zero() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after(email.utils.formatdate(now - 300, usegmt=True), now) == 0.0


@pytest.mark.parametrize("value", [None, "", "soon", "-5", "1.5", "Mon, 99 Foo 2020"])
def test_retry_after_unreadable_is_none(value: str | None) -> None:
    assert parse_retry_after(value, 0.0) is None


def test_strip_query_drops_upload_state() -> None:
    assert strip_query("http://h:1/v2/r/blobs/uploads/u?_state=secret&digest=x") == "http://h:1/v2/r/blobs/uploads/u"


def test_origin_includes_default_ports() -> None:
    assert origin_of("https://Example.com/x") == "https://example.com:443"
    assert origin_of("http://example.com:80/x") == "http://example.com:80"
    assert origin_of("http://[::1]:5000/v2/") == "http://[::1]:5000"
    assert origin_of("https://a.example/") != origin_of("https://b.example/")
