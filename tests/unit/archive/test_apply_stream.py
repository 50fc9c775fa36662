"""Applying a layer stream: its diffID and size, progress, pipes, and the errors of the stream
and of the entries (which name the entry)."""

from __future__ import annotations

import io
import os
from pathlib import Path

from ctrpy.archive import ApplyOptions, apply_layer
from ctrpy.archive.apply import PROGRESS_EVERY
from ctrpy.errors import InvalidArchive, InvalidArgument, UnpackError
from tests.builders import Tar, sha256_digest
from tests.helpers import PipeLike, apply_bytes, raises_naming


def sample() -> bytes:
    return Tar().dir("etc").file("etc/hosts", b"127.0.0.1 localhost\n").symlink("link", "etc").build()


# -- diffID and size -------------------------------------------------------------------


def test_diff_id_is_the_sha256_of_the_whole_stream(rootfs: Path) -> None:
    data = sample()
    result = apply_bytes(rootfs, data)
    assert result.diff_id == sha256_digest(data)
    assert result.size == len(data)


def test_diff_id_covers_padding_after_the_end_of_archive(rootfs: Path) -> None:
    data = sample() + bytes(10 * 512) + b"trailing junk after the end"
    result = apply_bytes(rootfs, data)
    assert result.diff_id == sha256_digest(data)
    assert result.size == len(data)


def test_the_stream_is_read_to_its_end(rootfs: Path) -> None:
    stream = io.BytesIO(sample() + bytes(4096))
    apply_layer(rootfs, stream)
    assert stream.read() == b""


def test_entries_are_counted(rootfs: Path) -> None:
    assert apply_bytes(rootfs, sample()).entries == 3


def test_a_pipe_with_short_reads_is_applied(rootfs: Path) -> None:
    data = Tar().file("big", os.urandom(3 << 20)).file("small", b"s").build()
    result = apply_layer(rootfs, PipeLike(data, step=4099), ApplyOptions())  # type: ignore[arg-type]
    assert result.diff_id == sha256_digest(data)
    assert (rootfs / "small").read_bytes() == b"s"


def test_progress_is_reported_after_every_entry(rootfs: Path) -> None:
    calls: list[tuple[int, int]] = []
    data = sample()
    apply_bytes(rootfs, data, on_progress=lambda n, b: calls.append((n, b)))
    assert [n for n, _ in calls] == [1, 2, 3]
    sizes = [b for _, b in calls]
    assert sizes == sorted(sizes) and sizes[-1] <= len(data)


def test_progress_is_sampled_past_the_first_entries_and_ends_with_the_whole_layer(rootfs: Path) -> None:
    calls: list[tuple[int, int]] = []
    tar = Tar()
    for i in range(200):
        tar.file(f"f{i:03d}", b"x")
    data = tar.build()
    result = apply_bytes(rootfs, data, on_progress=lambda n, b: calls.append((n, b)))
    every = PROGRESS_EVERY
    assert [n for n, _ in calls] == [*range(1, every), every, 2 * every, 3 * every, 200]
    assert calls[-1][1] <= result.size


def test_a_layer_of_a_multiple_of_the_sample_gets_no_repeated_last_sample(rootfs: Path) -> None:
    calls: list[int] = []
    tar = Tar()
    for i in range(2 * PROGRESS_EVERY):
        tar.file(f"f{i:03d}", b"x")
    apply_bytes(rootfs, tar.build(), on_progress=lambda n, b: calls.append(n))
    assert calls[-2:] == [PROGRESS_EVERY, 2 * PROGRESS_EVERY]


def test_failure_names_the_entry_as_written_in_the_tar(rootfs: Path) -> None:
    data = Tar().file("a", b"x").file("etc/../../a/b", b"y").build()
    with raises_naming(UnpackError, '"etc/../../a/b"'):
        apply_bytes(rootfs, data)


def test_a_line_break_in_an_entry_name_is_escaped_in_the_error(rootfs: Path) -> None:
    """A name is data: it must not split the one-line message (it did, through quote())."""
    with raises_naming(InvalidArchive, '"evil\\nctrpy: error: fake"', '"to\\rthe\\u2028end"') as info:
        apply_bytes(rootfs, Tar().hardlink("evil\nctrpy: error: fake", "to\rthe\u2028end").build())
    assert len(str(info.value).splitlines()) == 1


def test_a_4_kb_entry_name_is_shortened_in_the_error(rootfs: Path) -> None:
    name = "start/" + "x/" * 2048 + "end"
    with raises_naming(InvalidArchive, '"start/x/x', 'x/x/end"') as info:
        apply_bytes(rootfs, Tar().hardlink("link", name).build())
    assert len(str(info.value)) < 400


def test_missing_root_is_an_unpack_error(tmp_path: Path) -> None:
    with raises_naming(UnpackError, str(tmp_path / "missing")):
        apply_layer(tmp_path / "missing", io.BytesIO(sample()))


def test_times_beyond_what_the_system_can_store_are_invalid(rootfs: Path) -> None:
    data = Tar().file("f", b"x", pax={"mtime": "9" * 30}).build()
    with raises_naming(InvalidArchive, '"f"'):
        apply_bytes(rootfs, data)


def test_read_errors_of_the_stream_are_unpack_errors(rootfs: Path) -> None:
    class Failing(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
            raise OSError(5, "Input/output error")

    with raises_naming(UnpackError, "Input/output error"):
        apply_layer(rootfs, Failing())  # type: ignore[arg-type]


def test_unknown_whiteout_mode_is_an_invalid_argument(rootfs: Path) -> None:
    with raises_naming(InvalidArgument, "aufs", "delete", "overlay"):
        apply_bytes(rootfs, sample(), whiteouts="aufs")
