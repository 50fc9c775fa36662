"""``ctrpy images import`` of any archive, from a file or stdin: exit 0, or exit 1 with one
``ctrpy: error:`` line of at most 1,000 characters and no internal error, the store
unchanged and still working."""

from __future__ import annotations

import os
from unittest import mock

from hypothesis import event, given
from hypothesis import strategies as st

from tests.fuzz.strategies import docker_archives, fuzz, oci_archives, tar_streams
from tests.helpers import Cli, assert_error


@fuzz(40, shared_fixture=True)  # one populated store for every example, on purpose
@given(
    data=st.one_of(oci_archives(), oci_archives(), docker_archives(), tar_streams()),
    stdin=st.booleans(),
    flags=st.sampled_from([[], ["--no-unpack"], ["--format", "oci.v1"], ["--format", "docker.v1.2"],
                           ["--all-platforms"], ["--snapshotter", "native"], ["--compress-blobs"]]),
)
def test_any_archive_imports_or_fails_on_one_line_leaving_the_store_as_it_was(
    populated: Cli, data: bytes, stdin: bool, flags: list[str]
) -> None:
    with mock.patch.object(os, "fsync", lambda _fd: None):
        before = populated.state()
        source = "-" if stdin else populated.write(data)
        r = populated("images", "import", *flags, source, input=data if stdin else None)
        event(f"exit {r.exit_code}")
        if r.exit_code == 0:
            assert "Traceback" not in r.stderr and "internal error" not in r.stderr
            return
        assert_error(r, warnings=True, stdout=None)
        populated.assert_unchanged(before)
        populated.assert_store_works()
