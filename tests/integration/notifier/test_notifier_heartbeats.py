"""A slow SMTP server does not starve the broker connection: sends happen off the I/O thread."""

from __future__ import annotations

import pytest

from notifier.transports import SmtpTransport
from ocrmesh.notify.v1 import email_pb2
from ocrmesh.rules.email_events import EmailPublisher, EmailTopology, new_email_event
from tests.integration.notifier.notifier_support import Broker, RunningNotifier, SmtpSink, wait_until

pytestmark = pytest.mark.integration


def test_a_send_slower_than_the_heartbeat_timeout_keeps_the_connection(
    rabbitmq_url: str, topology: EmailTopology, smtp_sink: SmtpSink, broker: Broker
) -> None:
    # With a 1 s heartbeat the broker drops a connection silent for ~2-3 s; the send takes 5 s.
    smtp_sink.handler.delay = 5.0
    notifier = RunningNotifier(
        rabbitmq_url, topology, SmtpTransport("127.0.0.1", smtp_sink.port, timeout=30), heartbeat=1
    ).start()
    try:
        with EmailPublisher(rabbitmq_url, topology) as publisher:
            publisher.publish(
                new_email_event(
                    to="a@example.com", subject="s", body="b", kind=email_pb2.EMAIL_KIND_OCR_COMPLETED
                )
            )
        wait_until(lambda: notifier.consumer.stats.delivered == 1, 20, "the slow mail to be acked")
    finally:
        notifier.stop()
    stats = notifier.consumer.stats
    assert stats.reconnects == 0
    assert stats.duplicates == 0
    assert smtp_sink.handler.count() == 1
    assert broker.depth(topology.queue) == 0
