"""Hypothesis strategies for hostile input, and the settings every fuzz target runs with.

What they generate (built with the independent archive builders of ``tests.builders``):

- ``entries()``: layer entries of every tar type (files, dirs, symlinks, hardlinks,
  devices, fifos, raw type flags such as GNU long names, pax headers and unknown ones) with
  names drawn from the components attackers use (``..``, ``/``, whiteouts, 300-byte
  components, 4 KB paths, line breaks, non-UTF-8), link targets that climb out or loop,
  lying sizes, out-of-range uids/gids/device numbers/times, xattrs and pax records
  (sparse maps included);
- ``tar_streams()``: those entries written as ustar, GNU or pax tars, then ``hostile()``:
  cut anywhere, bytes flipped, a header field overwritten with a valid checksum, garbage
  appended; ``raw_tar_streams()``: headers made field by field from random bytes;
- ``json_documents()``: an index, manifest or config with one field replaced by random
  JSON, deleted, or given the wrong type;
- ``oci_archives()`` and ``docker_archives()``: whole archives of one or two images whose
  JSON, members and order are broken in those ways (blobs left out, tampered, duplicated
  with different bytes, symlinked, nested indexes, a whole-archive gzip/zstd, cuts).

``fuzz(n)`` gives the settings: in ``make test`` (CI) ``n`` examples, derandomized (a fixed
seed per test), no example database, no deadline; ``CTRPY_FUZZ_SCALE=K`` (``make fuzz``)
runs ``K * n`` random examples and keeps failures in ``.hypothesis/``.
"""

from __future__ import annotations

import json
import os
import tarfile
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from tests.builders import (
    ANNOTATION_IMAGE_NAME,
    ANNOTATION_REF_NAME,
    MT_DOCKER_LAYER,
    MT_OCI_CONFIG,
    MT_OCI_INDEX,
    MT_OCI_LAYER,
    MT_OCI_LAYER_GZIP,
    MT_OCI_MANIFEST,
    Entry,
    Image,
    Layer,
    OCILayout,
    docker_save_tar,
    header_checksum,
    index_of,
    layer_tar,
    pax_header,
    raw_header,
    sha256_digest,
)
from tests.helpers import HOST

SCALE = int(os.environ.get("CTRPY_FUZZ_SCALE", "1"))


def fuzz(examples: int, *, shared_fixture: bool = False) -> settings:
    """The settings of a fuzz target worth ``examples`` examples in CI.  ``shared_fixture``:
    the test uses a function-scoped fixture on purpose (one store for all its examples)."""
    ci = SCALE <= 1
    quiet = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
             HealthCheck.large_base_example]
    if shared_fixture:
        quiet.append(HealthCheck.function_scoped_fixture)
    return settings(
        max_examples=examples * max(SCALE, 1),
        deadline=None,
        derandomize=ci,
        database=None if ci else settings.default.database,
        print_blob=True,
        suppress_health_check=quiet,
    )


# --------------------------------------------------------------------------- names
COMPONENTS = st.sampled_from([
    "a", "b", "etc", "bin", "..", ".", "", "...", ".wh.a", ".wh.b", ".wh..wh..opq", ".wh..", ".wh...",
    ".wh..wh.plnk", "n" * 255, "n" * 300, "données", "a\nb", "a b", "-", "\\", "lost+found",
])
_RAW_NAMES = st.sampled_from([
    "/", "//", "./", "../../..", "/etc/passwd", "a/" * 2048 + "deep", "x" * 4096, os.fsdecode(b"latin1-\xe9"),
    "../outside", "../outside/sentinel", "/../outside/subdir", "../../outside/subdir/x",
])


_PREFIXES = st.sampled_from(["", "", "", "/", "./", "../"])
_SUFFIXES = st.sampled_from(["", "", "", "/"])
_COMPONENT_LISTS = st.lists(COMPONENTS, min_size=1, max_size=4)
_ONE_IN_TEN = st.integers(0, 9)


@st.composite
def names(draw: st.DrawFn) -> str:
    """A tar name as an attacker writes it."""
    if draw(_ONE_IN_TEN) == 0:
        return draw(_RAW_NAMES)
    return draw(_PREFIXES) + "/".join(draw(_COMPONENT_LISTS)) + draw(_SUFFIXES)


