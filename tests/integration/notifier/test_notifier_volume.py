"""Volume and idempotency: every event becomes exactly one mail."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from notifier.transports import FileTransport, SmtpTransport
from ocrmesh.notify.v1 import email_pb2
from ocrmesh.rules.email_events import EmailPublisher, EmailTopology, new_email_event
from tests.integration.notifier.notifier_support import Broker, RunningNotifier, SmtpSink, wait_until

pytestmark = pytest.mark.integration


def test_a_thousand_events_make_exactly_a_thousand_mails(
    rabbitmq_url: str, topology: EmailTopology, smtp_sink: SmtpSink, broker: Broker
) -> None:
    events = [
        new_email_event(
            to=f"user{i}@example.com", subject=f"#{i}", body="done", kind=email_pb2.EMAIL_KIND_OCR_COMPLETED
        )
        for i in range(1000)
    ]
    notifier = RunningNotifier(
        rabbitmq_url, topology, SmtpTransport("127.0.0.1", smtp_sink.port), prefetch=50
    )
    notifier.start()
    try:
        # Four producer threads share one publisher, as a threaded service would.
        with EmailPublisher(rabbitmq_url, topology) as publisher:
            threads = [
                threading.Thread(target=lambda part=events[k::4]: [publisher.publish(e) for e in part])
                for k in range(4)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        wait_until(lambda: smtp_sink.handler.count() >= 1000, 60, "1000 mails")
        wait_until(lambda: notifier.consumer.stats.delivered == 1000, 10, "1000 acks")
    finally:
        notifier.stop()
    ids = smtp_sink.handler.message_ids()
    assert len(ids) == 1000
    assert set(ids) == {f"<{e.event_id}@ocrmesh.test>" for e in events}
    assert broker.depth(topology.queue) == 0
    assert broker.depth(topology.dead) == 0


def test_a_redelivered_event_is_acked_without_a_second_mail(
    rabbitmq_url: str, topology: EmailTopology, tmp_path: Path, broker: Broker
) -> None:
    mail_dir = tmp_path / "mail"
    notifier = RunningNotifier(rabbitmq_url, topology, FileTransport(mail_dir)).start()
    try:
        event = new_email_event(
            to="a@example.com", subject="s", body="b", kind=email_pb2.EMAIL_KIND_OCR_COMPLETED
        )
        with EmailPublisher(rabbitmq_url, topology) as publisher:
            publisher.publish(event)
            wait_until(lambda: notifier.consumer.stats.delivered == 1, 15, "the first mail")
            publisher.publish(event)  # a producer retrying after a lost confirm does this
            wait_until(lambda: notifier.consumer.stats.duplicates == 1, 15, "the duplicate")
    finally:
        notifier.stop()
    assert len(list(mail_dir.glob("*.eml"))) == 1
    assert broker.depth(topology.queue) == 0
