"""Building events and their AMQP properties."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from ocrmesh.notify.v1 import email_pb2
from ocrmesh.platform.request_context import reset_request_id, set_request_id
from ocrmesh.rules.email_events import CONTENT_TYPE, event_properties, new_email_event


def test_a_new_event_has_a_fresh_id_and_timestamp() -> None:
    before = datetime.now(UTC)
    event = new_email_event(
        to="a@example.com", subject="s", body="b", kind=email_pb2.EMAIL_KIND_VERIFICATION_CODE
    )
    assert uuid.UUID(event.event_id).version == 4
    assert (
        before.timestamp() - 1
        <= event.created_at.ToDatetime(tzinfo=UTC).timestamp()
        <= before.timestamp() + 5
    )
    assert (event.to, event.subject, event.body) == ("a@example.com", "s", "b")
    assert event.kind == email_pb2.EMAIL_KIND_VERIFICATION_CODE
    other = new_email_event(
        to="a@example.com", subject="s", body="b", kind=email_pb2.EMAIL_KIND_VERIFICATION_CODE
    )
    assert other.event_id != event.event_id


def test_the_correlation_id_defaults_to_the_current_request_id() -> None:
    token = set_request_id("req-7")
    try:
        implicit = new_email_event(
            to="a@example.com", subject="s", body="b", kind=email_pb2.EMAIL_KIND_OCR_COMPLETED
        )
        explicit = new_email_event(
            to="a@example.com",
            subject="s",
            body="b",
            kind=email_pb2.EMAIL_KIND_OCR_COMPLETED,
            correlation_id="x",
        )
    finally:
        reset_request_id(token)
    assert implicit.correlation_id == "req-7"
    assert explicit.correlation_id == "x"


def test_properties_make_a_persistent_typed_message() -> None:
    event = new_email_event(
        to="a@example.com", subject="s", body="b", kind=email_pb2.EMAIL_KIND_OCR_COMPLETED
    )
    props = event_properties(event)
    assert props.delivery_mode == 2
    assert props.message_id == event.event_id
    assert props.type == "ocrmesh.notify.v1.EmailRequested"
    assert props.content_type == CONTENT_TYPE == "application/x-protobuf"
