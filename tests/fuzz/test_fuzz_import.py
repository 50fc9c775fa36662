"""Both importers, through the library: any archive is imported (and unpacked) or refused
with a CtrpyError, and a refused one leaves no image, no content row and no snapshot."""

from __future__ import annotations

import functools
import io
import os
from pathlib import Path
from typing import Any
from unittest import mock

from hypothesis import event, given
from hypothesis import strategies as st

from ctrpy.client import Client
from ctrpy.errors import CtrpyError
from ctrpy.formats import ImportOptions
from ctrpy.oci import Matcher
from tests.fuzz.strategies import docker_archives, fuzz, oci_archives
from tests.helpers import SNAPSHOTTERS, scratch_dir, usable


@functools.cache
def overlay_usable() -> bool:
    with scratch_dir() as tmp:
        return usable("overlayfs", tmp)


def visible(client: Client, snapshotter: str) -> dict[str, Any]:
    """What the store holds, as its users see it."""
    return {
        "images": sorted((i.name, i.target.digest) for i in client.images.list()),
        "content": sorted(i.digest for i in client.content.list()),
        "snapshots": sorted((s.key, s.kind) for s in client.snapshotter(snapshotter).list()),
    }


@fuzz(60)
@given(
    data=st.one_of(oci_archives(), docker_archives()),
    importer=st.sampled_from(["auto", "oci.v1", "docker.v1.2"]),
    unpack=st.booleans(),
    snapshotter=st.sampled_from(SNAPSHOTTERS),
    all_platforms=st.booleans(),
)
def test_any_archive_is_imported_or_refused_leaving_nothing(
    data: bytes, importer: str, unpack: bool, snapshotter: str, all_platforms: bool
) -> None:
    with scratch_dir() as tmp, mock.patch.object(os, "fsync", lambda _fd: None):
        if snapshotter == "overlayfs" and not overlay_usable():
            snapshotter = "native"
        client = Client(Path(tmp) / "root")
        try:
            before = visible(client, snapshotter)
            options = ImportOptions(matcher=Matcher(all_platforms=all_platforms) if all_platforms else Matcher.default())
            try:
                images = client.import_archive(io.BytesIO(data), importer, options, unpack=unpack,
                                               snapshotter=snapshotter)
            except CtrpyError as e:
                event(f"refused: {type(e).__name__}")
                assert visible(client, snapshotter) == before
                return
            event("imported, unpacked" if unpack else "imported")
            assert images
            for image in images:
                client.check(image, snapshotter=snapshotter)
            assert not [s for s in client.snapshotter(snapshotter).list() if s.kind == "active"]
        finally:
            client.close()
