"""The real registry fixtures (tests/registry) for the registry commands (pull, push,
fetch); ``client`` stays the store's Client of tests/conftest.py."""

from tests.registry.fixtures import (  # noqa: F401
    basic_registry,
    env,
    fault_proxy,
    plain_registry,
    push,
    pushed_image,
    repo,
    tls_pair,
    tls_registry,
    token_pair,
    token_registry,
    token_server,
)
