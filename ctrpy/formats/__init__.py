"""Pluggable archive formats: the registry, ``oci.v1``, docker-save archives, ``auto``."""

from ctrpy.formats import registry
from ctrpy.formats.base import (
    Exporter,
    ExportOptions,
    ExportTarget,
    ImportContext,
    ImportedImage,
    Importer,
    ImportOptions,
    ImportResult,
)
from ctrpy.formats.detect import AutoFormat
from ctrpy.formats.docker import DockerFormat
from ctrpy.formats.oci import OCIFormat
from ctrpy.formats.registry import get_exporter, get_importer, register

register(OCIFormat)
register(DockerFormat, aliases=("docker.v1.1",))
register(AutoFormat)

__all__ = [
    "ExportOptions",
    "ExportTarget",
    "Exporter",
    "ImportContext",
    "ImportOptions",
    "ImportResult",
    "ImportedImage",
    "Importer",
    "get_exporter",
    "get_importer",
    "register",
    "registry",
]
