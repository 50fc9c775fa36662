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
    HashingWriter,
    TarStream,
    compressing_writer,
    entry_header,
)
from .oci import DEFAULT_ENV, LAYER_MEDIA_TYPES, FileBlob, Image, LayerSpec, MediaFamily

__all__ = ["BombLayer", "GeneratedLayer", "big_image", "empty_files_layer"]


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
                blob_hash = HashingWriter(raw)
                comp = compressing_writer(blob_hash, compression, level=self.level)
                tar_hash = HashingWriter(comp)
                ts = TarStream(tar_hash)
                for e in self.entries():
                    ts.add(e)
                ts.close()
                comp.close()
            holder = _TempFile(path)
            blob = FileBlob(
                LAYER_MEDIA_TYPES[("oci", compression)],
                path,
                blob_hash.digest,
                blob_hash.size,
                holder,
            )
            self._built[compression] = (blob, tar_hash.digest)
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






def empty_files_layer(count: int, per_dir: int = 1000, *, workdir: str | os.PathLike[str] | None = None,
                      ) -> GeneratedLayer:
    """A layer of ``count`` empty files, ``per_dir`` to a directory (``d0000/f0000000``...),
    streamed into a temp file when an image is built."""
    files = [_BigFile(f"d{i // per_dir:04d}/f{i:07d}", 0) for i in range(count)]
    dirs = sorted({f.name.rsplit("/", 1)[0] for f in files})
    return GeneratedLayer(files, dirs, seed=0, workdir=workdir)


_ZEROS_PER_MEMBER = 64 << 20


class BombLayer:
    """A gzip bomb as a layer: a few MB of gzip that inflate to ``size`` bytes, a tar of one
    file of ``file_size`` zero bytes followed by zeros up to ``size`` (after the end of
    the archive: the diffID covers them, nothing is written for them).

    Written as gzip members (valid multi-member gzip): one for the tar header, then the
    same compressed 64 MiB of zeros again and again, then the rest, into a temp file:
    never held in memory.  The honest diffID (``diff_id=None``) is computed by hashing
    the whole uncompressed stream, about a second per GiB; give ``diff_id`` to lie."""

    def __init__(self, size: int, file_size: int = 0, *, diff_id: str | None = None,
                 workdir: str | os.PathLike[str] | None = None) -> None:
        self.header = entry_header(Entry("bomb", "file", mode=0o644, size=file_size))
        if file_size % 512 or size < len(self.header) + file_size + 1024:
            raise ValueError("the bomb's file must fill whole blocks and fit, with the end of archive, in size")
        self.size = size
        self.file_size = file_size
        self.diff_id = diff_id
        self.workdir = workdir
        self._built: tuple[FileBlob, str] | None = None

    def honest_diff_id(self) -> str:
        h = hashlib.sha256(self.header)
        zeros = bytes(16 << 20)
        left = self.size - len(self.header)
        while left >= len(zeros):
            h.update(zeros)
            left -= len(zeros)
        h.update(bytes(left))
        return "sha256:" + h.hexdigest()

    def materialize(self, compression: Compression, family: MediaFamily = "oci") -> tuple[FileBlob, str]:
        if self._built is None:
            fd, path = tempfile.mkstemp(prefix="ctrpy-bomb-", suffix=".gz", dir=self.workdir)
            with os.fdopen(fd, "wb") as raw:
                out = HashingWriter(raw)
                out.write(_gzip_member(self.header))
                zeros = self.size - len(self.header)
                full = _zeros_member(_ZEROS_PER_MEMBER)
                for _ in range(zeros // _ZEROS_PER_MEMBER):
                    out.write(full)
                if zeros % _ZEROS_PER_MEMBER:
                    out.write(_zeros_member(zeros % _ZEROS_PER_MEMBER))
            blob = FileBlob(LAYER_MEDIA_TYPES[(family, "gzip")], path, out.digest, out.size,
                            _TempFile(path))
            self._built = (blob, self.diff_id or self.honest_diff_id())
        return self._built


def _gzip_member(*parts: bytes) -> bytes:
    """One gzip member (level 9) of ``parts`` one after the other."""
    out = _Collect()
    w = compressing_writer(out, "gzip", level=9)
    for part in parts:
        w.write(part)
    w.close()
    return out.data()


def _zeros_member(n: int) -> bytes:
    mib = bytes(1 << 20)
    return _gzip_member(*([mib] * (n >> 20)), bytes(n & ((1 << 20) - 1)))


class _Collect:
    """Collects what is written (a compressed member: small)."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, b: bytes, /) -> int:
        self.parts.append(bytes(b))
        return len(b)

    def data(self) -> bytes:
        return b"".join(self.parts)


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
