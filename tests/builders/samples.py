"""Sample inputs and spec checks for the builders' self-tests (stdlib only, like the builders)."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from typing import Any

from .layers import Entry, chardev, decompress, dir, fifo, file, hardlink, opaque, symlink, whiteout
from .oci import MT_DOCKER_CONFIG, MT_DOCKER_MANIFEST, MT_OCI_CONFIG, MT_OCI_MANIFEST, Image


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def raw_names(archive: bytes) -> list[str]:
    """Member names exactly as written in the headers (tarfile strips a dir's trailing '/')."""
    out = []
    with tarfile.open(fileobj=io.BytesIO(decompress(archive)), mode="r:") as tf:
        for ti in tf:
            out.append(ti.name + "/" if ti.isdir() else ti.name)
    return out


def sample_entries() -> list[Entry]:
    return [
        dir("etc"),
        file("etc/hello", b"hello\n"),
        file("bin/tool", b"\x7fELF" + bytes(300), 0o755, uid=1000, gid=1000),
        symlink("etc/link", "/etc/hello"),
        hardlink("etc/hard", "etc/hello"),
        chardev("dev/null", 1, 3),
        fifo("run/pipe"),
        file("etc/caps", b"", xattrs={"security.capability": b"\x01\x00\x00\x02\xff", "user.t": b"v"}),
        file("x" * 150 + "/long", b"long name"),
        whiteout("var/cache"),
        opaque("opt"),
    ]


def sample_image(**kw: Any) -> Image:
    return Image(
        [
            [dir("etc"), file("etc/hello", b"hello\n")],
            [file("bin/tool", b"tool" * 100, 0o755), whiteout("etc/hello")],
        ],
        **kw,
    )


def check_image(blobs: dict[str, bytes], manifest_digest: str) -> dict[str, Any]:
    """Walk manifest -> config + layers over a name->bytes map; check image-spec essentials."""
    mdata = blobs[manifest_digest]
    assert sha(mdata) == manifest_digest
    m: dict[str, Any] = json.loads(mdata)
    assert m["schemaVersion"] == 2
    assert m["mediaType"] in (MT_OCI_MANIFEST, MT_DOCKER_MANIFEST)
    cd = m["config"]
    cdata = blobs[cd["digest"]]
    assert sha(cdata) == cd["digest"] and len(cdata) == cd["size"]
    assert cd["mediaType"] in (MT_OCI_CONFIG, MT_DOCKER_CONFIG)
    cfg = json.loads(cdata)
    assert cfg["rootfs"]["type"] == "layers"
    assert cfg["architecture"] and cfg["os"]
    diffs = []
    for ld in m["layers"]:
        ldata = blobs[ld["digest"]]
        assert sha(ldata) == ld["digest"] and len(ldata) == ld["size"]
        diffs.append(sha(decompress(ldata)))
    assert cfg["rootfs"]["diff_ids"] == diffs
    return m


def dup_image() -> Image:
    return Image([[file("a", b"1")], [file("b", b"2")], [file("a", b"1")]], config_extra={"author": "dup"})


