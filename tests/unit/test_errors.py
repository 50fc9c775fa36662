"""The error policy (``ctrpy.errors``): context is added once per layer, outermost first,
and a place the message already starts with is not said twice."""

from __future__ import annotations

from ctrpy.errors import CtrpyError, ImageNotFound, PlatformNotFound


def test_each_layer_adds_where_the_error_happened_outermost_first() -> None:
    e = CtrpyError("content has digest sha256:b").within("archive member blobs/sha256/a").within("image app:v1")
    assert str(e) == "image app:v1: archive member blobs/sha256/a: content has digest sha256:b"
    assert e.context == ["image app:v1", "archive member blobs/sha256/a"]


def test_the_same_place_given_twice_in_a_row_is_said_once() -> None:
    e = CtrpyError("boom").within("image app:v1").within("image app:v1")
    assert str(e) == "image app:v1: boom"


def test_a_place_the_message_starts_with_is_not_said_again() -> None:
    e = PlatformNotFound("image app:v1", "linux/s390x").within("image app:v1")
    assert str(e) == "image app:v1 has no manifest for linux/s390x"
    assert e.context == []


def test_a_place_that_only_looks_like_the_start_of_the_message_is_still_said() -> None:
    e = CtrpyError("image app:v10 is broken").within("image app:v1")
    assert str(e) == "image app:v1: image app:v10 is broken"


def test_within_returns_the_error_itself_keeping_its_class() -> None:
    e = ImageNotFound("app:v1")
    assert e.within("namespace default") is e
    assert isinstance(e, ImageNotFound)
