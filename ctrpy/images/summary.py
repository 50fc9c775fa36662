"""What ``images ls`` and ``images check`` report of one image (the Client fills them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ctrpy.images.store import Image
from ctrpy.oci import Platform


@dataclass
class ImageSummary:
    """What ``images ls`` shows of one image."""

    image: Image
    size: int | None  # None when content is missing
    platforms: list[Platform]

    def to_json(self) -> dict[str, Any]:
        out = self.image.to_json()
        out["size"] = self.size
        out["platforms"] = [str(p) for p in self.platforms]
        return {k: out[k] for k in ("name", "target", "size", "platforms", "labels", "createdAt", "updatedAt")}


@dataclass
class ImageCheck:
    image: Image
    present: int
    required: int
    size: int
    required_size: int
    unpacked: bool

    @property
    def complete(self) -> bool:
        return self.present == self.required

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.image.name,
            "target": self.image.target.to_json(),
            "complete": self.complete,
            "present": self.present,
            "required": self.required,
            "size": self.size,
            "requiredSize": self.required_size,
            "unpacked": self.unpacked,
        }
