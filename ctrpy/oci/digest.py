"""Digest validation: a digest is checked before it ever becomes a path."""

from __future__ import annotations

import hashlib
import re

from ctrpy.errors import InvalidArgument, UnsupportedDigest

_SHA256 = re.compile(r"sha256:[0-9a-f]{64}")
_SHA512 = re.compile(r"sha512:[0-9a-f]{128}")


def is_valid(digest: str) -> bool:
    """A digest ctrpy can store: ``sha256:`` + 64 lowercase hex."""
    return isinstance(digest, str) and _SHA256.fullmatch(digest) is not None


def is_well_formed(digest: str) -> bool:
    """A digest of an algorithm the OCI image-spec registers (sha256 or sha512)."""
    return is_valid(digest) or (isinstance(digest, str) and _SHA512.fullmatch(digest) is not None)


def validate(digest: str) -> str:
    """Return ``digest`` if it is ``sha256:`` + 64 lowercase hex.  A well-formed sha512
    digest raises UnsupportedDigest (it names the algorithm); anything else InvalidArgument."""
    if is_valid(digest):
        return digest
    if is_well_formed(digest):
        raise UnsupportedDigest(digest)
    raise InvalidArgument(f"invalid digest {digest!r}: want sha256:<64 lowercase hex>")


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
