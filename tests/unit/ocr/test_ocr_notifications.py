"""The "OCR completed" outbox: fire-and-forget for the caller, retried until the broker
confirms, and every event given up on is counted and logged."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from ocr_svc.notifications import CompletionMailer, completion_email
from ocrmesh.notify.v1 import email_pb2
from ocrmesh.rules.email_events import PublishError
from ocrmesh.rules.tokens import TokenClaims

CLAIMS = TokenClaims(
    user_id="u1",
    email="ada@example.com",
    name="Ada",
    issued_at=datetime.now(UTC),
    expires_at=datetime.now(UTC),
    token_id="t1",
    issuer="ocrmesh-auth",
    audience="ocrmesh",
    key_id="k1",
)


class FlakyPublisher:
    """Refuses the first `failures` publishes (as a broker outage does), then confirms."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.attempts = 0
        self.confirmed: list[str] = []
        self.down = False

    async def publish(self, event: email_pb2.EmailRequested, timeout: float | None = None) -> None:
        self.attempts += 1
        if self.down or self.attempts <= self.failures:
            raise PublishError("broker unreachable")
        self.confirmed.append(event.event_id)


def _event(text: str = "hello") -> email_pb2.EmailRequested:
    return completion_email(CLAIMS, full_text=text, line_count=1, filename="scan.png")


def test_the_mail_goes_to_the_user_in_the_token_with_the_text() -> None:
    event = _event("Line one\nLine two")
    assert event.to == "ada@example.com"
    assert event.kind == email_pb2.EMAIL_KIND_OCR_COMPLETED
    assert "Line one\nLine two" in event.body
    assert '"scan.png"' in event.body
    assert event.event_id


def test_control_characters_of_the_client_file_name_do_not_reach_the_mail() -> None:
    event = completion_email(CLAIMS, full_text="x", line_count=1, filename="a\r\nBcc: evil@example.com")
    assert "\r" not in event.body
    assert '"aBcc: evil@example.com"' in event.body


async def test_an_event_is_published_once_after_failed_attempts() -> None:
    publisher = FlakyPublisher(failures=3)
    mailer = CompletionMailer(publisher, initial_backoff=0.01, max_backoff=0.02)
    mailer.start()
    event = _event()
    assert mailer.submit(event)
    await asyncio.wait_for(_until(lambda: mailer.published == 1), timeout=5)
    assert publisher.confirmed == [event.event_id]
    assert mailer.retries == 3
    assert mailer.dropped == 0
    await mailer.stop(1)


async def test_submit_never_waits_for_the_broker() -> None:
    publisher = FlakyPublisher()
    publisher.down = True
    mailer = CompletionMailer(publisher, buffer_size=10, initial_backoff=10)
    mailer.start()
    for _ in range(5):
        assert mailer.submit(_event())  # returns at once although nothing can be published
    assert mailer.pending == 5
    await mailer.stop(0.05)


async def test_a_full_buffer_refuses_new_events_and_counts_them(caplog: pytest.LogCaptureFixture) -> None:
    publisher = FlakyPublisher()
    publisher.down = True
    mailer = CompletionMailer(publisher, buffer_size=2, initial_backoff=10)
    events = [_event() for _ in range(3)]
    assert mailer.submit(events[0])
    assert mailer.submit(events[1])
    with caplog.at_level(logging.ERROR, logger="ocr_svc.notifications"):
        assert not mailer.submit(events[2])
    assert mailer.dropped == 1
    assert any(getattr(r, "event_id", None) == events[2].event_id for r in caplog.records)


async def test_what_is_still_unsent_at_shutdown_is_counted_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    publisher = FlakyPublisher()
    publisher.down = True
    mailer = CompletionMailer(publisher, initial_backoff=0.01, max_backoff=0.02)
    mailer.start()
    events = [_event() for _ in range(3)]
    for event in events:
        mailer.submit(event)
    await asyncio.wait_for(_until(lambda: publisher.attempts >= 2), timeout=5)
    with caplog.at_level(logging.ERROR, logger="ocr_svc.notifications"):
        await mailer.stop(0.1)
    assert mailer.dropped == 3
    dropped_ids = next(r for r in caplog.records if hasattr(r, "event_ids")).event_ids
    assert sorted(dropped_ids) == sorted(e.event_id for e in events)


async def test_buffered_events_are_flushed_at_shutdown_when_the_broker_is_back() -> None:
    publisher = FlakyPublisher(failures=2)
    mailer = CompletionMailer(publisher, initial_backoff=0.01, max_backoff=0.02)
    mailer.start()
    for _ in range(4):
        mailer.submit(_event())
    await mailer.stop(5)
    assert mailer.published == 4
    assert mailer.dropped == 0


async def _until(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0.01)
