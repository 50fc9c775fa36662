"""The benchmark cases. Each prepares its state (untimed) and runs :func:`compare` (ctrpy and
its peers side by side) or :func:`series` (ctrpy alone on growing archives)."""

from __future__ import annotations

import json
import sys
import tarfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from bench.core import (
    CaseResult,
    Context,
    GoalSpec,
    Step,
    case,
    compare,
    ctr,
    ctrpy,
    series,
    untimed,
)
from bench.fixtures import Fixture, tag_of
from bench.measure import CaseFailed, MiB, Sample, measure, measure_with_daemon, remove_tree, warm, warm_dir
from tests.builders import ANNOTATION_IMAGE_NAME

OVERLAY = ("--snapshotter", "overlayfs")
CTR_NO_UNPACK = ("--no-unpack", "--all-platforms")
SKOPEO = ("skopeo", "--insecure-policy")
C_LIMIT = "c-limit"
REGISTRY_NEEDS = ("containerd", "ctr", "docker-registry", "skopeo")


# =============================================================================================
# helpers


def _check_listed(root: Path, expected: list[str]) -> None:
    listed = untimed(*ctrpy(root, "images", "ls", "-q")).split()
    if sorted(listed) != sorted(expected):
        raise CaseFailed(f"ctrpy has {listed}, expected {expected}")


def _import_case(ctx: Context, res: CaseResult, kind: str, *ctrpy_flags: str, ctr_flags: tuple[str, ...]) -> None:
    fx = ctx.fixture(kind)
    warm(fx.path)
    res.notes.append(fx.describe())

    def ours() -> Sample:
        with ctx.scratch("ctrpy") as d:
            sample = measure([ctrpy(d / "root", "images", "import", *ctrpy_flags, fx.path)])
            _check_listed(d / "root", fx.names)
            return sample

    def theirs() -> Sample:
        with ctx.containerd() as daemon:
            return measure_with_daemon(daemon.pid, [ctr(daemon, "images", "import", *ctr_flags, fx.path)])

    compare(ctx, res, [("ctrpy", ours), ("ctr", theirs)])


def _export_case(ctx: Context, res: CaseResult, kind: str) -> None:
    fx = ctx.fixture(kind)
    res.notes.append(fx.describe())
    with ctx.scratch("export") as d, ctx.containerd() as daemon:
        root = d / "root"
        untimed(*ctrpy(root, "images", "import", "--no-unpack", fx.path))
        untimed(*ctr(daemon, "images", "import", *CTR_NO_UNPACK, fx.path))
        out = d / "out.tar"
        sizes: dict[str, int] = {}

        def ours() -> Sample:
            sample = measure([ctrpy(root, "images", "export", out, *fx.names)])
            sizes["ctrpy"] = out.stat().st_size
            out.unlink()
            return sample

        def theirs() -> Sample:
            sample = measure_with_daemon(daemon.pid, [ctr(daemon, "images", "export", out, *fx.names)])
            sizes["ctr"] = out.stat().st_size
            out.unlink()
            return sample

        compare(ctx, res, [("ctrpy", ours), ("ctr", theirs)])
        res.notes.append("archives written: " + ", ".join(f"{k} {v / MiB:.1f} MiB" for k, v in sorted(sizes.items())))


def _unpack_layout(fx: Fixture, dest: Path) -> Path:
    with tarfile.open(fx.path) as tf:
        tf.extractall(dest, filter="data")
    warm_dir(dest)
    return dest


def _layers_of(layout: Path, name: str) -> list[Path]:
    """The layer blobs of image ``name`` in an OCI layout, in order."""
    index = json.loads((layout / "index.json").read_text())
    for desc in index["manifests"]:
        if (desc.get("annotations") or {}).get(ANNOTATION_IMAGE_NAME) == name:
            manifest = json.loads((layout / "blobs" / "sha256" / desc["digest"].split(":", 1)[1]).read_text())
            return [layout / "blobs" / "sha256" / lyr["digest"].split(":", 1)[1] for lyr in manifest["layers"]]
    raise CaseFailed(f"{name} is not in {layout}/index.json")


def c_limit_commands(layers: list[Path], dest: Path) -> list[list[str]]:
    """The C limit: ``python -m isal.igzip -dc LAYER | tar -x -C DEST`` per layer, in order
    (decompression and file creation in C, two processes, no whiteout handling)."""
    script = 'set -o pipefail; "$0" -m isal.igzip -dc "$1" | tar -x -C "$2"'
    return [["bash", "-c", script, sys.executable, str(layer), str(dest)] for layer in layers]


