"""What a registry's manifest answers are: the Accept list, Content-Type, schema 1, and
the media type a manifest's JSON says or implies."""

from __future__ import annotations

import json
from typing import Any

from ctrpy.oci import mediatypes as mt

SCHEMA1_TYPES = frozenset(
    {
        "application/vnd.docker.distribution.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
    }
)
MANIFEST_ACCEPT = (mt.DOCKER_MANIFEST, mt.DOCKER_MANIFEST_LIST, mt.OCI_MANIFEST, mt.OCI_INDEX)
GENERIC_TYPES = frozenset({"", "application/json", "application/octet-stream", "text/plain", "binary/octet-stream"})
SCHEMA1_MESSAGE = (
    "schema 1 manifests are no longer supported; rebuild or push the image again as a Docker "
    "schema 2 or OCI image"
)


def base_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def accept_header(first: str | None = None) -> str:
    types = [first] if first and first not in MANIFEST_ACCEPT and first not in GENERIC_TYPES else []
    return ", ".join([*types, *MANIFEST_ACCEPT, "*/*"])


def sniff_media_type(data: bytes) -> tuple[str, int | None, bool]:
    """(the ``mediaType`` a manifest JSON says or implies, its ``schemaVersion``, whether
    the ``mediaType`` was written out rather than implied by the keys)."""
    try:
        obj: Any = json.loads(data)
    except ValueError:
        return "", None, False
    if not isinstance(obj, dict):
        return "", None, False
    version = obj.get("schemaVersion")
    version = version if isinstance(version, int) and not isinstance(version, bool) else None
    media = obj.get("mediaType")
    if isinstance(media, str) and media:
        return media, version, True
    if isinstance(obj.get("manifests"), list):
        return mt.OCI_INDEX, version, False
    if isinstance(obj.get("config"), dict) and isinstance(obj.get("layers"), list):
        return mt.OCI_MANIFEST, version, False
    return "", version, False


def is_manifest_type(media_type: str) -> bool:
    return mt.is_manifest(media_type) or mt.is_index(media_type)


def same_kind(a: str, b: str) -> bool:
    return (mt.is_index(a) and mt.is_index(b)) or (mt.is_manifest(a) and mt.is_manifest(b))
