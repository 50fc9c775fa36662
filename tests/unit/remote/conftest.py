"""The registry fixtures (see tests/registry/fixtures.py) for the remote tests."""

from tests.registry.fixtures import *  # noqa: F403
