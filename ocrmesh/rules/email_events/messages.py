"""Building `EmailRequested` events and the AMQP properties they travel with."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pika
from pika.delivery_mode import DeliveryMode

from ocrmesh.notify.v1 import email_pb2
from ocrmesh.platform.request_context import current_request_id
from ocrmesh.platform.telemetry import current_carrier

CONTENT_TYPE = "application/x-protobuf"
EVENT_TYPE: str = email_pb2.EmailRequested.DESCRIPTOR.full_name


def new_email_event(
    *,
    to: str,
    subject: str,
    body: str,
    kind: email_pb2.EmailKind,
    correlation_id: str | None = None,
) -> email_pb2.EmailRequested:
    """A new event with a fresh `event_id` (uuid4), `created_at` now, and the current request id
    as `correlation_id` unless one is given."""
    event = email_pb2.EmailRequested(
        event_id=str(uuid.uuid4()),
        to=to,
        subject=subject,
        body=body,
        kind=kind,
        correlation_id=correlation_id if correlation_id is not None else (current_request_id() or ""),
    )
    event.created_at.FromDatetime(datetime.now(UTC))
    return event


def event_properties(event: email_pb2.EmailRequested) -> pika.BasicProperties:
    """Persistent delivery, `message_id` = `event_id`, `type` = the message's full name, and
    when tracing is on the current trace context as W3C headers (`traceparent`), so the
    notifier's delivery joins the trace that caused the mail."""
    return pika.BasicProperties(
        content_type=CONTENT_TYPE,
        delivery_mode=DeliveryMode.Persistent,
        message_id=event.event_id,
        type=EVENT_TYPE,
        timestamp=event.created_at.seconds or None,
        correlation_id=event.correlation_id or None,
        headers=current_carrier() or None,
    )
