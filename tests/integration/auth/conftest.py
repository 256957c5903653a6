"""auth_svc against the real PostgreSQL (one database per run, migrated by the service's
own start-up path, dropped at the end) and the real RabbitMQ (queues unique to the run)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pika
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from auth_svc.db import drop_database, ensure_database, make_engine, migrate
from auth_svc.keys import generate_key_file, load_private_key
from auth_svc.settings import AuthSettings
from ocrmesh.rules.email_events import EmailTopology
from tests.integration.auth.auth_support import Mailbox, RunningAuth

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def auth_database_url(postgres_admin_url: str, run_id: str) -> Iterator[str]:
    url = make_url(postgres_admin_url).set(database=f"ocrmesh_test_{run_id}_auth")
    rendered = url.render_as_string(hide_password=False)
    ensure_database(rendered)
    yield rendered
    drop_database(rendered)


@pytest.fixture(scope="session")
def auth_engine(auth_database_url: str) -> Iterator[Engine]:
    engine = make_engine(auth_database_url, pool_size=2)
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def email_topology(run_id: str) -> EmailTopology:
    return EmailTopology.from_prefix(f"t_{run_id}_auth")


@pytest.fixture(scope="session")
def mailbox(rabbitmq_url: str, email_topology: EmailTopology) -> Iterator[Mailbox]:
    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq_url))
    email_topology.declare(connection.channel())
    connection.close()
    box = Mailbox(rabbitmq_url, email_topology)
    yield box
    box.delete_queues()


@pytest.fixture(scope="session")
def signing_key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("auth-keys") / "signing.pem"
    generate_key_file(path)
    return path


@pytest.fixture(scope="session")
def signing_key(signing_key_file: Path) -> Ed25519PrivateKey:
    return load_private_key(signing_key_file)


@pytest.fixture
def auth_settings(
    auth_database_url: str,
    auth_engine: Engine,
    rabbitmq_url: str,
    email_topology: EmailTopology,
    signing_key_file: Path,
    tmp_path: Path,
) -> AuthSettings:
    # Every test calls from 127.0.0.1: the client-address throttles start empty for each.
    with auth_engine.begin() as connection:
        connection.execute(text("DELETE FROM auth_throttles"))
    return AuthSettings(
        database_url=auth_database_url,
        rabbitmq_url=rabbitmq_url,
        email_queue=email_topology.queue,
        auth_host="127.0.0.1",
        auth_port=0,
        environment="test",
        auth_signing_key_file=signing_key_file,
        auth_key_dir=tmp_path / "keys",
        outbox_poll_seconds=0.2,
        outbox_publish_timeout_seconds=2.0,
        # Growing delays of milliseconds: tests that are not about throttling never meet
        # them (an Argon2 check takes longer); tests about throttling set their own.
        throttle_base_delay_seconds=0.001,
    )


@pytest.fixture
async def auth(auth_settings: AuthSettings, mailbox: Mailbox) -> AsyncIterator[RunningAuth]:
    running = await RunningAuth.start(auth_settings)
    yield running
    await running.stop()


@pytest.fixture
def email() -> str:
    """An address no other test uses."""
    return f"user-{uuid.uuid4().hex[:12]}@example.com"
