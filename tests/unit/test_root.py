"""The root directory (``ctrpy.root``): created lazily, by whichever process writes first."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ctrpy.root import Root


def test_a_root_another_process_creates_at_the_same_moment_is_used(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two processes see no root and both create it: the one that loses the race uses it."""
    mkdir = Path.mkdir

    def created_meanwhile(self: Path, *args: object, **kw: object) -> None:
        if self == root and not root.exists():
            os.mkdir(root)  # the other process, just before us
        mkdir(self, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "mkdir", created_meanwhile)
    Root(root).ensure()
    assert root.is_dir()