def _extract_case(ctx: Context, res: CaseResult, kind: str) -> None:
    """ctrpy's extract of every image of the archive against umoci's raw unpack and the C
    limit, each into fresh directories; ctrpy's store and the OCI layout prepared untimed."""
    fx = ctx.fixture(kind)
    res.notes.append(fx.describe())
    with ctx.scratch("extract") as d:
        root = d / "root"
        untimed(*ctrpy(root, "images", "import", "--no-unpack", fx.path))
        layout = _unpack_layout(fx, d / "layout")
        layers = {n: _layers_of(layout, n) for n in fx.names}

        def extract_with(tool: str, commands: Callable[[str, Path], list[list[str]]], mkdir: bool = False) -> Step:
            def step() -> Sample:
                dests = [d / f"{tool}-{i}" for i in range(len(fx.names))]
                try:
                    for t in dests if mkdir else ():
                        t.mkdir()
                    return measure([c for n, t in zip(fx.names, dests, strict=True) for c in commands(n, t)])
                finally:
                    for t in dests:
                        remove_tree(t)
            return step

        compare(ctx, res, [
            ("ctrpy", extract_with("ctrpy", lambda n, t: [ctrpy(root, "images", "extract", n, t)])),
            ("umoci", extract_with("umoci", lambda n, t: [
                ["umoci", "raw", "unpack", "--image", f"{layout}:{tag_of(n)}", str(t)]])),
            (C_LIMIT, extract_with(C_LIMIT, lambda n, t: c_limit_commands(layers[n], t), mkdir=True)),
        ])
    share = res.cpu_share()
    if share is not None:
        res.notes.append(f"ctrpy on the CPU {share * 100:.0f}% of its wall time (median)"
                         + (": disk-bound" if res.disk_bound else ""))


# =============================================================================================
# the random-data fixture: 2 images, 49,000 files, 230 MiB


@case("import", "import --no-unpack (OCI archive, random data)", goals=[GoalSpec("ctr", 0.7)])
def import_case(ctx: Context, res: CaseResult) -> None:
    """`ctrpy images import --no-unpack A` vs `ctr images import --no-unpack --all-platforms A`,
    each on a fresh root / fresh containerd."""
    _import_case(ctx, res, "oci", "--no-unpack", ctr_flags=CTR_NO_UNPACK)


@case("export", "export of both images (OCI archive, random data)", goals=[GoalSpec("ctr", 0.8)])
def export_case(ctx: Context, res: CaseResult) -> None:
    """`ctrpy images export OUT IMG...` vs `ctr images export OUT IMG...` from stores holding the
    fixture (imported once, untimed)."""
    _export_case(ctx, res, "oci")


@case("import-unpack", "import with unpack, overlayfs (random data)", goals=[GoalSpec("ctr", 0.7, source="issue 4")])
def import_unpack_case(ctx: Context, res: CaseResult) -> None:
    _import_case(ctx, res, "oci", *OVERLAY, ctr_flags=OVERLAY)


@case("extract", "extract both images to directories (random data)", ("umoci", C_LIMIT),
      goals=[GoalSpec("umoci", 0.7, source="issue 4")], needs=("umoci", "bash", "tar"), check_disk_bound=True)
def extract_case(ctx: Context, res: CaseResult) -> None:
    _extract_case(ctx, res, "oci")


@case("docker-import", "import --no-unpack (docker save archive, random data)")
def docker_import_case(ctx: Context, res: CaseResult) -> None:
    _import_case(ctx, res, "docker", "--no-unpack", ctr_flags=CTR_NO_UNPACK)


@case("docker-unpack", "import with unpack of a ~700 MB docker save archive (3 uncompressed layers), overlayfs",
      goals=[GoalSpec("ctr", 0.7, source="issue 5")])
def docker_unpack_case(ctx: Context, res: CaseResult) -> None:
    _import_case(ctx, res, "docker700", *OVERLAY, ctr_flags=OVERLAY)


# =============================================================================================
# the realistic image: Debian minbase + Python's lib with whiteouts, 2 gzip layers (issue 12)


@case("real-import", "import --no-unpack (realistic image, OCI archive)", goals=[GoalSpec("ctr", 0.35, source="issue 12")])
def real_import_case(ctx: Context, res: CaseResult) -> None:
    _import_case(ctx, res, "real-oci", "--no-unpack", ctr_flags=CTR_NO_UNPACK)


