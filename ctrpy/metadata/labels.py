"""Labels on namespaces, images, blobs: containerd's rules, and ``k=`` meaning 'remove k'."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ctrpy.errors import InvalidArgument
from ctrpy.metadata.db import loads_map

MAX_LABEL = 4096


def validate(labels: Mapping[str, str]) -> None:
    """Non-empty keys; key and value together at most 4096 bytes (containerd's limit)."""
    for k, v in labels.items():
        if not k:
            raise InvalidArgument("label key must not be empty")
        if len(k.encode()) + len(v.encode()) > MAX_LABEL:
            raise InvalidArgument(f"label {k!r}: key and value longer than {MAX_LABEL} bytes")


def merge(existing: Mapping[str, str], changes: Mapping[str, str]) -> dict[str, str]:
    """Apply ``changes`` (an empty value removes that key) and validate the result."""
    out = dict(existing)
    for k, v in changes.items():
        if v:
            out[k] = v
        else:
            out.pop(k, None)
    validate(out)
    return out


@dataclass(kw_only=True)
class Labelled:
    """What every record of the metadata database carries after the fields that name it
    (an image, a blob, a snapshot): its labels, and when it was made and last changed
    (RFC 3339, UTC).  The fields are keyword-only: ``Image(name, target, labels=...)``."""

    labels: dict[str, str] = field(default_factory=dict)
    created_at: str = ""
    updated_at: str = ""

    def labelled_json(self) -> dict[str, Any]:
        """``labels``, ``createdAt`` and ``updatedAt``, as ``--json`` shows them."""
        return {"labels": self.labels, "createdAt": self.created_at, "updatedAt": self.updated_at}


def stored(row: sqlite3.Row) -> dict[str, Any]:
    """A row's ``labels``, ``created_at`` and ``updated_at`` columns, as :class:`Labelled`
    takes them (``Info(r["digest"], r["size"], **stored(r))``)."""
    return {"labels": loads_map(row["labels"]), "created_at": row["created_at"], "updated_at": row["updated_at"]}
