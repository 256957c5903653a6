"""What cannot be delivered now is retried with delay; what can never be delivered is parked
with the reason; nothing is acked and dropped, nothing retries forever."""

from __future__ import annotations

import time

import pika
import pytest

from notifier.delivery import ATTEMPT_HEADER, PARK_REASON_HEADER
from notifier.transports import SmtpTransport
from ocrmesh.notify.v1 import email_pb2
from ocrmesh.rules.email_events import EmailPublisher, EmailTopology, new_email_event
from tests.integration.notifier.notifier_support import (
    Broker,
    RunningNotifier,
    SmtpSink,
    free_port,
    wait_until,
)

pytestmark = pytest.mark.integration


def event(to: str = "bob@example.com") -> email_pb2.EmailRequested:
    return new_email_event(to=to, subject="hello", body="body", kind=email_pb2.EMAIL_KIND_OCR_COMPLETED)


def parked(broker: Broker, topology: EmailTopology) -> list[tuple[pika.BasicProperties, bytes]]:
    return broker.drain(topology.dead)


def reason(props: pika.BasicProperties) -> str:
    value = (props.headers or {})[PARK_REASON_HEADER]
    return value.decode() if isinstance(value, bytes) else str(value)


def test_poison_messages_are_parked_with_a_reason_and_the_consumer_keeps_going(
    rabbitmq_url: str, topology: EmailTopology, smtp_sink: SmtpSink, broker: Broker
) -> None:
    notifier = RunningNotifier(rabbitmq_url, topology, SmtpTransport("127.0.0.1", smtp_sink.port)).start()
    try:
        no_recipient = event()
        no_recipient.to = ""
        bad_address = event(to="not an address")
        header_injection = event(to="x@example.com\r\nBcc: victim@example.com")
        broker.publish_raw(topology.queue, b"\xff\x00 definitely not protobuf")
        broker.publish_raw(
            topology.queue, event().SerializeToString(), pika.BasicProperties(type="some.other.Event")
        )
        for bad in (no_recipient, bad_address, header_injection):
            broker.publish_raw(topology.queue, bad.SerializeToString())
        good = event()
        with EmailPublisher(rabbitmq_url, topology) as publisher:
            publisher.publish(good)
        wait_until(lambda: smtp_sink.handler.count() == 1, 15, "the good mail")
        wait_until(lambda: notifier.consumer.stats.parked == 5, 15, "5 parked messages")
    finally:
        notifier.stop()

    reasons = sorted(reason(props) for props, _ in parked(broker, topology))
    assert len(reasons) == 5
    assert all(r.startswith("malformed: ") for r in reasons)
    assert any("protobuf" in r for r in reasons)
    assert any("unexpected message type" in r for r in reasons)
    assert any("no recipient" in r for r in reasons)
    assert sum("invalid recipient" in r for r in reasons) == 2
    assert smtp_sink.handler.message_ids() == [f"<{good.event_id}@ocrmesh.test>"]
    assert broker.depth(topology.queue) == 0


def test_mails_arrive_once_the_smtp_server_is_back(
    rabbitmq_url: str, topology: EmailTopology, broker: Broker
) -> None:
    sink = SmtpSink(port=free_port())  # nothing listens there yet
    notifier = RunningNotifier(
        rabbitmq_url, topology, SmtpTransport("127.0.0.1", sink.port, timeout=5), max_attempts=30
    ).start()
    try:
        events = [event(to=f"user{i}@example.com") for i in range(3)]
        with EmailPublisher(rabbitmq_url, topology) as publisher:
            for e in events:
                publisher.publish(e)
        wait_until(lambda: notifier.consumer.stats.retried >= 3, 15, "failed first attempts")
        time.sleep(1.0)  # the server stays down over several retries
        sink.start()
        try:
            wait_until(lambda: sink.handler.count() == 3, 30, "the 3 mails after the server came back")
            wait_until(lambda: notifier.consumer.stats.delivered == 3, 5, "the acks")
        finally:
            sink.stop()
    finally:
        notifier.stop()
    assert sorted(sink.handler.message_ids()) == sorted(f"<{e.event_id}@ocrmesh.test>" for e in events)
    assert notifier.consumer.stats.parked == 0
    assert broker.depth(topology.queue) == 0
    assert all(broker.depth(q) == 0 for q in topology.retry_queues)


