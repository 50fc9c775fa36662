"""The tar reader and the decompressors under it: any bytes are read to their end or
refused as an InvalidArchive, never another exception."""

from __future__ import annotations

import io

from hypothesis import given
from hypothesis import strategies as st

from ctrpy.archive.compression import open_decompressed
from ctrpy.archive.tar import iter_tar
from ctrpy.errors import InvalidArchive
from tests.builders import compress
from tests.fuzz.strategies import fuzz, hostile, raw_tar_streams, tar_streams


def read_everything(stream: io.BufferedIOBase) -> int:
    """Every header and every data byte of a tar stream, in small reads; the entry count."""
    count = 0
    for header, read in iter_tar(stream):  # type: ignore[arg-type]
        left = header.size
        while left:
            left -= len(read(min(left, 1 << 16)))
        count += 1
    return count


@fuzz(400)
@given(st.one_of(tar_streams(), raw_tar_streams()))
def test_any_tar_stream_is_read_or_refused_as_invalid(data: bytes) -> None:
    try:
        read_everything(io.BytesIO(data))
    except InvalidArchive:
        pass


@st.composite
def compressed_streams(draw: st.DrawFn) -> bytes:
    data = draw(tar_streams(max_entries=4))
    return draw(hostile(compress(data, draw(st.sampled_from(["gzip", "zstd"])))))


@fuzz(200)
@given(compressed_streams())
def test_any_compressed_stream_is_decompressed_or_refused_as_invalid(data: bytes) -> None:
    try:
        _kind, stream = open_decompressed(io.BytesIO(data))
        read_everything(stream)  # type: ignore[arg-type]
    except InvalidArchive:
        pass
