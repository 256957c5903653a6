"""Scratch resources on the real PostgreSQL and RabbitMQ that a test run or a benchmark makes
for itself and removes afterwards: which server to use, a database of its own, the queues of
an email topology."""

from __future__ import annotations

import os

import pika
from sqlalchemy.engine import make_url

from ocrmesh.platform.database import drop_database, ensure_database
from ocrmesh.rules.email_events.topology import EmailTopology

DEFAULT_POSTGRES_ADMIN_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"

__all__ = [
    "DEFAULT_POSTGRES_ADMIN_URL",
    "create_scratch_database",
    "delete_queues",
    "drop_database",
    "postgres_admin_url",
    "scratch_database_url",
]


def postgres_admin_url() -> str:
    """The server scratch databases are made on: TEST_POSTGRES_URL, else the local one."""
    return os.environ.get("TEST_POSTGRES_URL", DEFAULT_POSTGRES_ADMIN_URL)


def scratch_database_url(admin_url: str, name: str) -> str:
    """`admin_url` pointed at the database `name` (same server and credentials)."""
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def create_scratch_database(admin_url: str, name: str) -> str:
    """Create the database `name` on `admin_url`'s server; its URL. `drop_database` removes it."""
    url = scratch_database_url(admin_url, name)
    ensure_database(url)
    return url


def delete_queues(rabbitmq_url: str, topology: EmailTopology) -> None:
    """Delete every queue of `topology`, messages included."""
    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq_url))
    try:
        topology.delete(connection.channel())
    finally:
        connection.close()
