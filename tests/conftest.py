"""Fixtures every test layer shares: a run id that makes names unique, and where the real
PostgreSQL and RabbitMQ are (override with TEST_POSTGRES_URL / TEST_RABBITMQ_URL)."""

from __future__ import annotations

import os
import uuid

import pytest

from harness.scratch import postgres_admin_url as _postgres_admin_url
from ocrmesh.rules.endpoints import DEFAULT_RABBITMQ_URL

POSTGRES_ADMIN_URL = _postgres_admin_url()
RABBITMQ_URL = os.environ.get("TEST_RABBITMQ_URL", DEFAULT_RABBITMQ_URL)


@pytest.fixture(scope="session")
def run_id() -> str:
    """Short id unique to this test run; prefix database and queue names with it."""
    return uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def rabbitmq_url() -> str:
    return RABBITMQ_URL


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    return POSTGRES_ADMIN_URL


@pytest.fixture
def unique_name(run_id: str) -> str:
    """A name unique to this test: `t_<run>_<random>`."""
    return f"t_{run_id}_{uuid.uuid4().hex[:8]}"