def test_a_mail_is_parked_with_the_reason_after_the_attempt_limit(
    rabbitmq_url: str, topology: EmailTopology, broker: Broker
) -> None:
    down = free_port()
    notifier = RunningNotifier(
        rabbitmq_url, topology, SmtpTransport("127.0.0.1", down, timeout=5), max_attempts=3
    )
    notifier.start()
    try:
        e = event()
        with EmailPublisher(rabbitmq_url, topology) as publisher:
            publisher.publish(e)
        wait_until(lambda: notifier.consumer.stats.parked == 1, 20, "the parked mail")
    finally:
        notifier.stop()
    assert notifier.consumer.stats.retried == 2
    [(props, body)] = parked(broker, topology)
    assert props.message_id == e.event_id
    assert email_pb2.EmailRequested.FromString(body) == e
    assert (props.headers or {})[ATTEMPT_HEADER] == 3
    assert reason(props).startswith("gave up after 3 attempts: SMTP unreachable")
    assert broker.depth(topology.queue) == 0


def test_a_4xx_reply_is_retried_and_a_5xx_reply_is_parked(
    rabbitmq_url: str, topology: EmailTopology, smtp_sink: SmtpSink, broker: Broker
) -> None:
    notifier = RunningNotifier(rabbitmq_url, topology, SmtpTransport("127.0.0.1", smtp_sink.port)).start()
    try:
        smtp_sink.handler.fail_next = 2
        smtp_sink.handler.fail_reply = "451 4.3.0 mailbox busy"
        later = event()
        with EmailPublisher(rabbitmq_url, topology) as publisher:
            publisher.publish(later)
            wait_until(lambda: smtp_sink.handler.count() == 1, 15, "the mail after two 451 replies")
            assert notifier.consumer.stats.retried == 2

            smtp_sink.handler.fail_next = 1
            smtp_sink.handler.fail_reply = "550 5.1.1 no such user"
            never = event()
            publisher.publish(never)
            wait_until(lambda: notifier.consumer.stats.parked == 1, 15, "the parked mail")
    finally:
        notifier.stop()
    [(props, _)] = parked(broker, topology)
    assert props.message_id == never.event_id
    assert "550" in reason(props)
    assert reason(props).startswith("rejected: ")
    assert smtp_sink.handler.message_ids() == [f"<{later.event_id}@ocrmesh.test>"]


def test_an_exception_escaping_the_use_case_parks_the_message_and_the_consumer_keeps_going(
    rabbitmq_url: str, topology: EmailTopology, smtp_sink: SmtpSink, broker: Broker
) -> None:
    notifier = RunningNotifier(rabbitmq_url, topology, SmtpTransport("127.0.0.1", smtp_sink.port))
    real_handle = notifier.delivery.handle
    calls = 0

    def handle_failing_once(body: bytes, *, message_type: str | None, attempt: int) -> object:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("boom")
        return real_handle(body, message_type=message_type, attempt=attempt)

    notifier.delivery.handle = handle_failing_once  # type: ignore[method-assign,assignment]
    notifier.start()
    try:
        with EmailPublisher(rabbitmq_url, topology) as publisher:
            publisher.publish(event())
            publisher.publish(event())
        wait_until(lambda: smtp_sink.handler.count() == 1, 15, "the second mail")
        wait_until(lambda: notifier.consumer.stats.parked == 1, 15, "the parked first one")
    finally:
        notifier.stop()
    [(props, _)] = parked(broker, topology)
    assert "boom" in reason(props)
