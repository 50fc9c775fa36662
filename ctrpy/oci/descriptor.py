"""The OCI content descriptor."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any

from ctrpy.errors import InvalidArchive
from ctrpy.oci import digest as _digest
from ctrpy.oci.platform import Platform


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    platform: Platform | None = field(default=None, compare=False, hash=False)
    urls: tuple[str, ...] = field(default=(), compare=False, hash=False)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.urls:
            out["urls"] = list(self.urls)
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform is not None:
            out["platform"] = self.platform.to_json()
        return out

    @classmethod
    def from_json(cls, obj: Any, *, where: str = "descriptor") -> Descriptor:
        """Parse and schema-check a descriptor read from an archive."""
        if not isinstance(obj, dict):
            raise InvalidArchive(f"{where}: not a JSON object")
        mt = obj.get("mediaType")
        dg = obj.get("digest")
        size = obj.get("size")
        if not isinstance(mt, str) or not mt:
            raise InvalidArchive(f"{where}: missing mediaType")
        if not isinstance(dg, str) or not _digest.is_well_formed(dg):
            raise InvalidArchive(f"{where}: invalid digest {dg!r}")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InvalidArchive(f"{where}: invalid size {size!r}")
        ann = obj.get("annotations") or {}
        if not isinstance(ann, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in ann.items()
        ):
            raise InvalidArchive(f"{where}: annotations must map strings to strings")
        plat = obj.get("platform")
        platform = Platform.from_json(plat, where=where) if plat is not None else None
        urls = obj.get("urls") or []
        if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
            raise InvalidArchive(f"{where}: urls must be a list of strings")
        artifact_type = obj.get("artifactType")
        if artifact_type is not None and not isinstance(artifact_type, str):
            raise InvalidArchive(f"{where}: artifactType must be a string")
        data = obj.get("data")
        if data is not None and (not isinstance(data, str) or not _is_base64(data)):
            raise InvalidArchive(f"{where}: data must be base64")
        return cls(mt, dg, size, dict(ann), platform, tuple(urls))


def _is_base64(text: str) -> bool:
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True
