"""The Client façade: what it reports and writes beside its stores' own behaviour."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from ctrpy import Client
from ctrpy.progress import BytesWritten, Event
from tests.builders import file
from tests.helpers import host_image, named_archive

NAME = "example.com/demo/app:v1"


def test_export_reports_bytes_written_up_to_the_size_of_the_archive(tmp_path: Path) -> None:
    events: list[Event] = []
    client = Client(tmp_path / "root", progress=events.append)
    client.import_archive(io.BytesIO(named_archive((host_image([file("etc/motd", b"hello\n")]), NAME))), "oci.v1")
    out = tmp_path / "out.tar"
    client.export(client.export_targets([NAME]), out)
    written = [e for e in events if isinstance(e, BytesWritten)]
    size = out.stat().st_size
    assert written[0] == BytesWritten(0, size)
    assert written[-1] == BytesWritten(size, size)
    assert size % tarfile.RECORDSIZE == 0
