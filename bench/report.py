"""Reporting: the text tables, the markdown summary (for README's performance table) and the
JSON results."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.core import CaseResult, Context, Goal, ctrpy_base
from bench.measure import RSS_METHOD, MiB, Sample
from tests.peers import have, run

VERDICT = {True: "PASS", False: "FAIL", None: "n/a"}


def _fmt_s(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def _fmt_ratio(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def _fmt_mib(v: int | float | None) -> str:
    return "-" if v is None else f"{v / MiB:.1f}"


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    return ["   " + "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            for row in (header, *rows)]


def _goal_line(g: Goal, disk_bound: bool | None = None) -> str:
    value = "-" if g.value is None else f"{g.value:.3f}" if g.unit == "x" else f"{g.value:.1f}"
    src = f" ({g.source})" if g.source else ""
    bound = "  (disk-bound)" if disk_bound and g.unit == "x" else ""
    return f"   goal: {g.what} <= {g.limit:g}{g.unit}{src}: {value}{g.unit}  {VERDICT[g.passed]}{bound}"


def render(results: list[CaseResult], ctx: Context) -> str:
    lines: list[str] = []
    for r in results:
        lines.append(f"## {r.name}: {r.title}   (median of {ctx.args.repeat}, {ctx.mode})")
        if r.status != "ok":
            lines.append(f"   {r.status.upper()}: {r.error}")
        for note in r.notes:
            lines.append(f"   {note}")
        if r.series:
            rows = []
            for p in r.series:
                if not p.samples:
                    continue
                rows.append([
                    f"{p.size_mib} MB", f"{p.archive_bytes / MiB:.1f}", str(p.entries),
                    _fmt_s(_median([s.seconds for s in p.samples])),
                    " ".join(f"{s.seconds:.2f}" for s in p.samples),
                    _fmt_mib(p.median_peak), _fmt_mib(max(s.peak_rss for s in p.samples)),
                ])
            if rows:
                lines += _table(["archive", "MiB", "files", "median s", "runs (s)", "peak RSS MiB (median)", "(max)"],
                                rows)
        rows = []
        for tool in r.tools:
            samples = r.samples.get(tool) or []
            if not samples:
                continue
            daemon = [s.daemon_peak_rss for s in samples if s.daemon_peak_rss is not None]
            cpu = [s.total_cpu_seconds for s in samples if s.total_cpu_seconds is not None]
            rows.append([
                tool,
                _fmt_s(r.median_seconds(tool)),
                " ".join(f"{s.seconds:.2f}" for s in samples),
                _fmt_s(_median(cpu)),
                _fmt_mib(statistics.median(s.peak_rss for s in samples)),
                _fmt_mib(statistics.median(daemon)) if daemon else "-",
            ])
        if rows:
            lines += _table(["tool", "median s", "runs (s)", "cpu s", "peak RSS MiB (median)", "daemon peak RSS MiB"],
                            rows)
        ratios = [f"ratio ctrpy/{t}: {_fmt_ratio(r.ratio(t))}" for t in r.tools[1:] if r.samples.get(t)]
        if ratios and r.samples.get("ctrpy"):
            lines.append("   " + "   ".join(ratios))
        if r.status == "ok":
            for g in r.goals():
                lines.append(_goal_line(g, r.disk_bound))
        lines.append("")
    return "\n".join(lines)


def _goal_cell(goals: list[Goal], tool: str) -> tuple[str, str]:
    for g in goals:
        if g.unit == "x" and g.what.endswith(f"/{tool}"):
            return f"≤ {g.limit:g}", VERDICT[g.passed]
    return "—", ""


def render_markdown(results: list[CaseResult], ctx: Context, host: dict[str, Any]) -> str:
    """The summary table README's performance section is regenerated from."""
    when = datetime.now(UTC).strftime("%Y-%m-%d")
    head = (f"Measured {when} on {host['machine_name']}; scratch on {host['scratch_fs']} "
            f"({'--tmpfs' if ctx.mode == 'tmpfs' else 'disk mode'}); median of {ctx.args.repeat}"
            + (f" after {ctx.args.warmup} warm-up" if ctx.args.warmup else "") + "."
            + (f" {ctx.args.note}" if ctx.args.note else ""))
    table = ["| case | against | ctrpy s | peer s | ratio | goal | | ctrpy peak RSS MiB |", "|---|---|---|---|---|---|---|---|"]
    out = [head, ""]
    series_rows = []
    for r in results:
        if r.series:
            series_rows.append(r)
            continue
        goals = r.goals()
        rss = max((s.peak_rss for s in r.samples.get("ctrpy", [])), default=None)
        peers = [t for t in r.tools[1:]] or ["-"]
        for tool in peers:
            if r.status == "skipped":
                table.append(f"| `{r.name}` | {tool} | skipped | | | | | |")
                continue
            goal, verdict = _goal_cell(goals, tool)
            if r.disk_bound and verdict:
                verdict += " (disk-bound)"
            if r.status == "failed" and tool not in r.failed_tools and "ctrpy" in r.failed_tools:
                verdict = "ctrpy failed"
            elif r.status == "failed":
                verdict = "failed"
            table.append(f"| `{r.name}` | {tool} | {_fmt_s(r.median_seconds('ctrpy'))} | {_fmt_s(r.median_seconds(tool))} "
                       f"| {_fmt_ratio(r.ratio(tool))} | {goal} | {verdict} | {_fmt_mib(rss)} |")
    if len(table) > 2:
        out += [*table, ""]
    if series_rows:
        out += ["| series | archives MB | ctrpy s | ctrpy peak RSS MiB | spread | goal | |", "|---|---|---|---|---|---|---|"]
        for r in series_rows:
            pts = [p for p in r.series if p.samples]
            goals = {g.unit: g for g in r.goals()} if r.status == "ok" else {}
            spread = goals.get("%")
            verdict = "failed" if r.status == "failed" else ", ".join(
                f"{'RSS' if u == 'MiB' else 'flat'} {VERDICT[g.passed]}" for u, g in goals.items())
            out.append(
                f"| `{r.name}` | {' / '.join(str(p.size_mib) for p in r.series)} "
                f"| {' / '.join(_fmt_s(_median([s.seconds for s in p.samples])) for p in pts) or '-'} "
                f"| {' / '.join(_fmt_mib(p.median_peak) for p in pts) or '-'} "
                f"| {'-' if spread is None or spread.value is None else f'{spread.value:.1f}%'} "
                f"| ≤ 100 MiB, ≤ 10% | {verdict} |")
    return "\n".join(out).rstrip("\n") + "\n"


