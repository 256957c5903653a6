"""Fixtures for the notification path: unique queues per test (deleted afterwards), a broker
inspector and a real SMTP sink."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from notifier.db import ensure_database, make_engine, migrate
from notifier.ledger import DeliveryLedger
from ocrmesh.rules.email_events import EmailTopology
from tests.integration.notifier.notifier_support import Broker, SmtpSink


@pytest.fixture
def broker(rabbitmq_url: str) -> Iterator[Broker]:
    inspector = Broker(rabbitmq_url)
    yield inspector
    inspector.close()


@pytest.fixture
def topology(unique_name: str, broker: Broker) -> Iterator[EmailTopology]:
    """A topology of our own with short delays, so retries take fractions of a second."""
    topo = EmailTopology.from_prefix(unique_name, retry_delays=(0.2, 0.5))
    yield topo
    broker.delete_topology(topo)


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink().start()
    yield sink
    sink.stop()


@pytest.fixture(scope="session")
def notifier_database_url(postgres_admin_url: str, run_id: str) -> Iterator[str]:
    """A database of this run's own for the dedup ledger, dropped at the end."""
    url = make_url(postgres_admin_url).set(database=f"ocrmesh_test_{run_id}_notifier")
    rendered = url.render_as_string(hide_password=False)
    ensure_database(rendered)
    yield rendered
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def notifier_engine(notifier_database_url: str) -> Iterator[Engine]:
    engine = make_engine(notifier_database_url)
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def ledger(notifier_engine: Engine) -> Iterator[DeliveryLedger]:
    """The shared ledger (event ids are unique per test, so tests do not see each other's rows)."""
    shared = DeliveryLedger(notifier_engine, lease=2.0, retention=3600.0)
    yield shared
    shared.close()


@pytest.fixture
def make_ledger(notifier_engine: Engine) -> Iterator[Callable[..., DeliveryLedger]]:
    """Ledgers as separate notifier instances would hold them (closed at the end)."""
    made: list[DeliveryLedger] = []

    def make(*, lease: float, retention: float) -> DeliveryLedger:
        made.append(DeliveryLedger(notifier_engine, lease=lease, retention=retention))
        return made[-1]

    yield make
    for one in made:
        one.close()