@case("real-export", "export (realistic image, OCI archive)", goals=[GoalSpec("ctr", 0.25, source="issue 12")])
def real_export_case(ctx: Context, res: CaseResult) -> None:
    _export_case(ctx, res, "real-oci")


@case("real-import-unpack", "import with unpack, overlayfs (realistic image, OCI archive)",
      goals=[GoalSpec("ctr", 0.5, source="issue 12")])
def real_import_unpack_case(ctx: Context, res: CaseResult) -> None:
    _import_case(ctx, res, "real-oci", *OVERLAY, ctr_flags=OVERLAY)


@case("real-docker-unpack", "import with unpack, overlayfs (realistic image, docker save archive)",
      goals=[GoalSpec("ctr", 0.5, source="issue 12")])
def real_docker_unpack_case(ctx: Context, res: CaseResult) -> None:
    _import_case(ctx, res, "real-docker", *OVERLAY, ctr_flags=OVERLAY)


@case("real-extract", "extract to a directory (realistic image)", ("umoci", C_LIMIT),
      goals=[GoalSpec("umoci", 0.45, ("tmpfs",), "issue 12"), GoalSpec(C_LIMIT, 1.5, ("tmpfs",), "issue 12"),
             GoalSpec("umoci", 0.8, ("disk",), "issue 12")],
      needs=("umoci", "bash", "tar"), check_disk_bound=True)
def real_extract_case(ctx: Context, res: CaseResult) -> None:
    _extract_case(ctx, res, "real-oci")


# =============================================================================================
# a loopback registry (issue 11): pull and push of the realistic image


def _populate(fx: Fixture, remote: str) -> None:
    """Push the archive's image into the registry with skopeo (untimed)."""
    untimed(*SKOPEO, "copy", "--dest-tls-verify=false", f"oci-archive:{fx.path}:{tag_of(fx.names[0])}",
            f"docker://{remote}")


def _pull_step(ctx: Context, remote: str) -> Step:
    def step() -> Sample:
        with ctx.scratch("ctrpy") as d:
            sample = measure([ctrpy(d / "root", "images", "pull", "--plain-http", *OVERLAY, remote)])
            _check_listed(d / "root", [remote])
            return sample
    return step


@case("pull", "pull with unpack from a loopback registry, overlayfs (realistic image)", ("ctr", "ctrpy-import"),
      goals=[GoalSpec("ctr", 0.5, source="issue 11"), GoalSpec("ctrpy-import", 1.15, source="issue 11")],
      needs=REGISTRY_NEEDS)
def pull_case(ctx: Context, res: CaseResult) -> None:
    """`ctrpy images pull --plain-http --snapshotter overlayfs R` vs `ctr images pull
    --plain-http --snapshotter overlayfs R` vs ctrpy's own import with unpack of the same image
    from the local OCI archive; one registry, populated once by skopeo (untimed)."""
    fx = ctx.fixture("real-oci")
    warm(fx.path)
    res.notes.append(fx.describe())
    with ctx.registry() as reg:
        remote = f"{reg.host}/bench/real:{tag_of(fx.names[0])}"
        _populate(fx, remote)
        served = reg.manifest_digest("bench/real", tag_of(fx.names[0]))
        res.notes.append(f"registry serves {served}" + ("" if served == fx.digests[0] else f" (archive: {fx.digests[0]})"))

        def theirs() -> Sample:
            with ctx.containerd() as daemon:
                return measure_with_daemon(daemon.pid, [ctr(daemon, "images", "pull", "--plain-http", *OVERLAY, remote)])

        def local() -> Sample:
            with ctx.scratch("ctrpy-import") as d:
                return measure([ctrpy(d / "root", "images", "import", *OVERLAY, fx.path)])

        compare(ctx, res, [("ctrpy", _pull_step(ctx, remote)), ("ctr", theirs), ("ctrpy-import", local)])


def _push_step(ctx: Context, repo: str, tag: str, command: Callable[[str], list[str]], daemon_pid: int | None = None,
               ) -> Step:
    """Each run pushes into a fresh registry; the tag must be there afterwards."""
    def step() -> Sample:
        with ctx.registry() as reg:
            remote = f"{reg.host}/{repo}:{tag}"
            cmds = [command(remote)]
            sample = measure_with_daemon(daemon_pid, cmds) if daemon_pid else measure(cmds)
            if reg.manifest_digest(repo, tag) is None:
                raise CaseFailed(f"{remote} is not in the registry after `{' '.join(cmds[0])}`")
            return sample
    return step


