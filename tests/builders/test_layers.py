"""Self-checks of the layer builders: entries, tar writing, compression. The builders are the
oracle, so they must be right on their own terms: output is deterministic, and every
"broken" knob breaks exactly what it says."""

from __future__ import annotations

import gzip
import tarfile

import pytest
import zstandard

from tests.builders import Entry, compress, decompress, file, layer_tar, opaque, read_tar, symlink, whiteout
from tests.builders.samples import raw_names, sample_entries

# ---------------------------------------------------------------------------------------------
# layers


def test_layer_tar_roundtrip_and_order() -> None:
    entries = sample_entries()
    data = layer_tar(entries)
    members = read_tar(data)
    assert [ti.name for ti, _ in members] == [e.name.rstrip("/") for e in entries]
    by = {ti.name: (ti, body) for ti, body in members}
    assert by["etc"][0].isdir() and by["etc"][0].mode == 0o755
    assert by["etc/hello"][1] == b"hello\n" and by["etc/hello"][0].mode == 0o644
    tool = by["bin/tool"][0]
    assert (tool.mode, tool.uid, tool.gid, tool.mtime) == (0o755, 1000, 1000, 1_600_000_000)
    assert by["etc/link"][0].issym() and by["etc/link"][0].linkname == "/etc/hello"
    assert by["etc/hard"][0].islnk() and by["etc/hard"][0].linkname == "etc/hello"
    dev = by["dev/null"][0]
    assert dev.ischr() and (dev.devmajor, dev.devminor) == (1, 3)
    assert by["run/pipe"][0].isfifo()
    pax = by["etc/caps"][0].pax_headers
    assert pax["SCHILY.xattr.user.t"] == "v"
    assert (
        pax["SCHILY.xattr.security.capability"].encode("utf-8", "surrogateescape") == b"\x01\x00\x00\x02\xff"
    )
    assert by["x" * 150 + "/long"][1] == b"long name"
    assert "var/.wh.cache" in by and "opt/.wh..wh..opq" in by
    # directories carry a trailing slash in the header, as Go writes them
    assert raw_names(data)[0] == "etc/"


def test_layer_tar_deterministic_go_style_end() -> None:
    a = layer_tar(sample_entries())
    assert a == layer_tar(sample_entries())
    assert len(a) % 512 == 0
    assert a.endswith(bytes(1024)) and not a.endswith(bytes(1536))  # Go: no record padding
    padded = layer_tar(sample_entries(), pad_to_record=True)
    assert len(padded) % 10240 == 0 and padded.startswith(a[:-1024])
    no_eof = layer_tar([file("a", b"1")], eof=False)
    assert len(no_eof) == 1024 and not no_eof.endswith(bytes(512))


def test_entry_helpers_names() -> None:
    assert whiteout("a/b/c").name == "a/b/.wh.c"
    assert whiteout("/top").name == ".wh.top"
    assert opaque("a/b/").name == "a/b/.wh..wh..opq"
    assert opaque("").name == ".wh..wh..opq"
    assert symlink("l", "../../etc").mode is None  # default 0o777 at write time
    ti = read_tar(layer_tar([symlink("l", "t")]))[0][0]
    assert ti.mode == 0o777


def test_lying_size_and_raw_names() -> None:
    data = layer_tar([Entry("../evil", data=b"x"), Entry("/abs/file", data=b"y")])
    assert raw_names(data) == ["../evil", "/abs/file"]
    lying = layer_tar([Entry("f", data=b"abc", size=1000)], eof=False)
    assert len(lying) == 1024  # header + the real 3 bytes padded, no end-of-archive
    assert tarfile.TarInfo.frombuf(lying[:512], "utf-8", "surrogateescape").size == 1000


@pytest.mark.parametrize("kind", ["gzip", "zstd", "none"])
def test_compress_roundtrip_deterministic(kind: str) -> None:
    data = layer_tar(sample_entries())
    c = compress(data, kind)  # type: ignore[arg-type]
    assert c == compress(data, kind)  # type: ignore[arg-type]
    assert decompress(c) == data
    if kind == "gzip":
        assert c[:2] == b"\x1f\x8b" and c[4:8] == bytes(4) and c[9] == 255  # mtime 0, OS unknown
        assert gzip.decompress(c) == data
    if kind == "zstd":
        assert zstandard.ZstdDecompressor().decompress(c) == data




def test_a_bomb_layer_inflates_to_its_size_and_its_diff_id_is_honest() -> None:
    import hashlib

    from tests.builders import BombLayer

    size = (64 << 20) + (3 << 20) + 512  # one whole 64 MiB member, and a remainder
    blob, diff_id = BombLayer(size, file_size=1 << 20).materialize("gzip")
    assert blob.size < size // 500
    h, n = hashlib.sha256(), 0
    with gzip.open(blob.path, "rb") as f:  # member after member, a MiB at a time
        head = f.read(512)
        h.update(head)
        n += len(head)
        while chunk := f.read(1 << 20):
            h.update(chunk)
            n += len(chunk)
    assert n == size and "sha256:" + h.hexdigest() == diff_id
    assert head[:4] == b"bomb" and head[124:136] == b"%011o\0" % (1 << 20)