def _version(*cmd: str) -> str | None:
    if not have(cmd[0]):
        return None
    proc = run(*cmd, check=False)
    out = (proc.stdout or proc.stderr).strip().splitlines()
    return out[0] if out else None


def fs_type(path: Path) -> str:
    """The type of the filesystem ``path`` is on (ext4, tmpfs, ...)."""
    for cmd in (["findmnt", "-n", "-o", "FSTYPE", "--target", str(path)], ["stat", "-f", "-c", "%T", str(path)]):
        if have(cmd[0]):
            out = subprocess.run(cmd, capture_output=True, text=True, check=False).stdout.strip()
            if out:
                return out.splitlines()[0]
    return "?"


def host_info(ctx: Context) -> dict[str, Any]:
    cpu_model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    virt = subprocess.run(["systemd-detect-virt"], capture_output=True, text=True, check=False).stdout.strip() \
        if have("systemd-detect-virt") else ""
    name = ctx.args.machine or (
        f"{os.cpu_count()} cores ({cpu_model}), {mem / (1 << 30):.0f} GiB RAM"
        + (f", virtualization {virt}" if virt and virt != "none" else "") + f", Linux {platform.release()}"
    )
    return {
        "machine_name": name,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_model": cpu_model,
        "mem_bytes": mem,
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "workdir_fs": fs_type(ctx.workdir),
        "scratch_fs": fs_type(ctx.scratch_root),
        "ctrpy_command": ctrpy_base(),
        "ctrpy": _version(*ctrpy_base(), "--version"),
        "ctr": _version("ctr", "--version"),
        "containerd": _version("containerd", "--version"),
        "umoci": _version("umoci", "--version"),
        "skopeo": _version("skopeo", "--version"),
        "docker-registry": _version("docker-registry", "--version"),
        "mmdebstrap": _version("mmdebstrap", "--version"),
        "tar": _version("tar", "--version"),
    }


