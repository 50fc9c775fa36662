"""Digest validation: a digest is checked before it ever becomes a path."""

from __future__ import annotations

import hashlib
import re

from ctrpy.errors import InvalidArgument, UnsupportedDigest

_SHA256 = re.compile(r"sha256:[0-9a-f]{64}")
# the OCI image-spec's digest grammar; sha256 and sha512 are registered with fixed encodings
_GRAMMAR = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")
_REGISTERED = {"sha256": re.compile(r"[0-9a-f]{64}"), "sha512": re.compile(r"[0-9a-f]{128}")}


def is_valid(digest: str) -> bool:
    """A digest ctrpy can store: ``sha256:`` + 64 lowercase hex."""
    return isinstance(digest, str) and _SHA256.fullmatch(digest) is not None


def is_well_formed(digest: str) -> bool:
    """A digest the OCI image-spec's grammar allows (``algorithm:encoded``; the registered
    sha256 and sha512 with their exact encodings).  A descriptor may carry one ctrpy cannot
    store: that is only an error when ctrpy needs the blob."""
    if not isinstance(digest, str) or _GRAMMAR.fullmatch(digest) is None:
        return False
    algorithm, _, encoded = digest.partition(":")
    rule = _REGISTERED.get(algorithm)
    return rule is None or rule.fullmatch(encoded) is not None


def validate(digest: str) -> str:
    """Return ``digest`` if it is ``sha256:`` + 64 lowercase hex.  Another well-formed
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
