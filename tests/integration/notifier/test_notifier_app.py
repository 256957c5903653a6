"""`notifier.app.create_app`: the notifier wired from its settings alone, as `python -m
notifier` runs it, delivers a published event and stops cleanly."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from notifier.app import create_app
from notifier.health import check
from notifier.ledger import ClaimState, DeliveryLedger
from notifier.settings import NotifierSettings
from ocrmesh.notify.v1 import email_pb2
from ocrmesh.rules.email_events import EmailPublisher, EmailTopology, new_email_event
from tests.integration.notifier.notifier_support import wait_until

pytestmark = pytest.mark.integration


def test_the_app_built_from_settings_delivers_a_mail_and_stops_cleanly(
    rabbitmq_url: str,
    notifier_database_url: str,
    ledger: DeliveryLedger,
    topology: EmailTopology,
    tmp_path: Path,
) -> None:
    settings = NotifierSettings(
        rabbitmq_url=rabbitmq_url,
        database_url=notifier_database_url,
        email_queue=topology.queue,
        email_retry_delays=topology.retry_delays,
        smtp_host=None,
        mail_dir=tmp_path / "mail",
        notifier_health_file=tmp_path / "notifier.health",
        notifier_metrics_port=None,
        notifier_senders=2,
        shutdown_grace_seconds=5,
    )
    app = create_app(settings)
    running = threading.Thread(target=app.run, name="notifier-app")
    running.start()
    try:
        assert app.consumer.consuming.wait(15), "never consumed"
        event = new_email_event(
            to="alice@example.com", subject="s", body="b", kind=email_pb2.EMAIL_KIND_VERIFICATION_CODE
        )
        with EmailPublisher(rabbitmq_url, topology, connection_name="test-publisher") as publisher:
            publisher.publish(event)
        wait_until(lambda: app.consumer.stats.delivered == 1, 15, "the mail")
        assert check(settings.notifier_health_file, max_age=30, require_connected=True)[0]
    finally:
        app.stop()
        running.join(30)

    assert not running.is_alive()
    assert [f.name.endswith(f"-{event.event_id}.eml") for f in (tmp_path / "mail").iterdir()] == [True]
    # The ledger remembers the event: another notifier would drop a redelivered copy.
    assert ledger.claim(event.event_id).state is ClaimState.SENT
    assert not settings.notifier_health_file.exists(), "a stopped notifier is not healthy"
