"""The runner's model: cases, their results and goals, the run context, and the
side-by-side loop (:func:`compare`) and the size loop (:func:`series`)."""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench.fixtures import (
    FILES_PER_MIB,
    Fixture,
    FixtureSpec,
    RealSpec,
    build_fixture,
    build_real_fixture,
    series_spec,
)
from bench.measure import RSS_GOAL, CaseFailed, MiB, Sample, log, remove_tree
from tests.peers import Containerd, ContainerdStartError, ctrpy_command
from tests.registry.distribution import DistributionRegistry, RegistryStartError

MODES = ("disk", "tmpfs")
FLAT_GOAL_PERCENT = 10.0
DISK_BOUND_CPU_SHARE = 0.75  # below this share of wall time on the CPU, a command waited for the disk


@dataclass(frozen=True)
class GoalSpec:
    """``median(ctrpy) / median(tool) <= limit``, checked in the given modes."""

    tool: str
    limit: float
    modes: tuple[str, ...] = MODES
    source: str = ""  # the issue that set it


@dataclass
class Goal:
    what: str
    limit: float
    value: float | None
    unit: str = ""
    source: str = ""

    @property
    def passed(self) -> bool | None:
        return None if self.value is None else self.value <= self.limit


@dataclass
class SeriesPoint:
    """ctrpy's runs on one archive of an RSS-versus-size series."""

    size_mib: int
    archive_bytes: int
    entries: int
    samples: list[Sample] = field(default_factory=list)

    @property
    def median_peak(self) -> int:
        return int(statistics.median(s.peak_rss for s in self.samples))


@dataclass
class CaseResult:
    name: str
    title: str
    tools: list[str]  # "ctrpy" first, then the peers
    goal_specs: tuple[GoalSpec, ...] = ()
    mode: str = "disk"
    status: str = "ok"  # ok | failed | skipped
    error: str | None = None
    samples: dict[str, list[Sample]] = field(default_factory=dict)
    failed_tools: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    series: list[SeriesPoint] = field(default_factory=list)
    check_disk_bound: bool = False

    @property
    def peer(self) -> str:
        return self.tools[1] if len(self.tools) > 1 else "-"

    def median_seconds(self, tool: str) -> float | None:
        ss = self.samples.get(tool) or []
        return statistics.median(s.seconds for s in ss) if ss else None

    def ratio(self, tool: str) -> float | None:
        a, b = self.median_seconds("ctrpy"), self.median_seconds(tool)
        return a / b if a is not None and b else None

    def cpu_share(self, tool: str = "ctrpy") -> float | None:
        """Median of (CPU time / wall time) over ``tool``'s runs."""
        shares = [s.total_cpu_seconds / s.seconds for s in self.samples.get(tool) or []
                  if s.total_cpu_seconds is not None and s.seconds > 0]
        return statistics.median(shares) if shares else None

    @property
    def disk_bound(self) -> bool | None:
        """ctrpy waited for the disk (its CPU time under 75% of its wall time)."""
        if not self.check_disk_bound or self.mode != "disk":
            return None
        share = self.cpu_share()
        return None if share is None else share < DISK_BOUND_CPU_SHARE

    def all_ctrpy_samples(self) -> list[Sample]:
        return [*self.samples.get("ctrpy", []), *(s for p in self.series for s in p.samples)]

    def goals(self) -> list[Goal]:
        out = [
            Goal(f"wall time ctrpy/{g.tool}", g.limit, self.ratio(g.tool), "x", g.source)
            for g in self.goal_specs if self.mode in g.modes
        ]
        peak = max((s.peak_rss for s in self.all_ctrpy_samples()), default=None)
        out.append(Goal("ctrpy peak RSS (max of runs)", RSS_GOAL / MiB, None if peak is None else peak / MiB, "MiB"))
        if len(self.series) > 1:
            peaks = [p.median_peak for p in self.series if p.samples]
            spread = None if len(peaks) < 2 else (max(peaks) - min(peaks)) / min(peaks) * 100
            out.append(Goal("ctrpy peak RSS spread over sizes (max-min)/min", FLAT_GOAL_PERCENT, spread, "%",
                            "issue 12"))
        return out