@case("push", "push to a loopback registry (realistic image)", ("ctr", "skopeo", "curl"),
      goals=[GoalSpec("ctr", 0.7, source="issue 11"), GoalSpec("skopeo", 0.7, source="issue 11")],
      needs=(*REGISTRY_NEEDS, "curl"))
def push_case(ctx: Context, res: CaseResult) -> None:
    """`ctrpy images push --plain-http R NAME` vs `ctr images push --plain-http R NAME` (from
    stores holding the image, imported untimed) vs `skopeo copy oci:LAYOUT:TAG docker://R`
    (from the archive's layout, unpacked untimed) vs the registry's own floor (``bench.floor``:
    the blobs and the manifest PUT by curl, nothing else); each run into a fresh registry."""
    fx = ctx.fixture("real-oci")
    name, tag = fx.names[0], tag_of(fx.names[0])
    res.notes.append(fx.describe())
    with ctx.scratch("push") as d, ctx.containerd() as daemon:
        root = d / "root"
        untimed(*ctrpy(root, "images", "import", "--no-unpack", fx.path))
        untimed(*ctr(daemon, "images", "import", *CTR_NO_UNPACK, fx.path))
        layout = _unpack_layout(fx, d / "layout")
        compare(ctx, res, [
            ("ctrpy", _push_step(ctx, "bench/real", tag,
                                 lambda r: ctrpy(root, "images", "push", "--plain-http", r, name))),
            ("ctr", _push_step(ctx, "bench/real", tag,
                               lambda r: ctr(daemon, "images", "push", "--plain-http", r, name), daemon.pid)),
            ("skopeo", _push_step(ctx, "bench/real", tag, lambda r: [
                *SKOPEO, "copy", "--dest-tls-verify=false", f"oci:{layout}:{tag}", f"docker://{r}"])),
            ("curl", _push_step(ctx, "bench/real", tag, lambda r: [
                sys.executable, str(Path(__file__).with_name("floor.py")), r,
                str(root / "content" / "blobs" / "sha256"), fx.digests[0]])),
        ])


# =============================================================================================
# RSS versus size: ctrpy alone on random-data archives of ~100 MB, 300 MB, 1 GB (issues 11, 12)

SeriesPrep = Callable[[Fixture], AbstractContextManager[Step]]


def _series(ctx: Context, res: CaseResult, prepare: SeriesPrep) -> None:
    series(ctx, res, ctx.args.series_mib, prepare)


@case("rss-import", "RSS vs size: import with unpack, overlayfs", (), needs=())
def rss_import_case(ctx: Context, res: CaseResult) -> None:
    @contextmanager
    def prepare(fx: Fixture) -> Iterator[Step]:
        warm(fx.path)

        def step() -> Sample:
            with ctx.scratch("ctrpy") as d:
                return measure([ctrpy(d / "root", "images", "import", *OVERLAY, fx.path)])
        yield step

    _series(ctx, res, prepare)


@case("rss-extract", "RSS vs size: extract to a directory", (), needs=())
def rss_extract_case(ctx: Context, res: CaseResult) -> None:
    @contextmanager
    def prepare(fx: Fixture) -> Iterator[Step]:
        with ctx.scratch("extract") as d:
            untimed(*ctrpy(d / "root", "images", "import", "--no-unpack", fx.path))

            def step() -> Sample:
                try:
                    return measure([ctrpy(d / "root", "images", "extract", fx.names[0], d / "out")])
                finally:
                    remove_tree(d / "out")
            yield step

    _series(ctx, res, prepare)


@case("rss-pull", "RSS vs size: pull with unpack from a loopback registry, overlayfs", (),
      needs=("docker-registry", "skopeo"))
def rss_pull_case(ctx: Context, res: CaseResult) -> None:
    @contextmanager
    def prepare(fx: Fixture) -> Iterator[Step]:
        with ctx.registry() as reg:
            remote = f"{reg.host}/bench/series:{tag_of(fx.names[0])}"
            _populate(fx, remote)
            yield _pull_step(ctx, remote)

    _series(ctx, res, prepare)


@case("rss-push", "RSS vs size: push to a loopback registry", (), needs=("docker-registry",))
def rss_push_case(ctx: Context, res: CaseResult) -> None:
    @contextmanager
    def prepare(fx: Fixture) -> Iterator[Step]:
        with ctx.scratch("push") as d:
            untimed(*ctrpy(d / "root", "images", "import", "--no-unpack", fx.path))
            name = fx.names[0]
            yield _push_step(ctx, "bench/series", tag_of(name),
                             lambda r: ctrpy(d / "root", "images", "push", "--plain-http", r, name))

    _series(ctx, res, prepare)

