"""The benchmark's input archives, built once and cached in the work directory.

* **random**: two images of pseudo-random (incompressible) files, built with
  ``tests/builders`` (:func:`build_fixture`); also a 700 MB docker-save variant and the
  single-image archives of the RSS-versus-size series.
* **real**: a Debian bookworm minbase root filesystem from ``mmdebstrap`` plus a layer with a
  copy of the running Python's ``lib/python3.11`` and whiteouts (:func:`build_real_fixture`),
  as an OCI archive and as a classic docker-save archive.

Both are the same bytes on every run for the same parameters (the real one also needs the
same Debian archive content and the same Python tree: it is cached, so later runs reuse it).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import shutil
import subprocess
import sysconfig
import tarfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from bench.measure import CaseFailed, MiB, log
from tests.builders import (
    ANNOTATION_IMAGE_NAME,
    ANNOTATION_REF_NAME,
    LAYER_MEDIA_TYPES,
    FileBlob,
    GeneratedLayer,
    Image,
    LayerSpec,
    OCILayout,
    write_docker_save_tar,
)
from tests.builders.layers import HashingWriter, compressing_writer

FIXTURE_VERSION = 3  # bump when the random generator changes, so cached archives are rebuilt
REAL_VERSION = 1  # the same for the realistic fixture
IMAGE_NAMES = ("docker.io/library/bench-one:1", "docker.io/library/bench-two:2")
REAL_NAME = "docker.io/library/bench-real:1"
FILES_PER_MIB = 213  # the random fixture's density (49,000 files in 230 MiB): the series keeps it


def tag_of(name: str) -> str:
    return name.rsplit(":", 1)[1]


@dataclass
class Fixture:
    """An archive on disk and what it holds."""

    path: Path
    size: int
    names: list[str]
    digests: list[str]
    files: int
    kind: str = "oci"
    meta: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        return f"{self.path.name}: {self.size / MiB:.1f} MiB, {len(self.names)} image(s), {self.files} files"


# =============================================================================================
# random data: images of many small files and a few large ones, all incompressible


@dataclass(frozen=True)
class FixtureSpec:
    size_mib: int = 230  # the OCI archive's target size
    files: int = 49_000  # files over all images
    layers: int = 3  # per image
    seed: int = 1
    gzip_level: int = 6
    # zeros per 64 KiB chunk; 0: all random. (tests/builders makes a file smaller than the
    # zero run all zeros, which would turn every small file into zeros: keep this at 0.)
    compressible: float = 0.0
    images: int = 2

    def key(self) -> str:
        raw = json.dumps({"v": FIXTURE_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(raw.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class _File:
    name: str
    size: int


def _plan_image(seed: int, payload: int, nfiles: int, nlayers: int) -> list[list[_File]]:
    """Files of one image, per layer: many small files (32 B - 16 KiB, log-uniform) in
    directories of 200, and a few large ones (~0.2% of the files) holding the rest."""
    rng = random.Random(seed)
    n_big = max(nlayers, nfiles // 500)
    n_small = max(0, nfiles - n_big)
    small = [int(2 ** rng.uniform(5, 14)) for _ in range(n_small)]
    big_total = payload - sum(small)
    if big_total < n_big * 4096:
        raise SystemExit(f"bench: {nfiles} files do not fit into {payload} bytes; lower --files or raise --size-mib")
    weights = [rng.uniform(0.3, 1.7) for _ in range(n_big)]
    big = [int(big_total * w / sum(weights)) for w in weights]
    big[-1] += big_total - sum(big)
    per_layer: list[list[_File]] = [[] for _ in range(nlayers)]
    for i, size in enumerate(small):
        layer = i * nlayers // max(1, n_small)
        per_layer[layer].append(_File(f"usr/lib/pkg{i // 200:04d}/f{i:06d}.dat", size))
    for i, size in enumerate(big):
        per_layer[i % nlayers].append(_File(f"opt/data/l{i % nlayers}/blob{i:05d}.bin", size))
    return per_layer


def _dirs_of(files: Sequence[_File]) -> list[str]:
    out: set[str] = set()
    for f in files:
        parts = f.name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            out.add("/".join(parts[:i]))
    return sorted(out)


def bench_images(spec: FixtureSpec, workdir: Path) -> list[Image]:
    """The images; layers are generated lazily when an archive is written."""
    # random data gzips to ~1.0003x, zeros all but vanish, tar headers and padding add ~35 B
    # a file once compressed
    payload_total = int((spec.size_mib * MiB - spec.files * 35) / 1.0003 * (1 - spec.compressible))
    images = []
    for n in range(spec.images):
        seed = spec.seed * 1000 + n
        nfiles = spec.files // spec.images + (spec.files % spec.images if n == 0 else 0)
        layers: list[LayerSpec] = [
            GeneratedLayer(
                cast(Any, files),  # GeneratedLayer only reads .name and .size
                _dirs_of(files),
                seed * 31 + li,
                compressible=spec.compressible,
                level=spec.gzip_level,
                workdir=workdir,
            )
            for li, files in enumerate(_plan_image(seed, payload_total // spec.images, nfiles, spec.layers))
        ]
        images.append(
            Image(
                layers,
                compression="gzip",
                config_extra={"config": {"Labels": {"ctrpy.bench.seed": str(seed)}}},
            )
        )
    return images


def build_fixture(spec: FixtureSpec, workdir: Path, name: str, fmt: str = "oci", rebuild: bool = False) -> Fixture:
    """The random-data archive ``name`` (``fmt`` oci, or docker: classic docker save with
    uncompressed layers) for ``spec``, built unless cached in ``workdir``."""
    path = workdir / f"fixture-{name}-{spec.key()}.tar"
    meta_path = path.with_suffix(".json")
    if not rebuild and path.is_file() and meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        if meta.get("size") == path.stat().st_size:
            return Fixture(path, meta["size"], meta["names"], meta["digests"], meta["files"], name, meta)
    for stale in workdir.glob(f"fixture-{name}-*"):  # other parameters' archives
        stale.unlink()
    log(f"bench: building the {name} fixture ({spec.size_mib} MiB, {spec.files} files) in {workdir} ...")
    started = time.perf_counter()
    gen = workdir / "gen"
    gen.mkdir(parents=True, exist_ok=True)
    images = bench_images(spec, gen)
    tmp = path.with_suffix(".tmp")
    if fmt == "oci":
        layout = OCILayout()
        built = [img.build() for img in images]
        for b, ref in zip(built, IMAGE_NAMES, strict=False):
            layout.add_manifest(b, {ANNOTATION_IMAGE_NAME: ref, ANNOTATION_REF_NAME: tag_of(ref)})
        layout.write_tar(tmp)
    elif fmt == "docker":
        built = [img.build(compression="none", media_types="docker") for img in images]
        familiar = [ref.removeprefix("docker.io/library/") for ref in IMAGE_NAMES]
        write_docker_save_tar(tmp, [(b, [t]) for b, t in zip(built, familiar, strict=False)])
    else:
        raise ValueError(fmt)
    names = list(IMAGE_NAMES[: len(built)])
    digests = [b.manifest.digest for b in built]
    del built, images
    shutil.rmtree(gen, ignore_errors=True)
    os.replace(tmp, path)
    size = path.stat().st_size
    meta = {"size": size, "names": names, "digests": digests, "files": spec.files, "spec": asdict(spec),
            "build_seconds": round(time.perf_counter() - started, 1)}
    meta_path.write_text(json.dumps(meta))
    log(f"bench: built {path.name}: {size / MiB:.1f} MiB in {meta['build_seconds']}s")
    return Fixture(path, size, names, digests, spec.files, name, meta)


def series_spec(size_mib: int, seed: int = 1, files_per_mib: int = FILES_PER_MIB) -> FixtureSpec:
    """One image of 3 random-data layers, ``size_mib`` compressed, by default as dense in files
    as the main random fixture (so entries grow with bytes)."""
    return FixtureSpec(size_mib=size_mib, files=max(30, size_mib * files_per_mib), layers=3, seed=seed, images=1)


# =============================================================================================
# realistic: Debian minbase from mmdebstrap + a copy of Python's lib, with whiteouts


def _default_python_lib() -> str:
    return sysconfig.get_paths()["stdlib"]


@dataclass(frozen=True)
class RealSpec:
    suite: str = "bookworm"
    variant: str = "minbase"
    mirror: str = "http://deb.debian.org/debian"
    source_date_epoch: int = 1_700_000_000  # 2023-11-14T22:13:20Z
    python_lib: str = field(default_factory=_default_python_lib)
    gzip_level: int = 6

    def key(self) -> str:
        raw = json.dumps({"v": REAL_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(raw.encode()).hexdigest()[:12]


# layer 2 deletes these from layer 1 (each must exist there) ...
REAL_WHITEOUTS = ("etc/motd", "etc/issue", "etc/issue.net", "usr/share/info", "usr/share/man")
# ... and makes this directory opaque (keeping the one file it adds there)
REAL_OPAQUE = "usr/share/doc"
REAL_OPAQUE_KEEP = "usr/share/doc/bench/README"
REAL_PYTHON_DEST = "usr/local/lib/python3.11"


class _Prebuilt(GeneratedLayer):
    """A layer whose blobs are files already written: (path, digest, size) per compression."""

    def __init__(self, blobs: dict[str, tuple[Path, str, int]], diff_id: str) -> None:  # no super(): no generator
        self.blobs = blobs
        self.diff_id = diff_id

    def materialize(self, compression: Any, family: Any = "oci") -> tuple[FileBlob, str]:
        path, digest, size = self.blobs[compression]
        return FileBlob(LAYER_MEDIA_TYPES[(family, compression)], str(path), digest, size), self.diff_id


def _norm(name: str) -> str:
    name = name.removeprefix("./").rstrip("/")
    return name or "."


def _mmdebstrap(spec: RealSpec, out: Path, tmpdir: Path) -> None:
    cmd = [
        "mmdebstrap", f"--variant={spec.variant}", "--mode=root", "--format=tar",
        "--skip=output/dev",  # no device nodes in /dev, as in Docker's debian images
        # the host's resolv.conf and hostname are copied in: make them the same everywhere
        "--customize-hook=echo 'nameserver 127.0.0.1' > \"$1/etc/resolv.conf\"",
        "--customize-hook=echo bench > \"$1/etc/hostname\"",
        spec.suite, str(out), spec.mirror,
    ]
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(spec.source_date_epoch), "TMPDIR": str(tmpdir)}
    log(f"bench: {' '.join(cmd)}")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise CaseFailed(f"mmdebstrap failed (exit {proc.returncode}): {proc.stderr.strip()[-1500:]}")


def _python_entries(spec: RealSpec) -> Iterator[tuple[tarfile.TarInfo, Path | None]]:
    """The TarInfos (and source files) of the Python tree, sorted, without __pycache__."""
    src = Path(spec.python_lib)
    if not src.is_dir():
        raise CaseFailed(f"no Python library at {src}")

    def info(name: str, st: os.stat_result) -> tarfile.TarInfo:
        ti = tarfile.TarInfo(name)
        ti.mode = st.st_mode & 0o7777
        ti.uid = ti.gid = 0
        ti.uname = ti.gname = "root"
        ti.mtime = spec.source_date_epoch
        return ti

    for top, dirs, files in os.walk(src):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        rel = Path(top).relative_to(src)
        base = REAL_PYTHON_DEST if str(rel) == "." else f"{REAL_PYTHON_DEST}/{rel}"
        ti = info(base, os.lstat(top))
        ti.type = tarfile.DIRTYPE
        yield ti, None
        for d in dirs:  # symlinks to directories are listed here but not walked
            p = Path(top) / d
            if p.is_symlink():
                ti = info(f"{base}/{d}", os.lstat(p))
                ti.type, ti.linkname = tarfile.SYMTYPE, os.readlink(p)
                yield ti, None
        for f in sorted(files):
            p = Path(top) / f
            st = os.lstat(p)
            ti = info(f"{base}/{f}", st)
            if p.is_symlink():
                ti.type, ti.linkname = tarfile.SYMTYPE, os.readlink(p)
                yield ti, None
            elif p.is_file():
                ti.size = st.st_size
                yield ti, p


def _write_layer2(spec: RealSpec, layer1_names: set[str], out: Path) -> None:
    missing = [p for p in (*REAL_WHITEOUTS, REAL_OPAQUE) if p not in layer1_names]
    if missing:
        raise CaseFailed(f"the {spec.suite} root filesystem lacks {missing}: pick other whiteouts")

    def meta(name: str, type_: bytes, mode: int) -> tarfile.TarInfo:
        ti = tarfile.TarInfo(name)
        ti.type, ti.mode, ti.mtime = type_, mode, spec.source_date_epoch
        ti.uname = ti.gname = "root"
        return ti

    parents = sorted({str(Path(p).parent) for p in (*REAL_WHITEOUTS, REAL_OPAQUE_KEEP)}
                     | {"usr", "usr/local", "usr/local/lib"} | {REAL_OPAQUE})
    readme = f"Python {spec.python_lib} copied by ctrpy's benchmark\n".encode()
    with out.open("wb") as f, tarfile.open(fileobj=f, mode="w|", format=tarfile.PAX_FORMAT) as tf:
        for d in parents:
            tf.addfile(meta(d, tarfile.DIRTYPE, 0o755))
        for p in REAL_WHITEOUTS:
            parent, base = p.rsplit("/", 1)
            tf.addfile(meta(f"{parent}/.wh.{base}", tarfile.REGTYPE, 0o644))
        tf.addfile(meta(f"{REAL_OPAQUE}/.wh..wh..opq", tarfile.REGTYPE, 0o644))
        ti = meta(REAL_OPAQUE_KEEP, tarfile.REGTYPE, 0o644)
        ti.size = len(readme)
        tf.addfile(ti, io.BytesIO(readme))
        for ti, src in _python_entries(spec):
            if src is None:
                tf.addfile(ti)
            else:
                with src.open("rb") as sf:
                    tf.addfile(ti, sf)


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(4 * MiB):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def _gzip_file(src: Path, dst: Path, level: int) -> tuple[str, int]:
    """gzip ``src`` into ``dst`` as Go writes gzip (mtime 0, no name); (digest, size)."""
    with src.open("rb") as inp, dst.open("wb") as raw:
        hashed = HashingWriter(raw)
        comp = compressing_writer(hashed, "gzip", level=level)
        while chunk := inp.read(4 * MiB):
            comp.write(chunk)
        comp.close()
    return hashed.digest, hashed.size


def _tree_stats(layers: Sequence[Path]) -> dict[str, Any]:
    """Entries and bytes of each layer, and of the tree they unpack to (whiteouts applied)."""
    tree: dict[str, int] = {}  # path -> file size (0 for non-files and hardlinks)
    per_layer = []
    for path in layers:
        n = nbytes = 0
        added: dict[str, int] = {}
        removed: list[str] = []
        opaque: list[str] = []
        with tarfile.open(path, mode="r|") as tf:
            for ti in tf:
                name = _norm(ti.name)
                base = name.rsplit("/", 1)[-1]
                parent = name.rsplit("/", 1)[0] if "/" in name else "."
                if base == ".wh..wh..opq":
                    opaque.append(parent)
                    continue
                if base.startswith(".wh."):
                    removed.append(f"{parent}/{base[4:]}" if parent != "." else base[4:])
                    continue
                n += 1
                size = ti.size if ti.isreg() else 0
                nbytes += size
                added[name] = size
        for gone in removed:
            for k in [k for k in tree if k == gone or k.startswith(gone + "/")]:
                del tree[k]
        for d in opaque:
            for k in [k for k in tree if k.startswith(d + "/") and k not in added]:
                del tree[k]
        tree.update(added)
        per_layer.append({"entries": n, "bytes": nbytes, "whiteouts": len(removed), "opaque_dirs": len(opaque)})
    tree.pop(".", None)
    return {"entries": len(tree), "unpacked_bytes": sum(tree.values()), "layers": per_layer}


def _debian_info(layer1: Path) -> dict[str, Any]:
    """debian_version and the installed packages (name=version, hashed) of the root fs."""
    out: dict[str, Any] = {}
    with tarfile.open(layer1, mode="r|") as tf:
        for ti in tf:
            name = _norm(ti.name)
            if name not in ("etc/debian_version", "var/lib/dpkg/status"):
                continue
            f = tf.extractfile(ti)
            data = f.read().decode() if f else ""
            if name == "etc/debian_version":
                out["debian_version"] = data.strip()
            else:
                pkgs = []
                for para in data.split("\n\n"):
                    fields = dict(line.split(": ", 1) for line in para.splitlines() if ": " in line and line[0] != " ")
                    if "Package" in fields:
                        pkgs.append(f"{fields['Package']}={fields.get('Version', '')}")
                pkgs.sort()
                out["packages"] = len(pkgs)
                out["packages_sha256"] = hashlib.sha256("\n".join(pkgs).encode()).hexdigest()
    return out


def build_real_fixture(spec: RealSpec, workdir: Path, rebuild: bool = False) -> dict[str, Fixture]:
    """The realistic image as ``{"real-oci": ..., "real-docker": ...}``, built unless cached
    (needs root, ``mmdebstrap`` and Debian's archive; a minute or two)."""
    out_dir = workdir / f"real-{spec.key()}"
    meta_path = out_dir / "fixture.json"
    if not rebuild and meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        fixtures = {k: _real_fixture(out_dir, k, meta) for k in ("real-oci", "real-docker")}
        if all(f.path.is_file() and f.path.stat().st_size == f.size for f in fixtures.values()):
            if _add_archive_hashes(out_dir, meta):
                meta_path.write_text(json.dumps(meta, indent=1) + "\n")
            return fixtures
    if not shutil.which("mmdebstrap"):
        raise CaseFailed("mmdebstrap is not installed (apt-get install mmdebstrap)")
    for stale in workdir.glob("real-*"):
        shutil.rmtree(stale, ignore_errors=True)
    log(f"bench: building the realistic fixture in {out_dir} (mmdebstrap from {spec.mirror}, then "
        f"{spec.python_lib}) ...")
    started = time.perf_counter()
    build = out_dir / "build"
    build.mkdir(parents=True)
    try:
        l1, l2 = build / "layer1.tar", build / "layer2.tar"
        _mmdebstrap(spec, l1, build)
        debian = _debian_info(l1)
        with tarfile.open(l1, mode="r|") as tf:
            names = {_norm(ti.name) for ti in tf}
        _write_layer2(spec, names, l2)
        # the two layers compress in parallel (zlib releases the GIL)
        diffs: dict[Path, str] = {}
        gz: dict[Path, tuple[str, int]] = {}

        def work(p: Path) -> None:
            diffs[p] = _sha256_file(p)
            gz[p] = _gzip_file(p, p.with_suffix(".tar.gz"), spec.gzip_level)

        threads = [threading.Thread(target=work, args=(p,)) for p in (l1, l2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if len(gz) != 2:
            raise CaseFailed("compressing the realistic layers failed")
        stats = _tree_stats([l1, l2])
        layers: list[LayerSpec] = [
            _Prebuilt({"gzip": (p.with_suffix(".tar.gz"), *gz[p]), "none": (p, diffs[p], p.stat().st_size)}, diffs[p])
            for p in (l1, l2)
        ]
        created = datetime.fromtimestamp(spec.source_date_epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        image = Image(
            layers,
            compression="gzip",
            created=created,
            config_extra={"config": {
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                        "PYTHONPATH=/" + REAL_PYTHON_DEST],
                "Cmd": ["bash"],
                "Labels": {"ctrpy.bench.fixture": "real", "ctrpy.bench.suite": spec.suite},
            }},
        )
        built = image.build()
        layout = OCILayout()
        layout.add_manifest(built, {ANNOTATION_IMAGE_NAME: REAL_NAME, ANNOTATION_REF_NAME: tag_of(REAL_NAME)})
        layout.write_tar(out_dir / "oci.tar")
        built_d = image.build(compression="none", media_types="docker")
        write_docker_save_tar(out_dir / "docker.tar", [(built_d, [REAL_NAME.removeprefix("docker.io/library/")])])
        meta = {
            "spec": asdict(spec),
            "key": spec.key(),
            "names": [REAL_NAME],
            "digest": built.manifest.digest,
            "docker_digest": built_d.manifest.digest,
            "layers": [
                {"digest": b.digest, "size": b.size, "diff_id": d, "tar_bytes": p.stat().st_size, **s}
                for b, d, p, s in zip(built.layers, built.diff_ids, (l1, l2), stats["layers"], strict=True)
            ],
            "compressed_bytes": sum(b.size for b in built.layers),
            "entries": stats["entries"],
            "unpacked_bytes": stats["unpacked_bytes"],
            "debian": debian,
            "python": {"lib": spec.python_lib, "dest": "/" + REAL_PYTHON_DEST},
            "archives": {"real-oci": {"file": "oci.tar", "bytes": (out_dir / "oci.tar").stat().st_size},
                         "real-docker": {"file": "docker.tar", "bytes": (out_dir / "docker.tar").stat().st_size}},
            "build_seconds": round(time.perf_counter() - started, 1),
            "built": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        _add_archive_hashes(out_dir, meta)
        del built, built_d, image, layers
    finally:
        shutil.rmtree(build, ignore_errors=True)
    meta_path.write_text(json.dumps(meta, indent=1) + "\n")
    log(f"bench: built the realistic fixture in {meta['build_seconds']}s: {meta['digest']}, "
        f"{meta['compressed_bytes'] / MiB:.1f} MiB compressed, {meta['entries']} entries, "
        f"{meta['unpacked_bytes'] / MiB:.1f} MiB unpacked")
    return {k: _real_fixture(out_dir, k, meta) for k in ("real-oci", "real-docker")}


def _add_archive_hashes(out_dir: Path, meta: dict[str, Any]) -> bool:
    """Record each archive's sha256 (once; True when something was added)."""
    added = False
    for a in meta["archives"].values():
        if "sha256" not in a:
            a["sha256"] = _sha256_file(out_dir / a["file"])
            added = True
    return added


def _real_fixture(out_dir: Path, kind: str, meta: dict[str, Any]) -> Fixture:
    a = meta["archives"][kind]
    digest = meta["digest"] if kind == "real-oci" else meta["docker_digest"]
    return Fixture(out_dir / a["file"], a["bytes"], list(meta["names"]), [digest], meta["entries"], kind, meta)
