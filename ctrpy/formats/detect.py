"""``auto``: read the archive once, then decide what it is.

OCI when ``oci-layout`` is present (preferred when both are), docker when only
``manifest.json`` is, else "unrecognized image format".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import BinaryIO, ClassVar

from ctrpy.errors import UnsupportedFormat
from ctrpy.formats.base import ImportContext, ImportResult
from ctrpy.formats.docker import MANIFEST_JSON, import_docker_save
from ctrpy.formats.oci import import_oci_layout
from ctrpy.formats.reader import ArchiveContents, read_archive

ContentsImporter = Callable[[ArchiveContents, ImportContext], ImportResult]

# name -> (marker file, importer of already-read contents), in order of preference
DETECTORS: list[tuple[str, str, ContentsImporter]] = [
    ("oci.v1", "oci-layout", import_oci_layout),
    ("docker.v1.2", MANIFEST_JSON, import_docker_save),
]


def detect(contents: ArchiveContents) -> tuple[str, ContentsImporter]:
    for name, marker, importer in DETECTORS:
        if contents.has(marker):
            return name, importer
    raise UnsupportedFormat(
        "unrecognized image format: the archive has neither oci-layout nor manifest.json"
    )


class AutoFormat:
    name: ClassVar[str] = "auto"

    def import_stream(self, stream: BinaryIO, ctx: ImportContext) -> ImportResult:
        contents = read_archive(stream, ctx)
        _name, importer = detect(contents)
        return importer(contents, ctx)
