"""docker-compose.yml loaded once per module, with the sample secrets `make up` would read
from .env."""

from __future__ import annotations

from typing import Any

import pytest

from harness.deployment import compose_env, load_compose, services


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The whole file, interpolated."""
    return load_compose(compose_env())


@pytest.fixture(scope="module")
def svc(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Its services, by name."""
    return services(compose)
