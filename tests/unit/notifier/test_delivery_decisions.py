"""The delivery use case with a fake transport: ack, dedup, retry with delay, park."""

from __future__ import annotations

from email.message import Message

import pytest

from notifier.delivery import (
    ATTEMPT_HEADER,
    Ack,
    Defer,
    DeliveredIds,
    MailDelivery,
    Park,
    Retry,
    attempt_from_headers,
)
from notifier.ledger import Claim, ClaimState
from notifier.transports import PermanentDeliveryError, TransientDeliveryError
from ocrmesh.notify.v1 import email_pb2
from ocrmesh.rules.email_events import EVENT_TYPE, new_email_event


class FakeTransport:
    def __init__(self, *failures: Exception) -> None:
        self.failures = list(failures)
        self.sent: list[Message] = []

    def send(self, message: Message, event_id: str) -> None:
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append(message)

    def close(self) -> None:
        pass


def body() -> bytes:
    e = new_email_event(to="a@example.com", subject="s", body="b", kind=email_pb2.EMAIL_KIND_OCR_COMPLETED)
    return e.SerializeToString()


def delivery(transport: FakeTransport, max_attempts: int = 3) -> MailDelivery:
    return MailDelivery(
        transport, mail_from="n@example.com", retry_delays=(1.0, 10.0), max_attempts=max_attempts
    )


def test_a_delivered_mail_is_acked() -> None:
    transport = FakeTransport()
    decision = delivery(transport).handle(body(), message_type=EVENT_TYPE, attempt=1)
    assert isinstance(decision, Ack)
    assert not decision.duplicate
    assert len(transport.sent) == 1


def test_a_second_delivery_of_the_same_event_sends_nothing() -> None:
    transport = FakeTransport()
    use_case = delivery(transport)
    message = body()
    use_case.handle(message, message_type=EVENT_TYPE, attempt=1)
    assert use_case.handle(message, message_type=EVENT_TYPE, attempt=1) == Ack(
        email_pb2.EmailRequested.FromString(message).event_id, duplicate=True
    )
    assert len(transport.sent) == 1


def test_transient_failures_are_retried_with_growing_delay_then_parked() -> None:
    failure = TransientDeliveryError("451 busy")
    use_case = delivery(FakeTransport(failure, failure, failure), max_attempts=3)
    message = body()
    assert use_case.handle(message, message_type=None, attempt=1) == Retry(2, 1.0, "451 busy")
    assert use_case.handle(message, message_type=None, attempt=2) == Retry(3, 10.0, "451 busy")
    assert use_case.handle(message, message_type=None, attempt=3) == Park(
        "gave up after 3 attempts: 451 busy", 3
    )


def test_a_permanent_failure_is_parked_at_once() -> None:
    decision = delivery(FakeTransport(PermanentDeliveryError("550 no such user"))).handle(
        body(), message_type=None, attempt=1
    )
    assert decision == Park("rejected: 550 no such user", 1)


def test_an_unexpected_error_is_retried_not_dropped() -> None:
    decision = delivery(FakeTransport(RuntimeError("bug"))).handle(body(), message_type=None, attempt=1)
    assert isinstance(decision, Retry)
    assert "bug" in decision.reason


def test_a_malformed_message_is_parked_without_sending() -> None:
    transport = FakeTransport()
    decision = delivery(transport).handle(b"junk\xff", message_type=None, attempt=1)
    assert isinstance(decision, Park)
    assert decision.reason.startswith("malformed: ")
    assert transport.sent == []


@pytest.mark.parametrize(
    ("headers", "attempt"),
    [(None, 1), ({}, 1), ({ATTEMPT_HEADER: 3}, 3), ({ATTEMPT_HEADER: "3"}, 1), ({ATTEMPT_HEADER: -2}, 1)],
)
def test_the_attempt_comes_from_our_header_and_junk_counts_as_the_first(
    headers: dict[str, object] | None, attempt: int
) -> None:
    assert attempt_from_headers(headers) == attempt


def test_the_dedup_memory_is_bounded() -> None:
    ids = DeliveredIds(capacity=3)
    for n in range(5):
        ids.add(str(n))
    assert len(ids) == 3
    assert "0" not in ids
    assert "4" in ids


class BusyLedger:
    """A ledger where another live notifier holds every claim, `lease_left` seconds from its end."""

    def __init__(self, lease_left: float) -> None:
        self.lease_left = lease_left

    def claim(self, event_id: str) -> Claim:
        return Claim(ClaimState.BUSY, lease_left=self.lease_left)


@pytest.mark.parametrize(
    ("delays", "lease_left", "expected"),
    [
        # The production delays and lease (15 s): a copy looks again every 5 s.
        ((5.0, 30.0, 120.0, 600.0), 14.2, 5.0),
        ((5.0, 30.0, 120.0, 600.0), 3.0, 5.0),
        ((5.0, 30.0, 120.0, 600.0), 0.0, 5.0),
        # The longest delay that ends before the lease would, else the shortest.
        ((1.0, 5.0, 30.0), 14.0, 5.0),
        ((1.0, 5.0, 30.0), 4.9, 1.0),
        ((1.0, 5.0, 30.0), 0.5, 1.0),
    ],
)
def test_a_copy_of_an_event_held_elsewhere_looks_again_before_the_holders_lease_would_end(
    delays: tuple[float, ...], lease_left: float, expected: float
) -> None:
    transport = FakeTransport()
    use_case = MailDelivery(
        transport,
        mail_from="n@example.com",
        retry_delays=delays,
        max_attempts=3,
        ledger=BusyLedger(lease_left),  # type: ignore[arg-type]
    )
    decision = use_case.handle(body(), message_type=EVENT_TYPE, attempt=2)
    assert isinstance(decision, Defer)
    assert (decision.delay, decision.attempt) == (expected, 2)
    assert transport.sent == []