def _samples(ss: list[Sample]) -> dict[str, Any]:
    return {
        "seconds": [round(s.seconds, 4) for s in ss],
        "median_seconds": None if not ss else round(statistics.median(s.seconds for s in ss), 4),
        "cpu_seconds": [None if s.cpu_seconds is None else round(s.cpu_seconds, 3) for s in ss],
        "peak_rss_bytes": [s.peak_rss for s in ss],
        "daemon_peak_rss_bytes": [s.daemon_peak_rss for s in ss],
        "daemon_cpu_seconds": [None if s.daemon_cpu_seconds is None else round(s.daemon_cpu_seconds, 3) for s in ss],
    }


def _case_json(r: CaseResult) -> dict[str, Any]:
    ratios = {t: (None if r.ratio(t) is None else round(r.ratio(t) or 0, 4)) for t in r.tools[1:]}
    return {
        "name": r.name,
        "title": r.title,
        "tools": r.tools,
        "peer": r.peer,
        "status": r.status,
        "error": r.error,
        "failed_tools": r.failed_tools,
        "notes": r.notes,
        "results": {t: _samples(r.samples.get(t) or []) for t in r.tools},
        "ratios": ratios,
        # schema 1's fields, for the first peer
        "ctrpy": _samples(r.samples.get("ctrpy") or []),
        "peer_results": _samples(r.samples.get(r.peer) or []),
        "ratio": ratios.get(r.peer),
        "cpu_share": None if r.cpu_share() is None else round(r.cpu_share() or 0, 3),
        "disk_bound": r.disk_bound,
        "series": [
            {"size_mib": p.size_mib, "archive_bytes": p.archive_bytes, "files": p.entries, "ctrpy": _samples(p.samples)}
            for p in r.series
        ],
        "goals": [
            {"what": g.what, "limit": g.limit, "unit": g.unit, "source": g.source,
             "value": None if g.value is None else round(g.value, 4), "pass": g.passed}
            for g in (r.goals() if r.status == "ok" else [])
        ],
    }


def to_json(results: list[CaseResult], ctx: Context, host: dict[str, Any]) -> dict[str, Any]:
    fixtures: dict[str, Any] = {"random": asdict(ctx.spec)} if {"oci", "docker"} & set(ctx.fixtures) else {}
    for kind, f in sorted(ctx.fixtures.items()):
        entry: dict[str, Any] = {"file": str(f.path), "bytes": f.size, "images": f.names, "digests": f.digests,
                                 "files": f.files}
        if kind.startswith("real-"):
            fixtures["real"] = f.meta
        else:
            entry["spec"] = f.meta.get("spec")
        fixtures[kind] = entry
    return {
        "schemaVersion": 2,
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "mode": ctx.mode,
        "interrupted": ctx.interrupted,
        "workdir": str(ctx.workdir),
        "scratch": str(ctx.scratch_root),
        "note": ctx.args.note,
        "repeat": ctx.args.repeat,
        "warmup": ctx.args.warmup,
        "rss_method": RSS_METHOD,
        "host": host,
        "fixtures": fixtures,
        "cases": [_case_json(r) for r in results],
    }
