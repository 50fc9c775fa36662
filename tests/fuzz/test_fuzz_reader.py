"""The archive reader: any archive (OCI, docker-save, or any tar) is read into the store or
refused with a CtrpyError, and its member names never become paths."""

from __future__ import annotations

import io
import os
from pathlib import Path
from unittest import mock

from hypothesis import event, given
from hypothesis import strategies as st

from ctrpy.content import BlobStore
from ctrpy.errors import CtrpyError
from ctrpy.formats.base import ImportContext, ImportOptions
from ctrpy.formats.reader import read_archive
from tests.fuzz.strategies import docker_archives, fuzz, oci_archives, tar_streams
from tests.helpers import scratch_dir


@fuzz(150)
@given(st.one_of(oci_archives(), docker_archives(), tar_streams()))
def test_any_archive_is_read_or_refused_and_names_stay_keys(data: bytes) -> None:
    with scratch_dir() as tmp, mock.patch.object(os, "fsync", lambda _fd: None):  # durability is not the point
        ctx = ImportContext(BlobStore(Path(tmp) / "content"), ImportOptions())
        try:
            contents = read_archive(io.BytesIO(data), ctx)
            event("read")
            for name in contents.metadata:
                try:
                    contents.json(name)
                except CtrpyError:
                    pass
        except CtrpyError as e:
            event(f"refused: {type(e).__name__}")
        assert os.listdir(tmp) in ([], ["content"])
