"""Shared fixtures of the second review's regression tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.review2._helpers import SNAPSHOTTERS, Run, usable


@pytest.fixture
def run(tmp_path: Path) -> Run:
    return Run(tmp_path / "root")


@pytest.fixture(params=SNAPSHOTTERS)
def snapshotter(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if not usable(request.param, tmp_path):
        pytest.skip("overlayfs needs root and a mountable overlay filesystem")
    return str(request.param)
