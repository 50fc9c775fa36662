"""Every example block of README.md runs, as it is written.

Each ```` ```sh ```` block runs under ``bash -euo pipefail`` (each ```` ```python ````
block under this Python) in a fresh directory, as a new user would run it after reading
the README so far: ``busybox.tar`` (``docker.io/library/busybox:latest``, one layer, this
machine's platform), ``multi.tar`` (an index for linux/amd64 and linux/arm64) and
``app-oci.tar`` (an entry named by a bare tag) are there, built in code; the store
(``CTRPY_ROOT``) already holds ``busybox.tar`` imported; ``HOME`` is a directory of its own;
``ctrpy``, skopeo and jq are on ``PATH``; a block that says ``$REGISTRY`` gets a
registry of its own (``docker-registry`` on a free loopback port) there.  A block may be marked in an HTML comment just
above its fence: ``readme-test: needs root`` runs only as root, ``readme-test: skip
(REASON)`` never (for what the test cannot give: the network).  The marks are rare and
each carries its reason; a test pins how many there are.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.builders import ANNOTATION_REF_NAME, OCILayout, directory, file, index_of, symlink
from tests.helpers import HOST, host_image, named_archive, require_peer
from tests.peers import Ctrpy
from tests.registry.fixtures import plain_registry  # noqa: F401  (a registry for the blocks that use $REGISTRY)

README = Path(__file__).resolve().parents[2] / "README.md"
FENCE = re.compile(r"^```(\w*)\s*$")
MARK = re.compile(r"^<!-- readme-test: (needs root|skip \((?P<reason>[^)]+)\)) -->$")
RUN = {"sh", "python"}


@dataclass(frozen=True)
class Block:
    line: int  # of the opening fence, 1-based
    language: str
    text: str
    mark: str  # "", "needs root" or "skip (...)"
    reason: str

    @property
    def id(self) -> str:
        return f"README.md:{self.line}"


def blocks(text: str) -> list[Block]:
    """The fenced blocks of ``text`` in the languages the test runs, with their marks."""
    found: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        start, language = i, m[1]
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        mark = MARK.match(lines[start - 1]) if start else None
        if language in RUN:
            found.append(Block(start + 1, language, "\n".join(lines[start + 1:end]) + "\n",
                               mark[1] if mark else "", (mark["reason"] or "") if mark else ""))
        i = end + 1
    return found


BLOCKS = blocks(README.read_text(encoding="utf-8"))


def busybox_like() -> bytes:
    img = host_image([directory("bin"), file("bin/busybox", b"#!busybox\n", 0o755), symlink("bin/sh", "busybox"),
                      directory("etc"), file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n")]).build()
    return named_archive((img, "docker.io/library/busybox:latest"))


def multi_platform() -> bytes:
    other = "arm64" if HOST.architecture != "arm64" else "amd64"
    images = [host_image([file("arch", HOST.architecture.encode())]).build(),
              host_image([file("arch", other.encode())], architecture=other, variant=None).build()]
    layout = OCILayout()
    layout.add_manifest(index_of(images), {"io.containerd.image.name": "docker.io/library/multi:1"})
    return layout.tar_bytes()


def app_oci() -> bytes:
    layout = OCILayout()
    layout.add_manifest(host_image([file("app", b"app")]).build(), {ANNOTATION_REF_NAME: "v1"})
    return layout.tar_bytes()


@pytest.fixture
def reader(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A fresh directory and environment, as the README's reader has them."""
    require_peer("skopeo", "jq")
    work = tmp_path / "work"
    work.mkdir()
    (work / "busybox.tar").write_bytes(busybox_like())
    (work / "multi.tar").write_bytes(multi_platform())
    (work / "app-oci.tar").write_bytes(app_oci())
    (tmp_path / "home").mkdir()
    env = {**Ctrpy.env(), "CTRPY_ROOT": str(tmp_path / "root"), "HOME": str(tmp_path / "home"),
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    env.pop("XDG_DATA_HOME", None)
    Ctrpy(tmp_path / "root")("images", "import", work / "busybox.tar")
    return work, env


def run_block(block: Block, work: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    if block.language == "sh":
        cmd = ["bash", "-euo", "pipefail", "-c", block.text]
    else:
        cmd = [sys.executable, "-c", block.text]
    return subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=600, check=False)


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_the_readme_example_runs(
    block: Block, reader: tuple[Path, dict[str, str]], request: pytest.FixtureRequest
) -> None:
    if block.mark.startswith("skip"):
        pytest.skip(f"{block.id}: {block.reason}")
    if block.mark == "needs root" and os.geteuid() != 0:
        pytest.skip(f"{block.id}: needs root")
    work, env = reader
    if "$REGISTRY" in block.text:  # a registry of its own (tests/registry), on a free loopback port
        env = {**env, "REGISTRY": request.getfixturevalue("plain_registry").host}
    proc = run_block(block, work, env)
    assert proc.returncode == 0, (
        f"the block at {block.id} exited {proc.returncode}:\n{block.text}\n--- stderr\n{proc.stderr[-3000:]}")
    assert "Traceback" not in proc.stderr


def test_the_readme_has_runnable_examples_of_both_languages() -> None:
    assert {b.language for b in BLOCKS} == RUN
    assert len([b for b in BLOCKS if not b.mark]) >= 9


def test_the_marks_that_keep_a_block_from_running_are_few_and_say_why() -> None:
    marked = [b for b in BLOCKS if b.mark]
    assert [b.mark.split(" ")[0] for b in marked] == ["skip", "skip", "needs"]
    assert all(b.reason for b in marked if b.mark.startswith("skip"))


def test_a_mark_that_is_not_understood_is_not_silently_ignored() -> None:
    text = README.read_text(encoding="utf-8")
    assert text.count("<!-- readme-test:") == len([b for b in BLOCKS if b.mark])


def test_blocks_finds_fences_languages_and_marks() -> None:
    text = "a\n<!-- readme-test: skip (the network) -->\n```sh\necho 1\n```\n```text\nno\n```\n```python\nx = 1\n```\n"
    found = blocks(text)
    assert [(b.line, b.language, b.text, b.mark, b.reason) for b in found] == [
        (3, "sh", "echo 1\n", "skip (the network)", "the network"), (9, "python", "x = 1\n", "", "")]


@pytest.mark.parametrize(
    ("language", "text"),
    [
        ("sh", "ctrpy images inspect busybox:latest >/dev/null\nctrpy images inspect nothing:1\necho never\n"),
        ("sh", "ctrpy images inspect nothing:1 | cat\n"),  # pipefail: a failure inside a pipe counts
        ("sh", 'echo "$undefined_variable"\n'),
        ("python", "from ctrpy import Client\nClient().image('nothing:1')\n"),
    ],
    ids=["a-failing-line", "inside-a-pipe", "an-unset-variable", "python"],
)
def test_a_block_that_fails_is_seen_to_fail(reader: tuple[Path, dict[str, str]], language: str, text: str) -> None:
    proc = run_block(Block(1, language, text, "", ""), *reader)
    assert proc.returncode != 0
    assert "never" not in proc.stdout


def test_the_prepared_store_holds_busybox(reader: tuple[Path, dict[str, str]]) -> None:
    proc = run_block(Block(1, "sh", "ctrpy images ls -q\n", "", ""), *reader)
    assert proc.stdout == "docker.io/library/busybox:latest\n"