@dataclass
class Context:
    args: argparse.Namespace
    workdir: Path  # fixtures (cached, on disk)
    scratch_root: Path  # stores, targets, containerd roots, registries (tmpfs with --tmpfs)
    mode: str
    spec: FixtureSpec
    real_spec: RealSpec
    fixtures: dict[str, Fixture] = field(default_factory=dict)
    _real_error: str | None = None
    interrupted: bool = False

    def fixture(self, kind: str = "oci") -> Fixture:
        """``oci``/``docker`` (the random images), ``docker700``, ``real-oci``/``real-docker``
        (the realistic image), ``series-N`` (the random series archive of about N MB)."""
        if kind in self.fixtures:
            return self.fixtures[kind]
        rebuild = self.args.rebuild
        if kind in ("real-oci", "real-docker"):
            if self._real_error:
                raise CaseFailed(self._real_error)
            try:
                self.fixtures.update(build_real_fixture(self.real_spec, self.workdir, rebuild=rebuild))
            except CaseFailed as e:
                self._real_error = f"the realistic fixture could not be built: {e}"
                raise CaseFailed(self._real_error) from e
        elif kind in ("oci", "docker"):
            self.fixtures[kind] = build_fixture(self.spec, self.workdir, kind, kind, rebuild=rebuild)
        elif kind == "docker700":
            # issue 5's case: ONE image, 3 uncompressed layers, ~700 MB
            spec = FixtureSpec(size_mib=700, files=6_000, layers=3, seed=self.spec.seed, images=1)
            self.fixtures[kind] = build_fixture(spec, self.workdir, kind, "docker", rebuild=rebuild)
        elif kind.startswith("series-"):
            density = self.args.series_density
            spec = series_spec(int(kind.removeprefix("series-")), seed=self.spec.seed, files_per_mib=density)
            name = kind if density == FILES_PER_MIB else f"{kind}-d{density}"
            self.fixtures[kind] = build_fixture(spec, self.workdir, name, "oci", rebuild=rebuild)
        else:
            raise ValueError(kind)
        return self.fixtures[kind]

    @contextmanager
    def scratch(self, name: str) -> Iterator[Path]:
        d = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.scratch_root))
        try:
            yield d
        finally:
            remove_tree(d)

    @contextmanager
    def containerd(self) -> Iterator[Containerd]:
        daemon = Containerd(data_dir=self.scratch_root)
        try:
            daemon.start()
        except ContainerdStartError as e:
            raise CaseFailed(str(e)) from e
        try:
            yield daemon
        finally:
            daemon.stop()

    @contextmanager
    def registry(self) -> Iterator[DistributionRegistry]:
        """A fresh loopback docker-registry under the scratch space, removed afterwards."""
        reg = DistributionRegistry(tempfile.mkdtemp(prefix="registry-", dir=self.scratch_root), log_level="warn")
        try:
            reg.start()
        except RegistryStartError as e:
            shutil.rmtree(reg.dir, ignore_errors=True)
            raise CaseFailed(f"docker-registry did not come up: {e}") from e
        try:
            yield reg
        finally:
            reg.stop()
            shutil.rmtree(reg.dir, ignore_errors=True)


CTRPY_OVERRIDE: list[str] = []  # --ctrpy: another ctrpy to benchmark


def ctrpy_base() -> list[str]:
    """How to start ctrpy: ``--ctrpy``'s command, else the script next to this Python."""
    return list(CTRPY_OVERRIDE) or ctrpy_command()


def ctrpy(root: Path, *args: str | os.PathLike[str]) -> list[str]:
    return [*ctrpy_base(), "--root", str(root), *(os.fspath(a) for a in args)]


