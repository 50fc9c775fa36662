#!/usr/bin/env python3
"""ctrpy against its peers: wall time and peak RSS, median of N runs, with goals.

Builds (once, cached in the work dir) a deterministic ~230 MB OCI archive holding two images
with ~49k files, then runs each case: ctrpy's command and the peer's, alternately, each on
fresh state. See bench/README.md. Usage::

    .venv/bin/python bench/run.py                   # every case, 3 runs each
    .venv/bin/python bench/run.py --case import --case export -n 5
    .venv/bin/python bench/run.py --list
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.builders import (  # noqa: E402
    ANNOTATION_IMAGE_NAME,
    ANNOTATION_REF_NAME,
    GeneratedLayer,
    Image,
    LayerSpec,
    OCILayout,
    write_docker_save_tar,
)
from tests.peers import Containerd, ContainerdStartError, ctrpy_command, have, mounts_under, run  # noqa: E402

MiB = 1 << 20
RESULTS = Path(__file__).resolve().parent / "results"
FIXTURE_VERSION = 2  # bump when the generator changes, so cached archives are rebuilt
IMAGE_NAMES = ("docker.io/library/bench-one:1", "docker.io/library/bench-two:2")
RSS_GOAL = 100 * MiB


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# =============================================================================================
# the fixture: two images, mostly incompressible data, many small files


@dataclass(frozen=True)
class FixtureSpec:
    size_mib: int = 230  # the OCI archive's target size
    files: int = 49_000  # files over both images
    layers: int = 3  # per image
    seed: int = 1
    gzip_level: int = 6
    # zeros per 64 KiB chunk; 0: all random. (tests/builders makes a file smaller than the
    # zero run all zeros, which would turn every small file into zeros: keep this at 0.)
    compressible: float = 0.0

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
    """The two images; layers are generated lazily when an archive is written."""
    # random data gzips to ~1.0003x, zeros all but vanish, tar headers and padding add ~35 B
    # a file once compressed
    payload_total = int((spec.size_mib * MiB - spec.files * 35) / 1.0003 * (1 - spec.compressible))
    images = []
    for n in range(2):
        seed = spec.seed * 1000 + n
        nfiles = spec.files // 2 + (spec.files % 2 if n == 0 else 0)
        layers: list[LayerSpec] = [
            GeneratedLayer(
                cast(Any, files),  # GeneratedLayer only reads .name and .size
                _dirs_of(files),
                seed * 31 + li,
                compressible=spec.compressible,
                level=spec.gzip_level,
                workdir=workdir,
            )
            for li, files in enumerate(_plan_image(seed, payload_total // 2, nfiles, spec.layers))
        ]
        images.append(
            Image(
                layers,
                compression="gzip",
                config_extra={"config": {"Labels": {"ctrpy.bench.seed": str(seed)}}},
            )
        )
    return images


@dataclass
class Fixture:
    spec: FixtureSpec
    path: Path
    size: int
    names: list[str]
    digests: list[str]
    files: int
    kind: str = "oci"


def _tag(name: str) -> str:
    return name.rsplit(":", 1)[1]


def build_fixture(spec: FixtureSpec, workdir: Path, kind: str = "oci", rebuild: bool = False) -> Fixture:
    """The archive for ``spec`` (``kind`` oci or docker), built unless cached in ``workdir``."""
    if kind == "docker700":
        # issue 5's case: ONE image, 3 uncompressed layers, ~700 MB (half of a 2-image spec)
        spec = replace(spec, size_mib=1400, files=12_000, layers=3)
    path = workdir / f"fixture-{kind}-{spec.key()}.tar"
    meta_path = path.with_suffix(".json")
    if not rebuild and path.is_file() and meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        if meta.get("size") == path.stat().st_size:
            return Fixture(spec, path, meta["size"], meta["names"], meta["digests"], meta["files"], kind)
    for stale in workdir.glob(f"fixture-{kind}-*"):  # other parameters' archives
        stale.unlink()
    log(f"bench: building the {kind} fixture ({spec.size_mib} MiB, {spec.files} files) in {workdir} ...")
    started = time.perf_counter()
    gen = workdir / "gen"
    gen.mkdir(parents=True, exist_ok=True)
    images = bench_images(spec, gen)
    tmp = path.with_suffix(".tmp")
    if kind == "oci":
        layout = OCILayout()
        built = [img.build() for img in images]
        for b, name in zip(built, IMAGE_NAMES, strict=True):
            layout.add_manifest(b, {ANNOTATION_IMAGE_NAME: name, ANNOTATION_REF_NAME: _tag(name)})
        layout.write_tar(tmp)
    elif kind in ("docker", "docker700"):
        if kind == "docker700":
            images = images[:1]
        built = [img.build(compression="none", media_types="docker") for img in images]
        familiar = [name.removeprefix("docker.io/library/") for name in IMAGE_NAMES]
        write_docker_save_tar(tmp, [(b, [t]) for b, t in zip(built, familiar, strict=False)])
    else:
        raise ValueError(kind)
    names = list(IMAGE_NAMES[: len(built)])
    digests = [b.manifest.digest for b in built]
    del built, images
    shutil.rmtree(gen, ignore_errors=True)
    os.replace(tmp, path)
    size = path.stat().st_size
    files = spec.files
    if kind == "docker700":
        files = spec.files // 2
    meta_path.write_text(json.dumps({"size": size, "names": names, "digests": digests, "files": files}))
    log(f"bench: built {path.name}: {size / MiB:.1f} MiB in {time.perf_counter() - started:.1f}s")
    return Fixture(spec, path, size, names, digests, files, kind)


# =============================================================================================
# measuring


class CaseFailed(Exception):
    """A command of a case failed: the case is reported as failed, the run goes on."""


@dataclass
class Sample:
    seconds: float
    peak_rss: int  # bytes: the largest peak RSS of the measured commands
    daemon_peak_rss: int | None = None  # containerd's VmHWM during the step, when a daemon served it


_LAUNCHER = """\
import os, sys
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def _gnu_time() -> str | None:
    """GNU time, when installed (``-f %M``: the child's peak RSS in KiB)."""
    path = shutil.which("time") or ("/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None)
    if path is None:
        return None
    proc = subprocess.run([path, "-f", "%M", "-o", os.devnull, "true"], capture_output=True, check=False)
    return path if proc.returncode == 0 else None


GNU_TIME = _gnu_time()
RSS_METHOD = "GNU time -f %M" if GNU_TIME else "python -I -S fork/exec/wait4 launcher (floor ~5 MiB)"


def _with_rss_probe(cmd: list[str], out: Path) -> list[str]:
    """``cmd`` started by a small process that writes its peak RSS (KiB) to ``out``.

    Measuring the child directly (``wait4`` or ``RUSAGE_CHILDREN`` here) is wrong: Linux
    carries the forking process's RSS into the child's ``ru_maxrss`` at ``exec``, so every
    child would weigh at least as much as this benchmark process.
    """
    if GNU_TIME:
        return [GNU_TIME, "-f", "%M", "-o", str(out), *cmd]
    return [sys.executable, "-I", "-S", "-c", _LAUNCHER, str(out), *cmd]


def measure(cmds: Sequence[Sequence[str | os.PathLike[str]]], *, env: dict[str, str] | None = None) -> Sample:
    """Run ``cmds`` one after the other; wall time summed, peak RSS the largest of them.

    Dirty pages are written back first (untimed), so no run pays for the previous one's I/O.
    """
    os.sync()
    total = 0.0
    peak = 0
    for cmd in cmds:
        args = [os.fspath(c) for c in cmd]
        with tempfile.TemporaryDirectory(prefix="bench-rss-") as tmp, tempfile.TemporaryFile() as err:
            rss_file = Path(tmp) / "rss"
            started = time.perf_counter()
            rc = subprocess.run(
                _with_rss_probe(args, rss_file),
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, env=env, check=False,
            ).returncode
            total += time.perf_counter() - started
            if rc != 0:
                err.seek(0)
                tail = err.read().decode(errors="replace").strip()[-2000:]
                raise CaseFailed(f"`{' '.join(args)}` exited {rc}: {tail}")
            peak = max(peak, int(rss_file.read_text().split()[-1]) * 1024)
    return Sample(total, peak)


def _proc_status(pid: int, key: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def reset_peak_rss(pid: int) -> None:
    """Reset VmHWM (``echo 5 > /proc/PID/clear_refs``), so it measures from now on."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        pass


def measure_with_daemon(daemon: Containerd, cmds: Sequence[Sequence[str | os.PathLike[str]]]) -> Sample:
    reset_peak_rss(daemon.pid)
    sample = measure(cmds)
    sample.daemon_peak_rss = _proc_status(daemon.pid, "VmHWM")
    return sample


def remove_tree(path: Path) -> None:
    for point in mounts_under(path):
        run("umount", "-l", point, check=False)
    shutil.rmtree(path, ignore_errors=True)


# =============================================================================================
# cases


@dataclass
class Goal:
    what: str
    limit: float
    value: float | None
    unit: str = ""

    @property
    def passed(self) -> bool | None:
        return None if self.value is None else self.value <= self.limit


@dataclass
class CaseResult:
    name: str
    title: str
    peer: str
    status: str = "ok"  # ok | failed | skipped
    error: str | None = None
    ctrpy: list[Sample] = field(default_factory=list)
    peer_samples: list[Sample] = field(default_factory=list)
    ratio_goal: float | None = None
    notes: list[str] = field(default_factory=list)

    def median_seconds(self, samples: list[Sample]) -> float | None:
        return statistics.median(s.seconds for s in samples) if samples else None

    @property
    def ratio(self) -> float | None:
        a, b = self.median_seconds(self.ctrpy), self.median_seconds(self.peer_samples)
        return a / b if a is not None and b else None

    def goals(self) -> list[Goal]:
        out = []
        if self.ratio_goal is not None:
            out.append(Goal(f"wall time ctrpy/{self.peer}", self.ratio_goal, self.ratio, "x"))
        peak = max((s.peak_rss for s in self.ctrpy), default=None)
        out.append(Goal("ctrpy peak RSS (max of runs)", RSS_GOAL / MiB, None if peak is None else peak / MiB, "MiB"))
        return out


@dataclass
class Context:
    args: argparse.Namespace
    workdir: Path
    spec: FixtureSpec
    _fixtures: dict[str, Fixture] = field(default_factory=dict)

    def fixture(self, kind: str = "oci") -> Fixture:
        if kind not in self._fixtures:
            self._fixtures[kind] = build_fixture(self.spec, self.workdir, kind, rebuild=self.args.rebuild)
        return self._fixtures[kind]

    @contextmanager
    def scratch(self, name: str) -> Iterator[Path]:
        d = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.workdir))
        try:
            yield d
        finally:
            remove_tree(d)

    @contextmanager
    def containerd(self) -> Iterator[Containerd]:
        daemon = Containerd(data_dir=self.workdir)
        try:
            daemon.start()
        except ContainerdStartError as e:
            raise CaseFailed(str(e)) from e
        try:
            yield daemon
        finally:
            daemon.stop()


def ctrpy(root: Path, *args: str | os.PathLike[str]) -> list[str]:
    return [*ctrpy_command(), "--root", str(root), *(os.fspath(a) for a in args)]


def ctr(daemon: Containerd, *args: str | os.PathLike[str]) -> list[str]:
    return ["ctr", "-a", str(daemon.address), "-n", "default", *(os.fspath(a) for a in args)]


def _warm(path: Path) -> None:
    """Read a file once so every run finds it in the page cache."""
    with path.open("rb") as f:
        while f.read(8 * MiB):
            pass


Step = Callable[[], Sample]


def compare(ctx: Context, res: CaseResult, ours: Step, theirs: Step) -> None:
    """Run both sides ``--warmup`` times untimed, then ``--repeat`` times, swapping who goes
    first every run (so neither always inherits the other's cache and writeback state)."""
    warmup, repeat = ctx.args.warmup, ctx.args.repeat
    for rep in range(warmup + repeat):
        order = [("ctrpy", ours), (res.peer, theirs)]
        if rep % 2:
            order.reverse()
        got = {tool: step() for tool, step in order}
        label = f"warm-up {rep + 1}/{warmup}" if rep < warmup else f"run {rep - warmup + 1}/{repeat}"
        log(f"  [{res.name}] {label}: " + ", ".join(f"{t} {s.seconds:.2f}s" for t, s in got.items()))
        if rep >= warmup:
            res.ctrpy.append(got["ctrpy"])
            res.peer_samples.append(got[res.peer])


CaseFn = Callable[[Context, CaseResult], None]


@dataclass
class Case:
    name: str
    title: str
    peer: str
    fn: CaseFn
    ratio_goal: float | None = None
    needs: tuple[str, ...] = ("containerd", "ctr")


CASES: list[Case] = []


def case(name: str, title: str, peer: str, *, ratio_goal: float | None = None,
         needs: tuple[str, ...] = ("containerd", "ctr")) -> Callable[[CaseFn], CaseFn]:
    """Register a benchmark case: ``fn(ctx, res)`` prepares state and calls :func:`compare`."""
    def register(fn: CaseFn) -> CaseFn:
        CASES.append(Case(name, title, peer, fn, ratio_goal, needs))
        return fn
    return register


def _import_case(ctx: Context, res: CaseResult, kind: str, *ctrpy_flags: str, ctr_flags: Sequence[str]) -> None:
    fx = ctx.fixture(kind)
    _warm(fx.path)
    res.notes.append(f"{fx.path.name}: {fx.size / MiB:.1f} MiB, {len(fx.names)} image(s), {fx.files} files")

    def ours() -> Sample:
        with ctx.scratch("ctrpy") as d:
            sample = measure([ctrpy(d / "root", "images", "import", *ctrpy_flags, fx.path)])
            listed = run(*ctrpy(d / "root", "images", "ls", "-q")).stdout.split()
            if sorted(listed) != sorted(fx.names):
                raise CaseFailed(f"ctrpy imported {listed}, expected {fx.names}")
            return sample

    def theirs() -> Sample:
        with ctx.containerd() as daemon:
            return measure_with_daemon(daemon, [ctr(daemon, "images", "import", *ctr_flags, fx.path)])

    compare(ctx, res, ours, theirs)


@case("import", "import --no-unpack (OCI archive)", "ctr", ratio_goal=0.7)
def import_case(ctx: Context, res: CaseResult) -> None:
    """`ctrpy images import --no-unpack A` vs `ctr images import --no-unpack --all-platforms A`,
    each on a fresh root / fresh containerd."""
    _import_case(ctx, res, "oci", "--no-unpack", ctr_flags=["--no-unpack", "--all-platforms"])


@case("export", "export of both images (OCI archive)", "ctr", ratio_goal=0.8)
def export_case(ctx: Context, res: CaseResult) -> None:
    """`ctrpy images export OUT IMG...` vs `ctr images export OUT IMG...`: both images, from
    stores holding the fixture (imported once, not timed)."""
    fx = ctx.fixture("oci")
    with ctx.scratch("export") as d, ctx.containerd() as daemon:
        root = d / "root"
        run(*ctrpy(root, "images", "import", "--no-unpack", fx.path))
        run(*ctr(daemon, "images", "import", "--no-unpack", "--all-platforms", fx.path))
        out = d / "out.tar"
        sizes: dict[str, int] = {}

        def ours() -> Sample:
            sample = measure([ctrpy(root, "images", "export", out, *fx.names)])
            sizes["ctrpy"] = out.stat().st_size
            out.unlink()
            return sample

        def theirs() -> Sample:
            sample = measure_with_daemon(daemon, [ctr(daemon, "images", "export", out, *fx.names)])
            sizes["ctr"] = out.stat().st_size
            out.unlink()
            return sample

        compare(ctx, res, ours, theirs)
        res.notes.append("archives written: " + ", ".join(f"{k} {v / MiB:.1f} MiB" for k, v in sorted(sizes.items())))


@case("import-unpack", "import with unpack, overlayfs snapshotter", "ctr", ratio_goal=0.7)
def import_unpack_case(ctx: Context, res: CaseResult) -> None:
    """`ctrpy images import --snapshotter overlayfs A` vs `ctr images import --snapshotter
    overlayfs A` (both unpack both images), fresh root / fresh containerd each run."""
    flags = ("--snapshotter", "overlayfs")
    _import_case(ctx, res, "oci", *flags, ctr_flags=flags)


@case("extract", "extract both images to directories", "umoci", ratio_goal=0.7, needs=("umoci",))
def extract_case(ctx: Context, res: CaseResult) -> None:
    """`ctrpy images extract IMG DIR` vs `umoci raw unpack --image LAYOUT:TAG DIR`, for both
    images, into fresh directories; ctrpy's store and umoci's layout dir prepared untimed."""
    fx = ctx.fixture("oci")
    with ctx.scratch("extract") as d:
        root = d / "root"
        run(*ctrpy(root, "images", "import", "--no-unpack", fx.path))
        layout = d / "layout"
        with tarfile.open(fx.path) as tf:
            tf.extractall(layout, filter="data")
        _warm_dir(layout)

        def extract_with(tool: str, command: Callable[[str, Path], list[str]]) -> Sample:
            dests = [d / f"{tool}-{i}" for i in range(len(fx.names))]
            try:
                return measure([command(n, t) for n, t in zip(fx.names, dests, strict=True)])
            finally:
                for t in dests:
                    remove_tree(t)

        compare(
            ctx, res,
            lambda: extract_with("ctrpy", lambda n, t: ctrpy(root, "images", "extract", n, t)),
            lambda: extract_with("umoci", lambda n, t: ["umoci", "raw", "unpack", "--image", f"{layout}:{_tag(n)}", str(t)]),
        )


def _warm_dir(path: Path) -> None:
    for p in sorted(path.rglob("*")):
        if p.is_file():
            _warm(p)


@case("docker-import", "import --no-unpack (docker save archive)", "ctr")
def docker_import_case(ctx: Context, res: CaseResult) -> None:
    """The import case on a classic `docker save` archive of the same two images."""
    _import_case(ctx, res, "docker", "--no-unpack", ctr_flags=["--no-unpack", "--all-platforms"])


@case("docker-unpack", "import with unpack of a ~700 MB docker save archive (3 uncompressed layers), overlayfs", "ctr",
      ratio_goal=0.7)
def docker_unpack_case(ctx: Context, res: CaseResult) -> None:
    """Issue 5's goal: one image of three uncompressed layers in a classic `docker save`
    archive, imported and unpacked by both tools with the overlayfs snapshotter."""
    flags = ("--snapshotter", "overlayfs")
    _import_case(ctx, res, "docker700", *flags, ctr_flags=flags)


# =============================================================================================
# running and reporting


def run_case(c: Case, ctx: Context) -> CaseResult:
    res = CaseResult(c.name, c.title, c.peer, ratio_goal=c.ratio_goal)
    missing = [t for t in c.needs if not have(t)]
    if missing:
        res.status, res.error = "skipped", f"not installed: {', '.join(missing)}"
        return res
    log(f"bench: {c.name}: {c.title}")
    try:
        c.fn(ctx, res)
    except CaseFailed as e:
        res.status, res.error = "failed", str(e)
    except Exception as e:  # a broken case must not take the others down
        res.status, res.error = "failed", f"{type(e).__name__}: {e}"
        if ctx.args.debug:
            traceback.print_exc()
    if res.status != "ok":
        log(f"  [{c.name}] {res.status}: {res.error}")
    return res


def _fmt_s(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def _fmt_mib(v: int | None) -> str:
    return "-" if v is None else f"{v / MiB:.1f}"


def render(results: list[CaseResult], repeat: int) -> str:
    lines: list[str] = []
    for r in results:
        lines.append(f"## {r.name}: {r.title}   (median of {repeat})")
        if r.status != "ok":
            lines.append(f"   {r.status.upper()}: {r.error}")
            lines.append("")
            continue
        for note in r.notes:
            lines.append(f"   {note}")
        header = ["tool", "median s", "runs (s)", "peak RSS MiB (median)", "daemon peak RSS MiB"]
        rows = []
        for tool, samples in (("ctrpy", r.ctrpy), (r.peer, r.peer_samples)):
            daemon = [s.daemon_peak_rss for s in samples if s.daemon_peak_rss is not None]
            rows.append([
                tool,
                _fmt_s(r.median_seconds(samples)),
                " ".join(f"{s.seconds:.2f}" for s in samples),
                _fmt_mib(int(statistics.median(s.peak_rss for s in samples)) if samples else None),
                _fmt_mib(int(statistics.median(daemon))) if daemon else "-",
            ])
        widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
        for row in (header, *rows):
            lines.append("   " + "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        lines.append(f"   ratio ctrpy/{r.peer}: {_fmt_s(r.ratio)}")
        for g in r.goals():
            verdict = {True: "PASS", False: "FAIL", None: "n/a"}[g.passed]
            value = "-" if g.value is None else f"{g.value:.2f}"
            lines.append(f"   goal: {g.what} <= {g.limit:g}{g.unit}: {value}{g.unit}  {verdict}")
        lines.append("")
    return "\n".join(lines)


def _version(*cmd: str) -> str | None:
    if not have(cmd[0]):
        return None
    proc = run(*cmd, check=False)
    out = (proc.stdout or proc.stderr).strip().splitlines()
    return out[0] if out else None


def to_json(results: list[CaseResult], ctx: Context) -> dict[str, Any]:
    def samples(ss: list[Sample]) -> dict[str, Any]:
        return {
            "seconds": [round(s.seconds, 4) for s in ss],
            "median_seconds": None if not ss else round(statistics.median(s.seconds for s in ss), 4),
            "peak_rss_bytes": [s.peak_rss for s in ss],
            "daemon_peak_rss_bytes": [s.daemon_peak_rss for s in ss],
        }

    return {
        "schemaVersion": 1,
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "repeat": ctx.args.repeat,
        "warmup": ctx.args.warmup,
        "rss_method": RSS_METHOD,
        "host": {
            "python": platform.python_version(),
            "machine": platform.machine(),
            "kernel": platform.release(),
            "cpus": os.cpu_count(),
            "ctrpy": _version(*ctrpy_command(), "--version"),
            "ctr": _version("ctr", "--version"),
            "containerd": _version("containerd", "--version"),
            "umoci": _version("umoci", "--version"),
        },
        "fixture": {**asdict(ctx.spec), "archives": {
            k: {"file": f.path.name, "bytes": f.size, "images": f.names, "digests": f.digests}
            for k, f in ctx._fixtures.items()
        }},
        "cases": [
            {
                "name": r.name,
                "title": r.title,
                "peer": r.peer,
                "status": r.status,
                "error": r.error,
                "notes": r.notes,
                "ctrpy": samples(r.ctrpy),
                "peer_results": samples(r.peer_samples),
                "ratio": None if r.ratio is None else round(r.ratio, 4),
                "goals": [
                    {"what": g.what, "limit": g.limit, "unit": g.unit,
                     "value": None if g.value is None else round(g.value, 4), "pass": g.passed}
                    for g in (r.goals() if r.status == "ok" else [])
                ],
            }
            for r in results
        ],
    }


def main(argv: Sequence[str] | None = None) -> int:
    names = [c.name for c in CASES]
    p = argparse.ArgumentParser(description="Benchmark ctrpy against ctr / umoci.")
    p.add_argument("--case", action="append", choices=names, help="run only this case (repeatable)")
    p.add_argument("-n", "--repeat", type=int, default=3, help="measured runs per tool and case (default 3)")
    p.add_argument("--warmup", type=int, default=0, help="untimed runs per tool and case first (default 0)")
    p.add_argument("--files", type=int, default=FixtureSpec.files, help="files over both images (default 49000)")
    p.add_argument("--size-mib", type=int, default=FixtureSpec.size_mib, help="OCI archive size (default 230)")
    p.add_argument("--layers", type=int, default=FixtureSpec.layers, help="layers per image (default 3)")
    p.add_argument("--seed", type=int, default=FixtureSpec.seed)
    p.add_argument("--workdir", type=Path,
                   default=Path(os.environ.get("CTRPY_BENCH_DIR", "/var/tmp/ctrpy-bench")),
                   help="fixtures (cached) and scratch space [env CTRPY_BENCH_DIR; default /var/tmp/ctrpy-bench]")
    p.add_argument("--rebuild", action="store_true", help="rebuild the fixture archives")
    p.add_argument("--json", type=Path, default=RESULTS / "latest.json", help="where to write the results")
    p.add_argument("--strict", action="store_true", help="exit 1 when a goal fails or a case fails")
    p.add_argument("--list", action="store_true", help="list the cases and exit")
    p.add_argument("--debug", action="store_true", help="tracebacks for failing cases")
    args = p.parse_args(argv)
    if args.list:
        for c in CASES:
            goal = f" (goal <= {c.ratio_goal:g}x)" if c.ratio_goal else ""
            print(f"{c.name:15} {c.title} vs {c.peer}{goal}")
        return 0
    if args.repeat < 1 or args.warmup < 0:
        p.error("--repeat must be at least 1 and --warmup at least 0")
    if os.geteuid() != 0:
        log("bench: warning: not root; containerd cases will fail")
    args.workdir.mkdir(parents=True, exist_ok=True)
    spec = FixtureSpec(args.size_mib, args.files, args.layers, args.seed)
    ctx = Context(args, args.workdir, spec)
    selected = [c for c in CASES if not args.case or c.name in args.case]
    results = [run_case(c, ctx) for c in selected]
    print(render(results, args.repeat))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.json.with_suffix(".tmp")
    tmp.write_text(json.dumps(to_json(results, ctx), indent=2) + "\n")
    os.replace(tmp, args.json)
    log(f"bench: results in {args.json}")
    failed = any(r.status == "failed" for r in results) or any(
        g.passed is False for r in results if r.status == "ok" for g in r.goals()
    )
    return 1 if args.strict and failed else 0


if __name__ == "__main__":
    sys.exit(main())
