"""Fixtures for the notification path: unique queues per test (deleted afterwards), a broker
inspector and a real SMTP sink."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ocrmesh.events import EmailTopology
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
