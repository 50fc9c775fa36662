"""Big reproducible images for benchmarks and streaming tests: layers of random files
generated lazily into temp files, never held in memory."""

from __future__ import annotations

import hashlib
import os
import random
import tempfile
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from .layers import (
    Compression,
    Entry,
    TarStream,
    Writable,
    compressing_writer,
)
from .oci import DEFAULT_ENV, LAYER_MEDIA_TYPES, FileBlob, Image, LayerSpec, MediaFamily

__all__ = ["GeneratedLayer", "big_image"]


@dataclass
class _BigFile:
    name: str
    size: int


class GeneratedLayer:
    """A large reproducible layer of random files, materialised lazily into a temp file (one
    per compression), so archives can be streamed to disk without holding it in memory."""

    def __init__(
        self,
        files: Sequence[_BigFile],
        dirs: Sequence[str],
        seed: int,
        *,
        compressible: float = 0.1,
        level: int | None = None,
        workdir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.files = list(files)
        self.dirs = list(dirs)
        self.seed = seed
        self.compressible = compressible
        self.level = level
        self.workdir = workdir
        self._built: dict[str, tuple[FileBlob, str]] = {}

    @property
    def uncompressed_payload(self) -> int:
        return sum(f.size for f in self.files)

    def entries(self) -> Iterator[Entry]:
        for d in self.dirs:
            yield Entry(d, "dir", mode=0o755)
        for i, f in enumerate(self.files):
            yield Entry(
                f.name, "file", mode=0o644, source=_RandomSource(f.size, self.seed, i, self.compressible)
            )

    def materialize(self, compression: Compression, family: MediaFamily = "oci") -> tuple[FileBlob, str]:
        """(blob on disk, diffID) for this compression; generated once."""
        if compression not in self._built:
            fd, path = tempfile.mkstemp(prefix="ctrpy-big-layer-", suffix=".blob", dir=self.workdir)
            with os.fdopen(fd, "wb") as raw:
                blob_hash = _HashingWriter(raw)
                comp = compressing_writer(blob_hash, compression, level=self.level)
                tar_hash = _HashingWriter(comp)
                ts = TarStream(tar_hash)
                for e in self.entries():
                    ts.add(e)
                ts.close()
                comp.close()
            holder = _TempFile(path)
            blob = FileBlob(
                LAYER_MEDIA_TYPES[("oci", compression)],
                path,
                "sha256:" + blob_hash.h.hexdigest(),
                blob_hash.n,
                holder,
            )
            self._built[compression] = (blob, "sha256:" + tar_hash.h.hexdigest())
        blob, diff = self._built[compression]
        mt = LAYER_MEDIA_TYPES[(family, compression)]
        return FileBlob(mt, blob.path, blob.digest, blob.size, blob.owner), diff


def _unlink(path: str) -> None:
    Path(path).unlink(missing_ok=True)


class _TempFile:
    """Owns a temp file: removed when the last FileBlob/layer referring to it is gone."""

    def __init__(self, path: str) -> None:
        self.path = path
        weakref.finalize(self, _unlink, path)


class _HashingWriter:
    def __init__(self, out: Writable) -> None:
        self.out = out
        self.h = hashlib.sha256()
        self.n = 0

    def write(self, b: bytes, /) -> int:
        self.h.update(b)
        self.n += len(b)
        self.out.write(b)
        return len(b)

    def flush(self) -> None:
        pass


class _RandomSource:
    """Reproducible pseudo-random file content: mostly random bytes, a ``compressible``
    fraction of zeros per 64 KiB chunk."""

    def __init__(self, size: int, seed: int, index: int, compressible: float) -> None:
        self._size = size
        self.seed = seed
        self.index = index
        self.compressible = compressible

    @property
    def size(self) -> int:
        return self._size

    def chunks(self) -> Iterator[bytes]:
        rng = random.Random(self.seed * 1_000_003 + self.index)
        left = self._size
        step = 1 << 16
        while left > 0:
            n = min(step, left)
            z = int(n * self.compressible)  # the same fraction of every chunk, short ones too
            yield rng.randbytes(n - z) + bytes(z)
            left -= n






# ---------------------------------------------------------------------------------------------
# big images for benchmarks


def big_image(
    total_bytes: int,
    files: int,
    seed: int,
    *,
    layers: int = 1,
    compression: Compression = "gzip",
    level: int | None = 1,
    compressible: float = 0.1,
    files_per_dir: int = 256,
    workdir: str | os.PathLike[str] | None = None,
) -> Image:
    """A reproducible image with ``files`` files totalling ``total_bytes`` of pseudo-random
    content (a ``compressible`` fraction is zeros), spread over ``layers`` layers and
    directories of ``files_per_dir``. Layers are generated lazily, streamed into temp files
    under ``workdir`` (deleted when the layer object is collected): write archives with
    :meth:`OCILayout.write_tar` / ``write_docker_save_tar`` to stay out of memory.
    """
    if files < 1 or layers < 1:
        raise ValueError("need at least one file and one layer")
    rng = random.Random(seed)
    weights = [rng.uniform(0.5, 1.5) for _ in range(files)]
    scale = total_bytes / sum(weights)
    sizes = [int(w * scale) for w in weights]
    sizes[-1] += total_bytes - sum(sizes)
    per_layer: list[list[_BigFile]] = [[] for _ in range(layers)]
    for i, size in enumerate(sizes):
        d = f"data/d{i // files_per_dir:04d}"
        per_layer[i * layers // files].append(_BigFile(f"{d}/f{i:07d}.bin", size))
    out: list[LayerSpec] = []
    for li, fs in enumerate(per_layer):
        dirs = ["data", *sorted({f.name.rsplit("/", 1)[0] for f in fs})]
        out.append(
            GeneratedLayer(
                fs, dirs, seed * 7919 + li, compressible=compressible, level=level, workdir=workdir
            )
        )
    return Image(
        out,
        compression=compression,
        config_extra={"config": {"Env": list(DEFAULT_ENV), "Labels": {"ctrpy.bench.seed": str(seed)}}},
    )
