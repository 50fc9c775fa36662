#!/usr/bin/env python3
"""ctrpy against its peers: wall time and peak RSS, median of N runs, with goals.

Builds (once, cached in the work dir) the fixtures: a deterministic ~230 MB random-data OCI
archive of two images with ~49k files, a realistic image (Debian minbase from mmdebstrap plus
a copy of Python's lib, with whiteouts) and the random archives of the RSS-versus-size series;
then runs each case: ctrpy's command and its peers', in turns, each on fresh state. See
bench/README.md. Usage::

    .venv/bin/python bench/run.py                   # every case, 3 runs each, on disk
    .venv/bin/python bench/run.py --tmpfs           # the same with the scratch space on tmpfs
    .venv/bin/python bench/run.py --case 'real-*' -n 5
    .venv/bin/python bench/run.py --list
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import signal
import sys
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import cases as _cases  # noqa: E402  (registers the cases)
from bench import core  # noqa: E402
from bench.core import CASES, Case, CaseResult, Context  # noqa: E402
from bench.fixtures import FILES_PER_MIB, FixtureSpec, RealSpec  # noqa: E402
from bench.measure import CaseFailed, log, remove_tree  # noqa: E402
from bench.report import host_info, render, render_markdown, to_json  # noqa: E402
from tests.peers import have, mounts_under, run  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
TMPFS_SOURCE = "ctrpy-bench"  # the source name `mount` shows for --tmpfs
_ = _cases


def run_case(c: Case, ctx: Context) -> CaseResult:
    res = CaseResult(c.name, c.title, ["ctrpy", *c.peers], c.goals, ctx.mode, check_disk_bound=c.check_disk_bound)
    missing = [t for t in c.needs if not have(t)]
    if missing:
        res.status, res.error = "skipped", f"not installed: {', '.join(missing)}"
        log(f"bench: {c.name}: skipped ({res.error})")
        return res
    log(f"bench: {c.name}: {c.title}")
    try:
        c.fn(ctx, res)
    except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM: the case's state is cleaned up by now
        res.status, res.error = "failed", f"interrupted ({e or 'Ctrl-C'})"
        ctx.interrupted = True
    except CaseFailed as e:
        res.status, res.error = "failed", str(e)
    except Exception as e:  # a broken case must not take the others down
        res.status, res.error = "failed", f"{type(e).__name__}: {e}"
        if ctx.args.debug:
            traceback.print_exc()
    if res.status != "ok":
        log(f"  [{c.name}] {res.status}: {(res.error or '')[:500]}")
    return res


@contextmanager
def scratch_space(args: argparse.Namespace) -> Iterator[Path]:
    """The scratch root: ``WORKDIR/scratch`` on disk, or a tmpfs mounted at ``WORKDIR/tmpfs``
    (unmounted at the end, also when the run is interrupted)."""
    if not args.tmpfs:
        d = args.workdir / "scratch"
        remove_tree(d)  # what an interrupted run left
        d.mkdir(parents=True)
        try:
            yield d
        finally:
            remove_tree(d)
        return
    point = args.workdir / "tmpfs"
    remove_tree(point)  # unmounts a stale tmpfs (and what was mounted inside it) first
    point.mkdir(parents=True)
    run("mount", "-t", "tmpfs", "-o", f"size={args.tmpfs_size},mode=0755", TMPFS_SOURCE, point)
    log(f"bench: scratch space on a tmpfs at {point} (size={args.tmpfs_size})")
    try:
        yield point
    finally:
        for p in mounts_under(point):
            if p != os.path.realpath(point):
                run("umount", "-l", p, check=False)
        if run("umount", point, check=False).returncode != 0:
            run("umount", "-l", point, check=False)
        try:
            point.rmdir()
        except OSError as e:
            log(f"bench: could not remove {point}: {e}")


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # unwinds through the cleanups


def _select(patterns: Sequence[str] | None, p: argparse.ArgumentParser) -> list[Case]:
    if not patterns:
        return list(CASES)
    chosen = []
    for pat in patterns:
        hits = [c for c in CASES if fnmatch.fnmatchcase(c.name, pat)]
        if not hits:
            p.error(f"no case matches {pat!r} (see --list)")
        chosen += [c for c in hits if c not in chosen]
    return [c for c in CASES if c in chosen]


def _sizes(text: str) -> list[int]:
    try:
        sizes = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"not a list of sizes: {text!r}") from e
    if not sizes or sizes[0] < 10:
        raise argparse.ArgumentTypeError("sizes are MB, at least 10")
    return sizes


def list_cases() -> None:
    for c in CASES:
        tools = " vs " + ", ".join(c.peers) if c.peers else " (ctrpy alone)"
        goals = "; ".join(
            f"/{g.tool} <= {g.limit:g}x" + ("" if len(g.modes) > 1 else f" on {g.modes[0]}") for g in c.goals
        )
        print(f"{c.name:19} {c.title}{tools}" + (f"  [goals: {goals}]" if goals else ""))


def _compile_ctrpy() -> None:
    """The benchmarked ctrpy's bytecode brought up to date, as an installed ctrpy has it
    (pip compiles at install time; an editable checkout run with PYTHONDONTWRITEBYTECODE
    would recompile every changed module on every run, and the bench would time the compiler)."""
    import compileall

    import ctrpy

    compileall.compile_dir(str(Path(ctrpy.__file__).parent), quiet=1)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Benchmark ctrpy against ctr, umoci, skopeo and the C limit.")
    p.add_argument("--case", action="append", metavar="NAME",
                   help="run only the cases matching NAME (a glob such as 'real-*'; repeatable)")
    p.add_argument("-n", "--repeat", type=int, default=3, help="measured runs per tool and case (default 3)")
    p.add_argument("--warmup", type=int, default=0, help="untimed runs per tool and case first (default 0)")
    p.add_argument("--tmpfs", action="store_true",
                   help="scratch space (stores, extraction targets, containerd roots, registries) on a tmpfs "
                        "mounted at WORKDIR/tmpfs; fixtures stay cached on disk")
    p.add_argument("--tmpfs-size", default="16g", help="size of that tmpfs (default 16g)")
    p.add_argument("--files", type=int, default=FixtureSpec.files, help="random fixture: files over both images")
    p.add_argument("--size-mib", type=int, default=FixtureSpec.size_mib, help="random fixture: archive size (230)")
    p.add_argument("--layers", type=int, default=FixtureSpec.layers, help="random fixture: layers per image (3)")
    p.add_argument("--seed", type=int, default=FixtureSpec.seed)
    p.add_argument("--series-mib", type=_sizes, default=[100, 300, 1000],
                   help="archive sizes (MB) of the RSS-versus-size series (default 100,300,1000)")
    p.add_argument("--series-density", type=int, default=FILES_PER_MIB, metavar="N",
                   help=f"files per MiB in the series archives (default {FILES_PER_MIB}, as the random fixture)")
    p.add_argument("--mirror", default=RealSpec.mirror, help=f"realistic fixture: Debian mirror ({RealSpec.mirror})")
    p.add_argument("--python-lib", default=None,
                   help="realistic fixture: the Python tree copied into layer 2 (default: this Python's stdlib dir)")
    p.add_argument("--workdir", type=Path,
                   default=Path(os.environ.get("CTRPY_BENCH_DIR", "/var/tmp/ctrpy-bench")),
                   help="fixtures (cached) and scratch space [env CTRPY_BENCH_DIR; default /var/tmp/ctrpy-bench]")
    p.add_argument("--rebuild", action="store_true", help="rebuild the fixture archives")
    p.add_argument("--json", type=Path, default=None,
                   help="where to write the results (default bench/results/latest.json, latest-tmpfs.json with "
                        "--tmpfs); a markdown summary goes next to it (.md)")
    p.add_argument("--ctrpy", default=None, metavar="CMD",
                   help="the ctrpy command to benchmark (split on spaces; default: the ctrpy next to this Python)")
    p.add_argument("--machine", default=None, help="how the report names the machine (default: from /proc)")
    p.add_argument("--note", default="", help="a sentence for the report (e.g. 'The machine was shared.')")
    p.add_argument("--strict", action="store_true", help="exit 1 when a goal fails or a case fails")
    p.add_argument("--list", action="store_true", help="list the cases and exit")
    p.add_argument("--debug", action="store_true", help="tracebacks for failing cases")
    args = p.parse_args(argv)
    if args.list:
        list_cases()
        return 0
    if args.repeat < 1 or args.warmup < 0:
        p.error("--repeat must be at least 1 and --warmup at least 0")
    selected = _select(args.case, p)
    if args.ctrpy:
        core.CTRPY_OVERRIDE[:] = args.ctrpy.split()
    else:
        _compile_ctrpy()
    mode = "tmpfs" if args.tmpfs else "disk"
    if args.json is None:
        args.json = RESULTS / ("latest-tmpfs.json" if args.tmpfs else "latest.json")
    if os.geteuid() != 0:
        log("bench: warning: not root; containerd cases, --tmpfs and the realistic fixture will fail")
    args.workdir = args.workdir.resolve()
    args.workdir.mkdir(parents=True, exist_ok=True)
    spec = FixtureSpec(args.size_mib, args.files, args.layers, args.seed)
    real = RealSpec(mirror=args.mirror, **({"python_lib": args.python_lib} if args.python_lib else {}))
    signal.signal(signal.SIGTERM, _terminate)
    with scratch_space(args) as scratch:
        ctx = Context(args, args.workdir, scratch, mode, spec, real)
        results = []
        for c in selected:  # an interrupted run still reports the cases it finished
            results.append(run_case(c, ctx))
            if ctx.interrupted:
                log("bench: interrupted; reporting the cases run so far")
                break
        host = host_info(ctx)
    print(render(results, ctx))
    markdown = render_markdown(results, ctx, host)
    print(markdown)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.json.with_suffix(".tmp")
    tmp.write_text(json.dumps(to_json(results, ctx, host), indent=2) + "\n")
    os.replace(tmp, args.json)
    args.json.with_suffix(".md").write_text(markdown)
    log(f"bench: results in {args.json} and {args.json.with_suffix('.md')}")
    failed = any(r.status == "failed" for r in results) or any(
        g.passed is False for r in results if r.status == "ok" for g in r.goals()
    )
    if ctx.interrupted:
        return 130
    return 1 if args.strict and failed else 0


if __name__ == "__main__":
    sys.exit(main())
