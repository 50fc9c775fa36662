"""Labels on namespaces, images, blobs: containerd's rules, and ``k=`` meaning 'remove k'."""

from __future__ import annotations

from collections.abc import Mapping

from ctrpy.errors import InvalidArgument

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