NAMES = names()


# --------------------------------------------------------------------------- entries
_MODES = st.sampled_from([0o644, 0o755, 0o600, 0, 0o777, 0o4755, 0o2755, 0o1777, 0o7777, 0o444])
_IDS = st.sampled_from([0, 0, 0, 1, 1000, 65534, 2**21 - 1, 2**31 - 1, 2**32 - 1, 2**32, 2**40])
_DEVS = st.sampled_from([0, 1, 3, 7, 4095, 4096, 2**20 - 1, 2**20, 2**21 - 1])
_TIMES = st.sampled_from([0, 1_600_000_000, -1, -(2**33), 2**33, 2**40, 2**62])
_XATTRS = st.sampled_from([
    {}, {}, {}, {"user.a": b"v"}, {"trusted.overlay.opaque": b"y"}, {"security.capability": b"\x01\x02"},
    {"user." + "k" * 300: b"v"}, {"": b""}, {"user.big": b"v" * 70000},
])
_PAX = st.sampled_from([
    {}, {}, {}, {"path": "pax/name"}, {"linkpath": "/etc/shadow"}, {"size": "-1"}, {"size": "99999999999"},
    {"uid": "-5"}, {"mtime": "1e9"}, {"atime": "12.5"},
    {"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": "sparse", "GNU.sparse.realsize": "4096"},
    {"GNU.sparse.map": "0,5,100,5", "GNU.sparse.size": "200"},
    {"GNU.sparse.offset": "0", "GNU.sparse.numbytes": "99"},
])
_RAW_TYPES = st.sampled_from([b"7", b"D", b"V", b"M", b"N", b"S", b"Z", b"L", b"K", b"x", b"g", b"\0", b"0"])
_DATA = st.one_of(
    st.just(b""), st.binary(max_size=64), st.just(b"1\n0\n5\n" + b"x" * 5), st.just(b"9 path=a\n"),
    st.just(b"%d path=%s\n" % (len("path=") + 4 + 4000, b"p" * 4000)),
)


_KINDS = st.sampled_from(["file", "file", "dir", "dir", "symlink", "hardlink", "char", "block", "fifo", "raw"])
_LIES = st.sampled_from([None, None, None, 0, 1, 513, 2**33])


@st.composite
def entries(draw: st.DrawFn) -> Entry:
    """One layer entry of any type, hostile in its name, target, numbers or extensions."""
    kind = draw(_KINDS)
    common: dict[str, Any] = {
        "name": draw(NAMES),
        "mode": draw(_MODES),
        "uid": draw(_IDS),
        "gid": draw(_IDS),
        "mtime": draw(_TIMES),
        "xattrs": dict(draw(_XATTRS)),
        "pax": dict(draw(_PAX)),
    }
    if kind == "file":
        data = draw(_DATA)
        lie = draw(_LIES)
        return Entry(type="file", data=data, size=None if lie is None else lie and len(data) + lie, **common)
    if kind in ("symlink", "hardlink"):
        target = common["name"] if draw(_ONE_IN_TEN) == 0 else draw(NAMES)  # 1 in 10 links to itself
        return Entry(type=kind, linkname=target, **common)
    if kind in ("char", "block"):
        return Entry(type=kind, devmajor=draw(_DEVS), devminor=draw(_DEVS), **common)
    if kind == "raw":
        return Entry(type=draw(_RAW_TYPES), data=draw(_DATA), **common)
    return Entry(type=kind, **common)


ENTRIES = entries()


def _tar(items: list[Entry], fmt: int) -> bytes:
    """The entries as a tar; what a format cannot hold is written as pax (then GNU, then
    dropped): the builders refuse what no tar writer makes."""
    out: list[Entry] = []
    for e in items:
        for f in (fmt, tarfile.PAX_FORMAT, tarfile.GNU_FORMAT):
            try:
                layer_tar([e], format=f, eof=False)  # type: ignore[arg-type]
            except (ValueError, tarfile.HeaderError, UnicodeError, OverflowError):
                continue
            out.append(e)
            fmt = f
            break
    return b"".join(layer_tar([e], format=fmt, eof=False) for e in out) + bytes(1024)  # type: ignore[arg-type]


