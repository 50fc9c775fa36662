"""Shared fixtures of the review regression tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.review._helpers import Run


@pytest.fixture
def run(tmp_path: Path) -> Run:
    return Run(tmp_path / "root")
