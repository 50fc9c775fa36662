"""Export edge cases found in review: a lone manifest of another platform, an OUT that is a directory."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

from tests.builders import file
from tests.review._helpers import Run, archive


def _image(run: Run, tmp_path: Path) -> str:
    path = tmp_path / "in.tar"
    path.write_bytes(archive("docker.io/library/plat:v1", [[file("a", b"a")]], architecture="amd64"))
    run.ok("images", "import", "--no-unpack", "--platform", "linux/amd64", str(path))
    return "plat:v1"


def test_export_platform_mismatch_single_manifest(run: Run, tmp_path: Path) -> None:
    name = _image(run, tmp_path)
    r = run("images", "export", "--platform", "linux/arm64", "-", name)
    if r.exit_code == 0:
        with tarfile.open(fileobj=io.BytesIO(r.stdout_bytes)) as tf:
            index = json.load(tf.extractfile("index.json"))  # type: ignore[arg-type]
            manifest_json = json.load(tf.extractfile("manifest.json"))  # type: ignore[arg-type]
        # whichever way it goes, the two descriptions of the archive must agree
        assert len(manifest_json) == len(index["manifests"]), (index, manifest_json)
    else:
        assert r.exit_code == 1


def test_export_to_directory_error_names_out(run: Run, tmp_path: Path) -> None:
    name = _image(run, tmp_path)
    out = tmp_path / "outdir"
    out.mkdir()
    r = run("images", "export", str(out), name)
    assert r.exit_code == 1
    assert r.stderr.startswith("ctrpy: error: ")
    assert ".tmp" not in r.stderr and str(out) in r.stderr, r.stderr
