"""ctrpy's tables and filters against ctr 1.6's, on the same images in a private containerd:
byte for byte where nothing depends on the clock (``images ls``, ``images check``,
``snapshots ls``, ``snapshots tree``), and for ``content ls`` the same bytes once AGE (a
time) and the order of labels (ctr prints a Go map) are set aside — the tab layout itself
is checked by rendering ctr's own cells through ctrpy's tabwriter."""

from __future__ import annotations

import io
import random
import re
import uuid
from dataclasses import dataclass

import pytest

from ctrpy.cli.render import table
from tests.builders import file
from tests.helpers import host_image, named_archive
from tests.peers import Containerd, Ctr, Ctrpy

DEBIAN = "docker.io/library/debian:bookworm"
APP = "docker.io/me/app:v1"
TOOL = "example.com/team/tool:2"


@dataclass
class Both:
    ctr: Ctr
    ctrpy: Ctrpy

    def same(self, *args: str, ctr_args: tuple[str, ...] = ()) -> str:
        """Run ARGS with both (ctr gets ``ctr_args`` before them); assert equal stdout."""
        theirs = self.ctr(*ctr_args, *args).stdout
        ours = self.ctrpy(*args).stdout
        assert ours == theirs
        return str(ours)


@pytest.fixture(scope="module")
def both(containerd: Containerd, tmp_path_factory: pytest.TempPathFactory) -> Both:
    """Three images (one with a 1.6 MB incompressible layer, two sharing a base layer),
    imported into both and unpacked with the native snapshotter; two labelled.  Once for
    the module: the tests only read."""
    tmp_path = tmp_path_factory.mktemp("ctr-output")
    ctr = containerd.in_namespace(f"t-output-{uuid.uuid4().hex[:8]}")
    ctrpy = Ctrpy(tmp_path / "root")
    rnd = random.Random(13)
    base = [file("etc/base", b"base\n")]
    debian = host_image(base, [file("usr/bin/big", rnd.randbytes(1_600_000))]).build()
    app = host_image(base, [file("app/bin", b"app")], [file("app/conf", b"conf")]).build()
    tool = host_image([file("tool", b"tool" * 400)]).build()
    archive = tmp_path / "three.tar"
    archive.write_bytes(named_archive((debian, DEBIAN), (app, APP), (tool, TOOL)))
    ctr("images", "import", "--snapshotter", "native", archive)
    ctrpy("images", "import", "--snapshotter", "native", archive)
    for tool_ in (ctr, ctrpy):
        tool_("images", "label", APP, "team=infra")
        tool_("images", "label", TOOL, "team=tools", "flag")  # `flag` is flag=true for both
    return Both(ctr, ctrpy)


def test_images_ls_is_ctrs_byte_for_byte(both: Both) -> None:
    assert "flag=true,team=tools" in both.same("images", "ls")


@pytest.mark.parametrize(
    "filters",
    [
        ["name~=debian"],
        ['labels."team"==infra'],
        ["labels.flag"],
        ["name~=debian", "labels.team==tools"],
        ["name~=^docker.io,labels.team"],
        ["labels.team!=infra"],
        ["name~=/deb|tool/"],
        ["target.mediatype==application/vnd.oci.image.manifest.v1+json"],
        ["name==nothing"],
    ],
    ids=lambda f: " ".join(f),
)
def test_images_ls_filters_select_what_ctrs_select(both: Both, filters: list[str]) -> None:
    both.same("images", "ls", "-q", *filters)
    both.same("images", "ls", *filters)


def test_images_check_is_ctrs_byte_for_byte(both: Both) -> None:
    out = both.same("images", "check", "--snapshotter", "native")
    assert out.count("complete") == 3


def test_images_check_of_no_image_prints_nothing_as_ctr(both: Both) -> None:
    assert both.same("images", "check", "--snapshotter", "native", "name==nothing") == ""


def test_snapshots_ls_is_ctrs_byte_for_byte(both: Both) -> None:
    both.same("snapshots", "--snapshotter", "native", "ls")


def test_snapshots_tree_is_ctrs_byte_for_byte(both: Both) -> None:
    out = both.same("snapshots", "--snapshotter", "native", "tree")
    assert "  \\_ sha256:" in out


def _cells(line: str) -> list[str]:
    return re.split(r"\t+", line)


def _normalised(out: str) -> list[list[str]]:
    """content ls rows with AGE blanked and each LABELS cell's pairs sorted."""
    rows = []
    for line in out.splitlines()[1:]:
        digest, size, _age, labels = _cells(line)
        rows.append([digest, size, ",".join(sorted(labels.split(",")))])
    return rows


def test_content_ls_has_ctrs_cells(both: Both) -> None:
    theirs = both.ctr("content", "ls").stdout
    ours = both.ctrpy("content", "ls").stdout
    assert ours.splitlines()[0] == theirs.splitlines()[0]
    assert _normalised(ours) == _normalised(theirs)
    assert "1.601MB" in {row[1] for row in _normalised(ours)}


def test_content_ls_is_laid_out_as_ctrs_tabwriter_lays_it_out(both: Both) -> None:
    theirs = both.ctr("content", "ls").stdout
    header, *rows = (_cells(line) for line in theirs.splitlines())
    rendered = _render(header, rows)
    assert rendered == theirs


def _render(header: list[str], rows: list[list[str]]) -> str:
    out = io.StringIO()
    table(out, header, rows, padchar="\t", header_end="", row_end="")
    return out.getvalue()


@pytest.mark.parametrize(
    "filters",
    [['labels."containerd.io/gc.ref.content.config"'], ["digest~=^sha256:[0-7]"],
     ['labels."containerd.io/uncompressed"'], ["labels.nothing", "digest~=f$"]],
    ids=lambda f: " ".join(f),
)
def test_content_ls_filters_select_what_ctrs_select(both: Both, filters: list[str]) -> None:
    both.same("content", "ls", "-q", *filters)


@pytest.mark.parametrize("bad", ["name=x", "labels.", 'name=="x', "name==x,", "name==/x/", "labels.a/b"])
def test_a_filter_ctr_refuses_is_refused(both: Both, bad: str) -> None:
    assert both.ctr("images", "ls", bad, check=False).returncode != 0
    assert both.ctrpy("images", "ls", bad, check=False).returncode == 2
