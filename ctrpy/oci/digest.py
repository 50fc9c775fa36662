"""Digest validation: a digest is checked before it ever becomes a path."""

from __future__ import annotations

import hashlib
import re

from ctrpy.errors import InvalidArgument

_SHA256 = re.compile(r"sha256:[0-9a-f]{64}")


def is_valid(digest: str) -> bool:
    return _SHA256.fullmatch(digest) is not None


def validate(digest: str) -> str:
    """Return ``digest`` if it is ``sha256:`` + 64 lowercase hex, else raise InvalidArgument."""
    if not isinstance(digest, str) or not is_valid(digest):
        raise InvalidArgument(f"invalid digest {digest!r}: want sha256:<64 lowercase hex>")
    return digest


def hex_of(digest: str) -> str:
    return validate(digest)[len("sha256:") :]


def of_bytes(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def chain_ids(diff_ids: list[str]) -> list[str]:
    """containerd's chainID: chain(0)=diff(0), chain(n)=sha256(chain(n-1) + " " + diff(n))."""
    out: list[str] = []
    for d in diff_ids:
        validate(d)
        out.append(d if not out else of_bytes(f"{out[-1]} {d}".encode()))
    return out