FORMATS = st.sampled_from([tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT])

# header fields (offset, length) worth overwriting: name, mode, uid, gid, size, mtime,
# typeflag, linkname, magic+version, devmajor, devminor, prefix
_FIELDS = [(0, 100), (100, 8), (108, 8), (116, 8), (124, 12), (136, 12), (156, 1), (157, 100), (257, 8),
           (329, 8), (337, 8), (345, 155)]
_FIELD_VALUES = st.one_of(
    st.binary(max_size=12),
    st.sampled_from([b"\x80" + b"\xff" * 11, b"\xff" * 12, b"\x80\x00\x00\x00\x00\x00\x00\x01",
                     b"77777777777\0", b"-1", b"0x10", b"1 2", b"\0" * 12, b"ustar  \0", b"ustar\x0000"]),
)


def _header_offsets(data: bytes) -> list[int]:
    """Where blocks whose checksum is right start (the headers, as a reader finds them)."""
    out = []
    for off in range(0, len(data) - 511, 512):
        block = data[off : off + 512]
        if block[148:156] == header_checksum(block[:148] + b" " * 8 + block[156:]):
            out.append(off)
    return out


_HOW = st.sampled_from(["whole", "whole", "cut", "flip", "field", "field", "trailing"])
_TRAILING = st.sampled_from([b"junk", bytes(512) + b"x", b"\0" * 10240, b"\x1f\x8b\x08"])
_FIELD_CHOICE = st.sampled_from(_FIELDS)


