"""Where each delivery decision sends the message, and what it writes on the copy."""

from __future__ import annotations

from datetime import UTC, datetime

from notifier.delivery import (
    ATTEMPT_HEADER,
    LAST_ERROR_HEADER,
    PARK_REASON_HEADER,
    PARKED_AT_HEADER,
    Ack,
    Defer,
    Park,
    Retry,
)
from notifier.settlement import MAX_HEADER_CHARS, republish_for
from ocrmesh.rules.email_events import EmailTopology

TOPOLOGY = EmailTopology(queue="q", retry_delays=(5, 30))


def test_a_delivered_or_duplicate_mail_is_only_acked() -> None:
    assert republish_for(Ack("e1"), TOPOLOGY) is None
    assert republish_for(Ack("e1", duplicate=True), TOPOLOGY) is None


def test_a_retry_goes_to_the_delay_queue_of_its_delay_as_the_next_attempt() -> None:
    copy = republish_for(Retry(next_attempt=3, delay=30, reason="421 try later"), TOPOLOGY)

    assert copy is not None
    assert copy.routing_key == "q.retry.30s"
    assert copy.headers == {ATTEMPT_HEADER: 3, LAST_ERROR_HEADER: "421 try later"}


def test_a_deferred_mail_waits_in_the_delay_queue_as_the_same_attempt() -> None:
    copy = republish_for(Defer(delay=5, attempt=2, reason="claimed elsewhere"), TOPOLOGY)

    assert copy is not None
    assert copy.routing_key == "q.retry.5s"
    assert copy.headers == {ATTEMPT_HEADER: 2, LAST_ERROR_HEADER: "claimed elsewhere"}


def test_a_parked_mail_says_why_after_how_many_attempts_and_when() -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    copy = republish_for(Park(reason="550 no such user", attempts=4), TOPOLOGY)

    assert copy is not None
    assert copy.routing_key == "q.dead"
    assert copy.headers[PARK_REASON_HEADER] == "550 no such user"
    assert copy.headers[ATTEMPT_HEADER] == 4
    assert datetime.fromisoformat(str(copy.headers[PARKED_AT_HEADER])) >= before


def test_long_reasons_are_cut_to_a_header_size() -> None:
    copy = republish_for(Retry(next_attempt=2, delay=5, reason="x" * 5000), TOPOLOGY)

    assert copy is not None
    assert copy.headers[LAST_ERROR_HEADER] == "x" * MAX_HEADER_CHARS
