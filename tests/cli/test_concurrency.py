"""Many ctrpy processes on one root at once (issue 10, "Concurrency").

Each round starts every command of the round together, as real processes on one root:
two imports of the same archive, imports of other archives that share its base layer,
``images rm`` of the image the previous round imported (which collects), ``content
prune --older-than 0s``, ``images tag``, ``images ls``, ``images extract`` and ``images
export``. Every command succeeds, or fails with its own one-line error (a tag or an
extract of an image not imported yet); no "database is locked" reaches anyone; nothing
another process needs is lost: after each round ``images check`` is clean and every image
that should be there extracts to its own tree.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.builders import BuiltImage, file
from tests.helpers import Cli, Finished, Processes, host_image, named_archive
from tests.treecmp import files

ROUNDS = 3
APP = "docker.io/library/app:v1"
BASE = [file("etc/base", b"the base layer every image shares\n" * 50)]


def image(text: str) -> BuiltImage:
    """An image on the shared base layer, with a layer of its own."""
    return host_image(BASE, [file("app/id", text.encode()), file("app/data", text.encode() * 2000)]).build()


def rotating(n: int) -> str:
    return f"docker.io/library/round:{n}"


@pytest.fixture
def archives(workdir: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for name, text in [(APP, "app"), ("docker.io/library/second:v1", "second")]:
        out[name] = workdir / f"{text}.tar"
        out[name].write_bytes(named_archive((image(text), name)))
    for n in range(ROUNDS):
        out[rotating(n)] = workdir / f"round-{n}.tar"
        out[rotating(n)].write_bytes(named_archive((image(f"round {n}"), rotating(n))))
    return out


def expect_ok(done: Finished) -> None:
    assert done.returncode == 0, str(done)
    assert "database is locked" not in done.stderr, str(done)


def expect_ok_or_not_found(done: Finished, name: str) -> None:
    """Before the image is imported, a command on it fails with its own clean error."""
    if done.returncode != 0:
        assert done.returncode == 1, str(done)
        line = done.error_line()
        assert name in line and "not found" in line, line


def test_six_and_more_processes_on_one_root_lose_nothing(
    procs: Processes, run: Cli, archives: dict[str, Path], workdir: Path
) -> None:
    """The root does not exist when the first round starts: creating it is raced too."""
    expected_tree = {name: files_of(name) for name in archives}
    tags: list[str] = []
    for r in range(ROUNDS):
        extract_to = workdir / f"extract-{r}"
        started = {
            "import-app-1": procs.start("images", "import", str(archives[APP])),
            "import-app-2": procs.start("images", "import", str(archives[APP])),
            "import-second": procs.start("images", "import", str(archives["docker.io/library/second:v1"])),
            "import-round": procs.start("images", "import", str(archives[rotating(r)])),
            "rm-previous": procs.start("images", "rm", rotating(r - 1)),
            "prune": procs.start("content", "prune", "--older-than", "0s"),
            "tag": procs.start("images", "tag", APP, f"docker.io/library/app:r{r}"),
            "ls": procs.start("images", "ls"),
            "extract": procs.start("images", "extract", APP, str(extract_to)),
            "export": procs.start("images", "export", str(workdir / f"export-{r}.tar"), APP),
        }
        done = {what: procs.wait(proc) for what, proc in started.items()}
        for what in ("import-app-1", "import-app-2", "import-second", "import-round", "rm-previous", "prune", "ls"):
            expect_ok(done[what])
        for what in ("tag", "extract", "export"):
            expect_ok_or_not_found(done[what], APP)
            assert "database is locked" not in done[what].stderr
        if done["tag"].returncode == 0:
            tags.append(f"docker.io/library/app:r{r}")
        if done["extract"].returncode == 0:
            assert files(extract_to) == expected_tree[APP]
        else:
            assert not extract_to.exists()
        if r > 0:  # the image imported by the round before exists now: nothing refers to it missing
            for what in ("tag", "extract", "export"):
                assert done[what].returncode == 0, str(done[what])
        want = {APP, "docker.io/library/second:v1", rotating(r), *tags}
        assert_store_holds(run, want)
    for i, name in enumerate(sorted(want)):  # at the end, every image extracts to its own tree
        dest = workdir / f"final-{i}"
        run.ok("images", "extract", name, str(dest))
        assert files(dest) == expected_tree[name if name in expected_tree else APP]  # a tag is app's


def files_of(name: str) -> dict[str, bytes | str | None]:
    text = {"docker.io/library/app:v1": "app", "docker.io/library/second:v1": "second"}.get(name)
    if text is None:
        text = f"round {name.rsplit(':', 1)[1]}"
    return {
        "app": None,
        "app/data": text.encode() * 2000,
        "app/id": text.encode(),
        "etc": None,
        "etc/base": b"the base layer every image shares\n" * 50,
    }


def assert_store_holds(run: Cli, names: set[str]) -> None:
    """Exactly ``names``, every one complete and unpacked, every blob intact, no lease left."""
    checked = json.loads(run.ok("images", "check", "--json").stdout)["items"]
    assert {c["name"] for c in checked} == names
    assert all(c["complete"] and c["unpacked"] for c in checked), checked
    run.ok("content", "verify", "--all")
    assert run.ok("leases", "ls", "-q").stdout == ""
