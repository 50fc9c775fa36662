"""The set of paths a layer wrote, kept as 64-bit fingerprints (PathSet): membership as a
set's, memory bounded per path, and fingerprints an image cannot predict."""

from __future__ import annotations

import subprocess
import sys

from ctrpy.archive.pathset import PathSet


def paths(n: int) -> list[bytes]:
    return [b"usr/lib/python3/d%04d/f%06d.py" % (i // 256, i) for i in range(n)]


def test_added_paths_are_members_and_others_are_not() -> None:
    s = PathSet()
    added = paths(50_000)
    for p in added[::2]:
        s.add(p)
    assert all(p in s for p in added[::2])
    assert not any(p in s for p in added[1::2])


def test_add_says_whether_the_path_is_new() -> None:
    s = PathSet()
    assert s.add(b"etc/hosts") is True
    assert s.add(b"etc/hosts") is False
    assert len(s) == 1


def test_only_bytes_are_members() -> None:
    s = PathSet()
    s.add(b"etc")
    assert "etc" not in s
    assert None not in s


def test_the_table_is_at_most_three_quarters_full_and_at_most_22_bytes_per_path() -> None:
    s = PathSet()
    for p in paths(100_000):
        s.add(p)
    slots = len(s._slots)
    assert 4 * len(s) <= 3 * slots
    assert slots * 8 <= 22 * len(s)
    assert s._slots.itemsize == 8


def test_without_hash_randomization_fingerprints_are_keyed() -> None:
    code = ("from ctrpy.archive import pathset; "
            "print(pathset._fingerprint is pathset._keyed_fingerprint)")
    for seed, keyed in (("0", "True"), ("random", "False")):
        out = subprocess.run([sys.executable, "-c", code], env={"PYTHONHASHSEED": seed},
                             capture_output=True, text=True, check=True)
        assert out.stdout.strip() == keyed


def test_keyed_fingerprints_differ_between_processes() -> None:
    code = "from ctrpy.archive import pathset; print(pathset._keyed_fingerprint(b'etc/passwd'))"
    runs = {subprocess.run([sys.executable, "-c", code], env={"PYTHONHASHSEED": "0"},
                           capture_output=True, text=True, check=True).stdout for _ in range(2)}
    assert len(runs) == 2
