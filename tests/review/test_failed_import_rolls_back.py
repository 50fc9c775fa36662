"""A failed `images import` leaves no committed snapshot behind (exit 1 = nothing changed).

An archive whose first image unpacks and whose second fails its diffID check: the first
image's snapshots, committed during the import, are removed again (ctrpy/unpack.py rollback).
"""

from __future__ import annotations

from pathlib import Path

from tests.builders import ANNOTATION_IMAGE_NAME, Image, OCILayout, file
from tests.builders.oci import Layer
from tests.review._helpers import HOST, Run


def test_failed_import_leaves_no_snapshots(run: Run, tmp_path: Path) -> None:
    kw = {"architecture": HOST.architecture, "variant": HOST.variant or None}
    good = Image(layers=[[file("g", b"good\n")]], **kw)
    bad = Image(layers=[Layer(content=[file("b", b"bad\n")], diff_id="sha256:" + "0" * 64)], **kw)
    layout = OCILayout()
    layout.add_manifest(good, {ANNOTATION_IMAGE_NAME: "docker.io/library/good:v1"})
    layout.add_manifest(bad, {ANNOTATION_IMAGE_NAME: "docker.io/library/bad:v1"})
    path = tmp_path / "mixed.tar"
    path.write_bytes(layout.tar_bytes())
    r = run("images", "import", "--snapshotter", "native", str(path))
    assert r.exit_code == 1
    assert run.ok("images", "ls", "-q").stdout == ""
    assert run.ok("snapshots", "--snapshotter", "native", "ls", "--json").stdout.count('"key"') == 0
