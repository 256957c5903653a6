"""A published event becomes exactly one well-formed mail, over SMTP or as an .eml file."""

from __future__ import annotations

import time
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest

from notifier.transports import FileTransport, SmtpTransport
from ocrmesh.notify.v1 import email_pb2
from ocrmesh.rules.email_events import EmailPublisher, EmailTopology, new_email_event
from tests.integration.notifier.notifier_support import Broker, RunningNotifier, SmtpSink, wait_until

pytestmark = pytest.mark.integration

BODY = "Your code is 123456.\nGrüße, ocrmesh ✓"


def publish_one(url: str, topology: EmailTopology) -> email_pb2.EmailRequested:
    event = new_email_event(
        to="alice@example.com",
        subject="Your verification code: Ünïcode",
        body=BODY,
        kind=email_pb2.EMAIL_KIND_VERIFICATION_CODE,
        correlation_id="req-42",
    )
    with EmailPublisher(url, topology, connection_name="test-publisher") as publisher:
        publisher.publish(event)
    return event


def test_smtp_mail_has_the_event_content_and_proper_headers(
    rabbitmq_url: str, topology: EmailTopology, smtp_sink: SmtpSink, broker: Broker
) -> None:
    notifier = RunningNotifier(rabbitmq_url, topology, SmtpTransport("127.0.0.1", smtp_sink.port)).start()
    try:
        event = publish_one(rabbitmq_url, topology)
        wait_until(lambda: smtp_sink.handler.count() == 1, 15, "the mail")
        wait_until(lambda: notifier.consumer.stats.delivered == 1, 5, "the ack")
    finally:
        notifier.stop()

    mail = smtp_sink.handler.mails[0]
    assert smtp_sink.handler.envelopes[0] == ("no-reply@ocrmesh.test", ["alice@example.com"])
    assert mail["From"] == "ocrmesh <no-reply@ocrmesh.test>"
    assert mail["To"] == "alice@example.com"
    assert mail["Subject"] == "Your verification code: Ünïcode"
    assert mail["Message-ID"] == f"<{event.event_id}@ocrmesh.test>"
    assert parsedate_to_datetime(mail["Date"]).timestamp() == pytest.approx(event.created_at.seconds, abs=1)
    assert mail["X-Correlation-ID"] == "req-42"
    assert mail.get_content_type() == "text/plain"
    assert mail.get_content_charset() == "utf-8"
    assert mail.get_content().replace("\r\n", "\n").rstrip("\n") == BODY
    assert broker.depth(topology.queue) == 0
    assert broker.depth(topology.dead) == 0


def test_file_transport_writes_one_complete_eml_per_mail(
    rabbitmq_url: str, topology: EmailTopology, tmp_path: Path
) -> None:
    mail_dir = tmp_path / "mail"
    notifier = RunningNotifier(rabbitmq_url, topology, FileTransport(mail_dir)).start()
    try:
        event = publish_one(rabbitmq_url, topology)
        wait_until(lambda: notifier.consumer.stats.delivered == 1, 15, "the mail")
    finally:
        notifier.stop()

    files = list(mail_dir.iterdir())
    assert [f.name.endswith(f"-{event.event_id}.eml") for f in files] == [True]
    mail = message_from_bytes(files[0].read_bytes(), policy=default_policy)
    assert mail["To"] == "alice@example.com"
    assert mail["Subject"] == "Your verification code: Ünïcode"
    assert mail["Message-ID"] == f"<{event.event_id}@ocrmesh.test>"
    assert mail["Date"]
    assert mail.get_content().replace("\r\n", "\n").rstrip("\n") == BODY


def test_the_smtp_connection_is_reused_across_mails(
    rabbitmq_url: str, topology: EmailTopology, smtp_sink: SmtpSink
) -> None:
    transport = SmtpTransport("127.0.0.1", smtp_sink.port)
    notifier = RunningNotifier(rabbitmq_url, topology, transport).start()
    try:
        with EmailPublisher(rabbitmq_url, topology) as publisher:
            for i in range(20):
                publisher.publish(
                    new_email_event(
                        to=f"u{i}@example.com", subject="s", body="b", kind=email_pb2.EMAIL_KIND_OCR_COMPLETED
                    )
                )
        wait_until(lambda: notifier.consumer.stats.delivered == 20, 15, "20 mails")
    finally:
        notifier.stop()
    assert transport.connections_opened == 1


def plain_mail(i: int) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "no-reply@ocrmesh.test"
    message["To"] = f"u{i}@example.com"
    message["Subject"] = f"#{i}"
    message.set_content("b")
    return message


def test_the_smtp_connection_is_renewed_after_a_message_count_and_after_idling(smtp_sink: SmtpSink) -> None:
    transport = SmtpTransport("127.0.0.1", smtp_sink.port, max_messages=3, idle_timeout=0.3)
    for i in range(7):
        transport.send(plain_mail(i), f"ev-{i}")
    assert transport.connections_opened == 3  # 3 + 3 + 1 mails
    time.sleep(0.5)
    transport.close_if_idle()  # what the idle sender thread calls: QUIT, not a dropped socket
    transport.send(plain_mail(7), "ev-7")
    assert transport.connections_opened == 4
    transport.close()
    assert smtp_sink.handler.count() == 8


def test_a_connection_the_server_closed_is_reopened_without_losing_the_mail(smtp_sink: SmtpSink) -> None:
    transport = SmtpTransport("127.0.0.1", smtp_sink.port)
    transport.send(plain_mail(1), "ev-1")
    smtp_sink.stop()  # the server goes away (and closes our connection) and comes back
    smtp_sink.start()
    transport.send(plain_mail(2), "ev-2")
    transport.close()
    assert transport.connections_opened == 2
    assert smtp_sink.handler.count() == 2
