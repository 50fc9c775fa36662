"""Small helpers for the review tests: build an archive, run ctrpy in-process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from ctrpy.cli.main import cli
from ctrpy.oci import Platform
from tests.builders import ANNOTATION_IMAGE_NAME, Image, OCILayout

HOST = Platform.host()
CLEAN_ENV: dict[str, str | None] = {
    "CTRPY_ROOT": None, "CTRPY_NAMESPACE": None, "CONTAINERD_NAMESPACE": None, "CTRPY_DEBUG": None,
    "CTRPY_SNAPSHOTTER": None, "CTRPY_PROGRESS": None, "FORCE_COLOR": None, "NO_COLOR": None,
}


def archive(name: str, layers: list[list[Any]], **kw: Any) -> bytes:
    """An oci-archive with one host-platform image named ``name``."""
    kw.setdefault("architecture", HOST.architecture)
    kw.setdefault("variant", HOST.variant or None)
    layout = OCILayout()
    layout.add_manifest(Image(layers=layers, **kw), {ANNOTATION_IMAGE_NAME: name})
    return layout.tar_bytes()


class Run:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.runner = CliRunner()

    def __call__(self, *args: str, input: bytes | None = None) -> Result:
        return self.runner.invoke(cli, ["--root", str(self.root), *args], input=input, env=CLEAN_ENV)

    def ok(self, *args: str, input: bytes | None = None) -> Result:
        r = self(*args, input=input)
        assert r.exit_code == 0, (r.exit_code, r.stderr, r.exception)
        return r