def ctr(daemon: Containerd, *args: str | os.PathLike[str]) -> list[str]:
    return ["ctr", "-a", str(daemon.address), "-n", "default", *(os.fspath(a) for a in args)]


def untimed(*cmd: str | os.PathLike[str], timeout: float = 1800) -> str:
    """Run a preparation command; its failure fails the case."""
    args = [os.fspath(c) for c in cmd]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise CaseFailed(f"`{' '.join(args)}` exited {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    return proc.stdout


Step = Callable[[], Sample]


def compare(ctx: Context, res: CaseResult, sides: Sequence[tuple[str, Step]]) -> None:
    """Run every side ``--warmup`` times untimed, then ``--repeat`` times, rotating who goes
    first every run (with two sides: swapping), so none always inherits another's cache and
    writeback state. A side whose command fails is dropped and recorded in
    ``res.failed_tools``; the others go on, and the case is then reported as failed."""
    warmup, repeat = ctx.args.warmup, ctx.args.repeat
    active = list(sides)
    for rep in range(warmup + repeat):
        if not active:
            break
        k = rep % len(active)
        order = active[k:] + active[:k]
        got: dict[str, Sample] = {}
        for tool, step in order:
            try:
                got[tool] = step()
            except CaseFailed as e:
                res.failed_tools[tool] = str(e)
                active = [s for s in active if s[0] != tool]
                log(f"  [{res.name}] {tool} failed: {str(e)[:300]}")
        label = f"warm-up {rep + 1}/{warmup}" if rep < warmup else f"run {rep - warmup + 1}/{repeat}"
        log(f"  [{res.name}] {label}: " + ", ".join(f"{t} {s.seconds:.2f}s" for t, s in got.items()))
        if rep >= warmup:
            for tool, sample in got.items():
                res.samples.setdefault(tool, []).append(sample)
    if res.failed_tools:
        raise CaseFailed("; ".join(f"{t}: {e}" for t, e in res.failed_tools.items()))


def series(ctx: Context, res: CaseResult, sizes: Sequence[int],
           prepare: Callable[[Fixture], AbstractContextManager[Step]]) -> None:
    """ctrpy alone on each series archive (smallest first): ``prepare(fixture)`` sets up the
    untimed state and gives the step, run ``--warmup`` + ``--repeat`` times. The first
    failure ends the case (bigger archives would fail the same way)."""
    for size in sorted(sizes):
        fx = ctx.fixture(f"series-{size}")
        point = SeriesPoint(size, fx.size, fx.files)
        res.series.append(point)
        with prepare(fx) as step:
            for rep in range(ctx.args.warmup + ctx.args.repeat):
                sample = step()
                label = f"warm-up {rep + 1}" if rep < ctx.args.warmup else f"run {rep - ctx.args.warmup + 1}"
                log(f"  [{res.name}] {size} MB {label}: {sample.seconds:.2f}s, {sample.peak_rss / MiB:.1f} MiB")
                if rep >= ctx.args.warmup:
                    point.samples.append(sample)


CaseFn = Callable[[Context, CaseResult], None]


@dataclass
class Case:
    name: str
    title: str
    peers: tuple[str, ...]
    fn: CaseFn
    goals: tuple[GoalSpec, ...] = ()
    needs: tuple[str, ...] = ("containerd", "ctr")
    check_disk_bound: bool = False


CASES: list[Case] = []


def case(name: str, title: str, peers: Sequence[str] = ("ctr",), *, goals: Sequence[GoalSpec] = (),
         needs: Sequence[str] = ("containerd", "ctr"), check_disk_bound: bool = False) -> Callable[[CaseFn], CaseFn]:
    """Register a benchmark case: ``fn(ctx, res)`` prepares state and calls :func:`compare`
    (or :func:`series`)."""
    def register(fn: CaseFn) -> CaseFn:
        CASES.append(Case(name, title, tuple(peers), fn, tuple(goals), tuple(needs), check_disk_bound))
        return fn
    return register
