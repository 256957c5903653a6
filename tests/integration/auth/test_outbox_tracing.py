"""The outbox keeps the trace of the call that wrote a row, so the relay's publish, however
late and from its own thread, continues that trace, and the message carries it to the
notifier (real PostgreSQL and RabbitMQ; the SDK's in-memory exporter)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pika
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from auth_svc.db import make_session_factory
from auth_svc.orm import OutboxMessage
from auth_svc.outbox import OutboxRelay
from ocrmesh.notify.v1 import email_pb2
from ocrmesh.platform import telemetry
from ocrmesh.rules.email_events import EmailPublisher, EmailTopology
from tests.integration.auth.auth_support import Mailbox
from tests.integration.auth.test_outbox_relay import queue_events

pytestmark = pytest.mark.integration


@pytest.fixture
def exported() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    telemetry.configure_tracing("auth_svc", {}, exporter=exporter)
    try:
        yield exporter
    finally:
        telemetry.shutdown_tracing()


def stored_trace(engine: Engine, event_id: str) -> dict[str, str] | None:
    with Session(engine) as session:
        return session.scalar(
            select(OutboxMessage.trace_context).where(OutboxMessage.event_id == uuid.UUID(event_id))
        )


def headers_of(mailbox: Mailbox, event_id: str) -> dict[str, Any]:
    """The AMQP headers of the message for `event_id`; every message read is kept in the
    mailbox for the tests that wait for theirs."""
    connection = pika.BlockingConnection(pika.URLParameters(mailbox.url))
    found: dict[str, Any] | None = None
    try:
        channel = connection.channel()
        while True:
            method, properties, body = channel.basic_get(mailbox.topology.queue, auto_ack=True)
            if method is None or body is None:
                break
            event = email_pb2.EmailRequested.FromString(body)
            mailbox.received.append(event)
            if event.event_id == event_id:
                found = dict(properties.headers or {})
    finally:
        connection.close()
    assert found is not None, f"no message for {event_id}"
    return found


async def test_a_row_written_in_a_trace_is_published_later_in_that_trace(
    exported: InMemorySpanExporter,
    auth_engine: Engine,
    email_topology: EmailTopology,
    mailbox: Mailbox,
    rabbitmq_url: str,
) -> None:
    with telemetry.span("Register") as register:
        (event_id,) = queue_events(auth_engine, 1)
    trace_id = format(register.get_span_context().trace_id, "032x")
    stored = stored_trace(auth_engine, event_id)
    assert stored is not None
    assert stored["traceparent"].split("-")[1] == trace_id

    # Later, on the relay's own thread, where no trace is current.
    with EmailPublisher(rabbitmq_url, email_topology, connection_name="auth-test-traced-relay") as publisher:
        relay = OutboxRelay(make_session_factory(auth_engine), publisher, batch_size=100)
        await asyncio.to_thread(relay.run_once)

    provider = telemetry.tracer_provider()
    assert provider is not None
    provider.force_flush()
    publish = next(
        s
        for s in exported.get_finished_spans()
        if s.name == "outbox publish" and s.attributes and s.attributes["messaging.message.id"] == event_id
    )
    assert format(publish.context.trace_id, "032x") == trace_id
    assert publish.parent is not None
    assert publish.parent.span_id == register.get_span_context().span_id
    # The message names the publish as the parent of whatever consumes it.
    traceparent = str(headers_of(mailbox, event_id)["traceparent"])
    assert traceparent.split("-")[1:3] == [trace_id, format(publish.context.span_id, "016x")]


def test_without_tracing_no_trace_is_stored_with_a_row(auth_engine: Engine) -> None:
    (event_id,) = queue_events(auth_engine, 1)
    assert stored_trace(auth_engine, event_id) is None
