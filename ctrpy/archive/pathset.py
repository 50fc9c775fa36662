"""A set of paths in 8 bytes per path: what a layer apply remembers of every entry it wrote.

Applying a layer must know which paths the layer itself wrote (a whiteout removes what lower
layers put there, never what its own layer wrote), so it remembers one fact per entry.
Kept as a Python ``set`` of the paths, that fact costs about 160 bytes an entry (the bytes
object and its slot), and a layer of 200,000 files grew the process by 30 MiB.  Here every
path is a 64-bit fingerprint (Python's ``hash`` of the bytes: SipHash keyed with the
process's random secret, so an image cannot pick colliding names; BLAKE2b with a random
key when hash randomization is off) in an open-addressing
table of unsigned 64-bit integers that is never more than three quarters full: 11 to 21
bytes per path (linear probing stays short at that load), so memory stays nearly flat as
layers grow.

A fingerprint can collide, with odds of about ``n / 2**64`` per lookup in a set of ``n``
paths (one in 10**13 for a million entries).  What a collision would do is bounded: a
lower layer's path taken as the layer's own survives a whiteout (a path the image then
still shows), or an ancestor of a written path is not marked.  It never makes anything
resolve outside the root: the set only decides what a whiteout keeps.
"""

from __future__ import annotations

import hashlib
import os
import sys
from array import array
from typing import Final

_EMPTY: Final = 0
_MASK64: Final = (1 << 64) - 1
_START: Final = 1 << 10  # slots of a new set (8 KiB)


_KEY: Final = os.urandom(16)


def _hash_fingerprint(path: bytes) -> int:
    return (hash(path) & _MASK64) or 1  # 0 marks an empty slot


def _keyed_fingerprint(path: bytes) -> int:
    """For a process without hash randomization (PYTHONHASHSEED=0), whose ``hash`` an image
    could predict: BLAKE2b keyed with a random key instead (slower)."""
    return int.from_bytes(hashlib.blake2b(path, digest_size=8, key=_KEY).digest(), "little") or 1


_fingerprint: Final = _hash_fingerprint if sys.flags.hash_randomization else _keyed_fingerprint


class PathSet:
    """``add`` and ``in`` for byte-string paths, by 64-bit fingerprint (see the module)."""

    __slots__ = ("_count", "_mask", "_slots")

    def __init__(self) -> None:
        self._slots = array("Q", bytes(8 * _START))
        self._mask = _START - 1
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def __contains__(self, path: object) -> bool:
        if not isinstance(path, bytes):
            return False
        fp = _fingerprint(path)
        return self._slots[_probe(self._slots, self._mask, fp)] == fp

    def add(self, path: bytes) -> bool:
        """Add ``path``; False when it was there already."""
        fp = _fingerprint(path)
        slots = self._slots
        i = _probe(slots, self._mask, fp)
        if slots[i] == fp:
            return False
        slots[i] = fp
        self._count += 1
        if 4 * self._count > 3 * self._mask:  # at most three quarters full
            self._grow()
        return True

    def _grow(self) -> None:
        old = self._slots
        size = 2 * len(old)
        slots = array("Q", bytes(8 * size))
        mask = size - 1
        for fp in old:
            if fp != _EMPTY:
                slots[_probe(slots, mask, fp)] = fp
        self._slots, self._mask = slots, mask


def _probe(slots: array[int], mask: int, fp: int) -> int:
    """Linear probing: the index of ``fp``'s slot, or of the empty slot where it would go."""
    i = fp & mask
    while True:
        have = slots[i]
        if have in (fp, _EMPTY):
            return i
        i = (i + 1) & mask
