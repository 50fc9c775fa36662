"""Build examples/hello.tar: a tiny two-layer OCI image archive, byte-reproducible.

Only the standard library is used, so the archive can be rebuilt anywhere:
    python examples/make_example.py examples/hello.tar
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import sys
import tarfile
from typing import Any

MTIME = 1_700_000_000


def _tar(entries: list[tuple[str, str, bytes | str]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for kind, name, payload in entries:
            ti = tarfile.TarInfo(name)
            ti.mtime = MTIME
            if kind == "dir":
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(ti)
            elif kind == "symlink":
                ti.type, ti.mode, ti.linkname = tarfile.SYMTYPE, 0o777, str(payload)
                tf.addfile(ti)
            else:
                data = payload if isinstance(payload, bytes) else payload.encode()
                ti.size, ti.mode = len(data), 0o755 if kind == "exec" else 0o644
                tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=9, mtime=0)


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def build() -> bytes:
    layer1 = _tar([
        ("dir", "etc", b""),
        ("file", "etc/motd", "Hello from a ctrpy example image.\n"),
        ("file", "etc/old.conf", "replaced by the next layer\n"),
        ("dir", "bin", b""),
        ("exec", "bin/hello", "#!/bin/sh\necho hello\n"),
        ("symlink", "bin/hi", "hello"),
    ])
    layer2 = _tar([
        ("dir", "etc", b""),
        ("file", "etc/.wh.old.conf", b""),
        ("file", "etc/new.conf", "greeting=hello\n"),
    ])
    layers = [layer1, layer2]
    blobs_gz = [_gzip(x) for x in layers]
    config = _json({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/hello"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [_digest(x) for x in layers]},
        "history": [{"created_by": "make_example.py layer 1"}, {"created_by": "make_example.py layer 2"}],
    })
    manifest = _json({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": _digest(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": _digest(b), "size": len(b)} for b in blobs_gz],
    })
    index = _json({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": _digest(manifest), "size": len(manifest),
            "platform": {"architecture": "amd64", "os": "linux"},
            "annotations": {"org.opencontainers.image.ref.name": "latest"},
        }],
    })
    files = {"oci-layout": _json({"imageLayoutVersion": "1.0.0"}), "index.json": index}
    for blob in (config, manifest, *blobs_gz):
        files["blobs/sha256/" + _digest(blob)[7:]] = blob
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name in sorted(files):
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode, ti.mtime = len(files[name]), 0o444, 0
            tf.addfile(ti, io.BytesIO(files[name]))
    return buf.getvalue()


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else "examples/hello.tar"
    with open(out, "wb") as f:
        f.write(build())
    print(out)
