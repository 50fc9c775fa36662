"""What :func:`ctrpy.archive.apply.apply_layer` is told and what it answers (also importable
from ``ctrpy.archive.apply``)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Literal

PROGRESS_EVERY: Final = 64
"""Progress samples: every entry up to this many, then every this-many-th entry."""


@dataclass
class ApplyOptions:
    """How :func:`apply_layer` writes a layer."""

    whiteouts: Literal["delete", "overlay"] = "delete"
    """``delete``: the root holds the parent's full tree (native snapshotter) and
    whiteouts remove things.  ``overlay``: the root is an empty overlayfs upper dir;
    ``.wh.X`` becomes a 0:0 character device X and ``.wh..wh..opq`` sets the xattr
    ``trusted.overlay.opaque=y`` (``user.overlay.opaque`` when not root) on its dir."""
    same_owner: bool = field(default_factory=lambda: os.geteuid() == 0)
    """Apply uid/gid from the tar; when False nothing is chowned and device nodes are
    skipped with a warning."""
    on_warning: Callable[[str], None] | None = None
    """Called with a one-line message for everything skipped; default: logging."""
    on_skipped_device: Callable[[str, str], None] | None = None
    """Called with (entry name, why) for a device node not created, instead of one
    ``on_warning`` line each: the caller says it once for a whole image."""
    on_progress: Callable[[int, int], None] | None = None
    """Called with (entries done, uncompressed tar bytes done) after each of the first
    ``PROGRESS_EVERY`` entries, then after every ``PROGRESS_EVERY``-th, and once after the
    last entry: a sample for a progress display, not an event per entry."""


@dataclass
class ApplyResult:
    """What :func:`apply_layer` read."""

    entries: int
    size: int
    """Bytes of the uncompressed tar stream, including padding after its end."""
    diff_id: str
    """``sha256:<hex>`` of the whole uncompressed tar stream (the layer's diffID)."""
