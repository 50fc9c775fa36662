"""Labels on records (``ctrpy.metadata.labels``): containerd's rules, ``k=`` removing ``k``,
and the labels and times every record of the database carries."""

from __future__ import annotations

import sqlite3

import pytest

from ctrpy.content.store import Info
from ctrpy.errors import InvalidArgument
from ctrpy.images.store import Image
from ctrpy.metadata.labels import MAX_LABEL, Labelled, merge, stored, validate
from ctrpy.oci import Descriptor
from ctrpy.snapshots.base import Snapshot

DIGEST = "sha256:" + "a" * 64


def test_merging_sets_new_values_and_an_empty_value_removes_the_key() -> None:
    assert merge({"a": "1", "b": "2"}, {"a": "3", "b": "", "c": "4"}) == {"a": "3", "c": "4"}


def test_an_empty_key_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="key must not be empty"):
        validate({"": "x"})


def test_a_key_and_value_longer_than_containerds_limit_are_refused_naming_the_key() -> None:
    validate({"k": "v" * (MAX_LABEL - 1)})
    with pytest.raises(InvalidArgument, match="'k'"):
        validate({"k": "v" * MAX_LABEL})


def test_the_labels_and_times_of_a_record_are_keyword_only() -> None:
    info = Info(DIGEST, 3, labels={"a": "1"}, created_at="t0")
    assert (info.digest, info.size, info.labels, info.created_at, info.updated_at) == (DIGEST, 3, {"a": "1"}, "t0", "")
    with pytest.raises(TypeError):
        Info(DIGEST, 3, {"a": "1"})  # type: ignore[call-arg]


def test_every_record_shows_its_labels_and_times_under_the_same_json_keys() -> None:
    stamps = {"labels": {"a": "1"}, "created_at": "t0", "updated_at": "t1"}
    shown = {"labels": {"a": "1"}, "createdAt": "t0", "updatedAt": "t1"}
    records: list[Labelled] = [
        Info(DIGEST, 3, **stamps),  # type: ignore[arg-type]
        Image("x:1", Descriptor("application/vnd.oci.image.manifest.v1+json", DIGEST, 3), **stamps),  # type: ignore[arg-type]
        Snapshot("k", "", "committed", "d", **stamps),  # type: ignore[arg-type]
    ]
    for record in records:
        assert record.labelled_json() == shown
    assert list(Info(DIGEST, 3, **stamps).to_json()) == ["digest", "size", "labels", "createdAt", "updatedAt"]  # type: ignore[arg-type]


def test_a_rows_labels_and_times_are_read_from_their_columns() -> None:
    conn = sqlite3.connect(":memory:")
    conn.row_factory = sqlite3.Row
    row = conn.execute("SELECT '{\"a\": \"1\"}' AS labels, 't0' AS created_at, 't1' AS updated_at").fetchone()
    assert stored(row) == {"labels": {"a": "1"}, "created_at": "t0", "updated_at": "t1"}
    assert Info(DIGEST, 3, **stored(row)).labels == {"a": "1"}