@st.composite
def hostile(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` as it arrives from an attacker: whole, cut, flipped, with one header field
    overwritten (and its checksum fixed, so the reader believes it), or with garbage after."""
    how = draw(_HOW)
    if how == "cut" and data:
        return data[: draw(st.integers(0, len(data) - 1))]
    if how == "flip" and data:
        at = draw(st.integers(0, len(data) - 1))
        return data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1 :]
    if how == "field":
        headers = _header_offsets(data)
        if headers:
            off = draw(st.sampled_from(headers))
            start, length = draw(_FIELD_CHOICE)
            value = draw(_FIELD_VALUES)[:length].ljust(length, b"\0")
            block = bytearray(data[off : off + 512])
            block[start : start + length] = value
            block[148:156] = b" " * 8
            block[148:156] = header_checksum(block)
            return data[:off] + bytes(block) + data[off + 512 :]
    if how == "trailing":
        return data + draw(_TRAILING)
    return data


@st.composite
def tar_streams(draw: st.DrawFn, max_entries: int = 8) -> bytes:
    """A layer tar of hostile entries, then hostile bytes."""
    items = draw(st.lists(ENTRIES, max_size=max_entries))
    return draw(hostile(_tar(items, draw(FORMATS))))


@st.composite
def raw_tar_streams(draw: st.DrawFn) -> bytes:
    """Headers built field by field from random bytes (valid checksums), pax headers with
    random records, payloads, and zero blocks: what no tar writer makes."""
    out = b""
    for _ in range(draw(st.integers(1, 5))):
        what = draw(st.sampled_from(["header", "header", "pax", "zeros", "payload"]))
        if what == "header":
            out += raw_header(
                draw(st.binary(min_size=1, max_size=100)),
                kind=draw(st.binary(min_size=1, max_size=1)),
                size=draw(st.sampled_from([0, 1, 511, 512, 513, 4096, 8**11 - 1])),
                mode=draw(_FIELD_VALUES)[:8].ljust(8, b"\0"),
                uid=draw(_FIELD_VALUES)[:8].ljust(8, b"\0"),
                linkname=draw(st.binary(max_size=100)),
                magic=draw(st.sampled_from([b"ustar\x0000", b"ustar  \0", b"\0" * 8, b"garbage!"])),
            )
        elif what == "pax":
            records = draw(st.dictionaries(st.sampled_from(["path", "linkpath", "size", "uid", "gid", "mtime",
                                                            "GNU.sparse.map", "GNU.sparse.size",
                                                            "GNU.sparse.major", "SCHILY.xattr.user.x", "x"]),
                                           st.text(max_size=12), max_size=4))
            out += pax_header(records, kind=draw(st.sampled_from([b"x", b"g", b"X"])))
        elif what == "zeros":
            out += bytes(512 * draw(st.integers(1, 3)))
        else:
            out += draw(st.binary(max_size=1024))
    return out


# --------------------------------------------------------------------------- layers that apply
_PLAIN = st.builds(
    lambda kind, name, target, data: Entry(
        name, kind, data=data if kind == "file" else b"", linkname=target if kind in ("symlink", "hardlink") else "",
    ),
    st.sampled_from(["file", "file", "dir", "symlink", "hardlink"]),
    st.lists(st.sampled_from(["a", "b", "c", "..", ".wh.a", ".wh..wh..opq"]), min_size=1, max_size=3).map("/".join),
    st.sampled_from(["a", "b", "a/b", "/", "../../..", "/etc", "c/../..", "../outside", "../outside/sentinel"]),
    st.binary(max_size=16),
)
_LAYER_ENTRIES = st.lists(st.one_of(_PLAIN, _PLAIN, _PLAIN, ENTRIES), max_size=10)
_ONE_IN_FIVE = st.integers(0, 4)


@st.composite
def layers(draw: st.DrawFn) -> bytes:
    """A layer mostly made of entries that apply (plain names, ordinary modes, some links
    that climb out, whiteouts), so a fuzzed image gets past its first entry: a tar of them,
    and sometimes a hostile entry or hostile bytes."""
    data = _tar(draw(_LAYER_ENTRIES), tarfile.PAX_FORMAT)
    return draw(hostile(data)) if draw(_ONE_IN_FIVE) == 0 else data


@st.composite
def _clean_layer(draw: st.DrawFn) -> bytes:
    """A layer that applies: directories, files, symlinks (climbing out: they are clamped),
    hardlinks to files written before, whiteouts of what a lower layer may have."""
    items: list[Entry] = []
    files: list[str] = []
    for kind, name, target, data in draw(_CLEAN_ITEMS):
        parent = name.rpartition("/")[0]
        if parent and parent not in {e.name for e in items if e.type == "dir"}:
            items.append(Entry(parent, "dir"))
        if kind == "hardlink":
            if not files:
                continue
            items.append(Entry(name, "hardlink", linkname=files[data[0] % len(files)] if data else files[0]))
        elif kind == "symlink":
            items.append(Entry(name, "symlink", linkname=target))
        elif kind == "whiteout":
            items.append(Entry(f"{parent}/.wh.{name.rpartition('/')[2]}" if parent else f".wh.{name}", "file"))
        else:
            items.append(Entry(name, "file", data=data))
            files.append(name)
    return _tar(items, tarfile.PAX_FORMAT)


_CLEAN_ITEMS = st.lists(st.tuples(
    st.sampled_from(["file", "file", "file", "symlink", "hardlink", "whiteout"]),
    st.sampled_from(["a", "b", "d/a", "d/b", "d/e/f", "etc/x"]),
    st.sampled_from(["a", "/etc", "../../..", "../outside", "d/e", "/"]),
    st.binary(max_size=16),
), max_size=8)
CLEAN_LAYERS = _clean_layer()


# --------------------------------------------------------------------------- JSON
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=8)
    | st.sampled_from([MT_OCI_INDEX, MT_OCI_MANIFEST, MT_OCI_CONFIG, MT_OCI_LAYER_GZIP, "sha256:" + "0" * 64,
                       "sha512:" + "a" * 128, "sha256:../../x", "linux", HOST.architecture, "layers"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*prefix, i))
    return out


@st.composite
def mutated(draw: st.DrawFn, obj: Any) -> Any:
    """``obj`` (JSON) with one value replaced by random JSON or removed; or untouched."""
    if draw(st.integers(0, 3)) == 0:
        return obj
    obj = json.loads(json.dumps(obj))
    path = draw(st.sampled_from(_paths(obj)))
    if not path:
        return draw(JSON_VALUES)
    parent = obj
    for key in path[:-1]:
        parent = parent[key]
    if draw(st.booleans()) and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(JSON_VALUES)
    return obj


@st.composite
def json_documents(draw: st.DrawFn, obj: Any) -> bytes:
    """``obj`` mutated, serialised; or invalid JSON bytes (cut, nested deep, not UTF-8)."""
    data = json.dumps(draw(mutated(obj))).encode()
    how = draw(st.sampled_from(["json"] * 6 + ["cut", "deep", "binary"]))
    if how == "cut":
        return data[: draw(st.integers(0, max(len(data) - 1, 0)))]
    if how == "deep":
        return b"[" * draw(st.sampled_from([10, 1000, 100_000])) + b"]" * 10
    if how == "binary":
        return draw(st.binary(max_size=32))
    return data


# --------------------------------------------------------------------------- archives
_ANNOTATIONS = st.sampled_from([
    {ANNOTATION_IMAGE_NAME: "docker.io/fuzz/app:1"}, {ANNOTATION_REF_NAME: "v1"}, {ANNOTATION_REF_NAME: "x/y:z"},
    {}, {ANNOTATION_IMAGE_NAME: "UPPER/case"}, {ANNOTATION_IMAGE_NAME: ""}, {ANNOTATION_REF_NAME: "a\nb"},
    {ANNOTATION_IMAGE_NAME: "fuzz/" + "n" * 300 + ":1"},
])


_IMAGE_FLAWS = st.sampled_from(["none"] * 5 + ["config", "manifest"])
_LAYER_FLAWS = st.sampled_from(["none"] * 6 + ["lie", "media", "garbage"])
_IMAGE_LAYERS = st.lists(st.one_of(CLEAN_LAYERS, CLEAN_LAYERS, CLEAN_LAYERS, layers()), max_size=3)


@st.composite
def images(draw: st.DrawFn) -> Image:
    """A host image of fuzzed layers (a layer may lie about its diffID or media type, or be
    garbage), its config or manifest sometimes mutated."""
    specs: list[Any] = []
    for data in draw(_IMAGE_LAYERS):
        flaw = draw(_LAYER_FLAWS)
        if flaw == "lie":
            specs.append(Layer(data, diff_id=sha256_digest(b"a lie")))
        elif flaw == "media":
            specs.append(Layer(data, media_type=draw(st.sampled_from([MT_OCI_LAYER, MT_DOCKER_LAYER,
                                                                       "application/octet-stream"]))))
        elif flaw == "garbage":
            specs.append(Layer(blob=b"\x1f\x8b\x08" + data[:40], content=data))
        else:
            specs.append(data)
    img = Image(specs, compression=draw(st.sampled_from(["gzip", "zstd", "none"])),
                architecture=HOST.architecture, variant=HOST.variant or None)
    flaw = draw(_IMAGE_FLAWS)
    if flaw == "config":
        img.config_raw = draw(json_documents(img.build().config.json()))
    elif flaw == "manifest":
        img.manifest_raw = draw(json_documents(img.build().manifest.json()))
    return img


_ARCHIVE_FLAWS = st.lists(st.sampled_from(["omit", "tamper", "index", "layout", "extra", "bytes", "compress",
                                           "order"]), max_size=2)
_NESTING = st.sampled_from([0, 0, 0, 1, 2, 50])


@st.composite
def oci_archives(draw: st.DrawFn) -> bytes:
    """An OCI archive: one or two images (maybe under nested indexes), and at most two
    flaws of the archive itself: a blob left out or tampered, index.json or oci-layout
    mutated, extra members (a blob again with other bytes, links, climbing names), hostile
    bytes, a whole-archive gzip/zstd, another member order."""
    flaws = draw(_ARCHIVE_FLAWS)
    layout = OCILayout(layout_version="1.0.0")
    blobs: list[Any] = []
    for _ in range(draw(st.integers(1, 2))):
        item: Any = draw(images()).build()
        blobs.extend(item.blobs())
        for _ in range(draw(_NESTING)):
            item = index_of([item], media_type=draw(st.sampled_from(["oci", "docker-list"])))
            blobs.append(item)
        layout.add_manifest(item, draw(_ANNOTATIONS), platform=draw(st.booleans()))
    digests = [b.digest for b in blobs]
    options: dict[str, Any] = {}
    if "order" in flaws:
        options["order"] = draw(st.sampled_from(["index-first", "index-last", "blobs-reverse"]))
    if "omit" in flaws:
        options["omit_blobs"] = [draw(st.sampled_from(digests))]
    if "tamper" in flaws:
        options["tamper"] = {draw(st.sampled_from(digests)): draw(st.binary(max_size=64))}
    if "index" in flaws:
        options["index_json_override"] = draw(json_documents(json.loads(layout.index_json())))
    if "layout" in flaws:
        options["oci_layout_override"] = draw(json_documents({"imageLayoutVersion": "1.0.0"}))
    if "extra" in flaws:
        options["extra_entries"] = draw(st.lists(_extra_members(digests), min_size=1, max_size=3))
    compression = draw(st.sampled_from(["gzip", "zstd"])) if "compress" in flaws else "none"
    data = layout.tar_bytes(compression=compression, **options)
    return draw(hostile(data)) if "bytes" in flaws else data
@st.composite
def _extra_members(draw: st.DrawFn, digests: list[str]) -> Entry:
    """A member an archive should not have: a blob again with other bytes, a link to a
    blob or out of the archive, a path that climbs out, an index.json again."""
    blob = "blobs/sha256/" + draw(st.sampled_from(digests)).split(":", 1)[1]
    return draw(st.sampled_from([
        Entry(blob, "file", data=b"different bytes"),
        Entry("index.json", "file", data=b'{"schemaVersion": 2, "manifests": []}'),
        Entry("oci-layout", "file", data=b'{"imageLayoutVersion": "9"}'),
        Entry(blob, "symlink", linkname="../../../etc/passwd"),
        Entry("index.json", "symlink", linkname="index.json"),
        Entry("index.json", "hardlink", linkname=blob),
        Entry("../../escape", "file", data=b"x"),
        Entry("blobs/sha256/" + "0" * 64, "file", data=b"not this"),
        Entry("manifest.json", "file", data=b"[]"),
    ]))


_DOCKER_FLAWS = st.lists(st.sampled_from(["manifest.json", "extra", "bytes", "compress", "order"]), max_size=2)
_TAGS = st.sampled_from([["fuzz:1"], ["fuzz:1"], None, [], ["Bad Tag"], ["a:1", "a:1"], ["docker.io/x/y:" + "t" * 200]])


@st.composite
def docker_archives(draw: st.DrawFn) -> bytes:
    """A docker-save archive (classic, docker 25 or podman layout) of one or two images,
    and at most two flaws: manifest.json mutated, an extra member (a second manifest.json,
    a link out or in a loop, JSON nested deep), hostile bytes, a gzip archive, another
    member order."""
    flaws = draw(_DOCKER_FLAWS)
    pairs = [(draw(images()), draw(_TAGS)) for _ in range(draw(st.integers(1, 2)))]
    options: dict[str, Any] = {
        "variant": draw(st.sampled_from(["classic", "docker25", "podman"])),
        "compression_of_layers": draw(st.sampled_from(["none", "none", "gzip", "zstd"])),
    }
    if "order" in flaws:
        options["order"] = draw(st.sampled_from(["sorted", "natural", "manifest-last", "manifest-first"]))
    if "manifest.json" in flaws:
        listing = [{"Config": b.config.hex + ".json", "RepoTags": tags, "Layers": [x.hex + ".tar" for x in b.layers]}
                   for b, tags in ((img.build(), tags) for img, tags in pairs)]
        options["manifest_json_override"] = draw(json_documents(listing))
    if "extra" in flaws:
        options["extra_members"] = [draw(st.sampled_from([
            Entry("manifest.json", "file", data=b"[]"),
            Entry("evil.tar", "symlink", linkname="/etc/passwd"),
            Entry("loop.tar", "symlink", linkname="loop.tar"),
            Entry("hard.tar", "hardlink", linkname="missing.tar"),
            Entry("x.json", "file", data=b"[" * 100_000),
        ]))]
    compression = "gzip" if "compress" in flaws else "none"
    data = docker_save_tar(pairs, compression=compression, **options)
    return draw(hostile(data)) if "bytes" in flaws else data
