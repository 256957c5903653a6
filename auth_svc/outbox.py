"""The transactional outbox: emails are rows written with the change that causes them, and
a relay thread publishes pending rows with publisher confirms, then marks them sent.

A RabbitMQ outage only delays mail: rows stay pending until a publish is confirmed.
Several auth_svc instances can relay at once: each claims its batch with
`SELECT ... FOR UPDATE SKIP LOCKED`, so a row is never published by two of them. A crash
between the broker's confirm and the commit publishes that row again on the next pass
(at-least-once); the notifier drops the duplicate by `event_id`.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Protocol

from google.protobuf.message import DecodeError
from sqlalchemy import delete, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from auth_svc.metrics import OutboxBacklog
from auth_svc.orm import OutboxMessage
from ocrmesh.notify.v1 import email_pb2
from ocrmesh.platform.telemetry import REQUEST_ID_ATTRIBUTE, SpanKind, continued_span, current_carrier
from ocrmesh.rules.email_events import EVENT_TYPE, PublishError

log = logging.getLogger(__name__)

_PURGE_EVERY_S = 600.0


class EventPublisher(Protocol):
    def publish(self, event: email_pb2.EmailRequested, timeout: float | None = None) -> None: ...


def enqueue_email(session: Session, event: email_pb2.EmailRequested) -> None:
    """Add `event` to the outbox in `session`'s transaction: it is published if and only if
    that transaction commits."""
    session.add(
        OutboxMessage(
            event_id=uuid.UUID(event.event_id),
            event_type=EVENT_TYPE,
            payload=event.SerializeToString(),
            trace_context=current_carrier() or None,
        )
    )


def _span_attributes(event: email_pb2.EmailRequested) -> dict[str, str]:
    # Ids only: never the recipient, subject or body (they hold addresses and codes).
    return {"messaging.message.id": event.event_id, REQUEST_ID_ATTRIBUTE: event.correlation_id}


class OutboxRelay:
    """Publishes pending outbox rows from a background thread.

    `nudge()` after committing a row makes it go out at once; otherwise the table is
    polled every `poll_seconds`. After a failed publish the relay backs off (up to
    `max_backoff` seconds) and retries the same row: order is kept and nothing is skipped.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        publisher: EventPublisher,
        *,
        poll_seconds: float = 1.0,
        batch_size: int = 50,
        publish_timeout: float = 5.0,
        max_backoff: float = 10.0,
        retention: timedelta = timedelta(days=7),
    ) -> None:
        self._sessions = sessions
        self._publisher = publisher
        self.poll_seconds = poll_seconds
        self.batch_size = batch_size
        self.publish_timeout = publish_timeout
        self.max_backoff = max_backoff
        self.retention = retention
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_purge = 0.0
        # Run with each purge (auth_svc: delete expired unverified accounts, old throttle rows).
        self.housekeeping: Callable[[], object] | None = None
        #: Rows this relay published (tests and logs read it).
        self.published_total = 0
        #: The backlog gauges (Prometheus), measured on every pass.
        self.backlog = OutboxBacklog(sessions)

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="outbox-relay", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        """Stop after the publish in progress (if any). Pending rows wait for the next start."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def nudge(self) -> None:
        """Look for pending rows now (call after committing one). Thread-safe."""
        self._wake.set()

    def run_once(self) -> tuple[int, bool]:
        """Publish one batch of pending rows. Returns (rows published, whether a publish failed)."""
        published = 0
        failed = False
        with self._sessions.begin() as session:
            rows = session.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.sent_at.is_(None), OutboxMessage.available_at <= func.now())
                .order_by(OutboxMessage.id)
                .limit(self.batch_size)
                .with_for_update(skip_locked=True)
            ).all()
            for row in rows:
                row.attempts += 1
                try:
                    event = email_pb2.EmailRequested.FromString(row.payload)
                except DecodeError:
                    # Cannot happen for rows we wrote; park it rather than retry it forever.
                    row.last_error = "payload is not an EmailRequested"
                    row.available_at = func.now() + timedelta(days=365)
                    log.error("unreadable outbox row parked", extra={"outbox_id": row.id})
                    continue
                try:
                    # In the trace of the call that wrote the row, minutes later or not.
                    with continued_span(
                        "outbox publish",
                        row.trace_context,
                        kind=SpanKind.PRODUCER,
                        attributes=_span_attributes(event),
                    ):
                        self._publisher.publish(event, timeout=self.publish_timeout)
                except PublishError as exc:
                    row.last_error = str(exc)[:1000]
                    row.available_at = func.now() + timedelta(seconds=self._backoff(row.attempts))
                    log.warning(
                        "outbox publish failed; will retry",
                        extra={"outbox_id": row.id, "event_id": event.event_id, "attempts": row.attempts},
                    )
                    failed = True
                    break
                row.sent_at = func.now()
                row.last_error = None
                # Sent: the body (a verification code) is not kept; the row stays, for its
                # event id and times, until the retention period ends.
                row.payload = b""
                published += 1
        self.published_total += published
        self.backlog.published(published)
        if published:
            log.info("outbox rows published", extra={"count": published})
        return published, failed

    def purge_sent(self) -> int:
        """Delete rows sent longer ago than the retention period."""
        with self._sessions.begin() as session:
            result = session.execute(
                delete(OutboxMessage).where(OutboxMessage.sent_at < func.now() - self.retention)
            )
        return int(getattr(result, "rowcount", 0) or 0)

    def _backoff(self, failures: int) -> float:
        return float(min(self.max_backoff, 0.25 * 2 ** min(failures, 10)))

    def _run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                published, failed = self.run_once()
                if time.monotonic() - self._last_purge > _PURGE_EVERY_S:
                    self._last_purge = time.monotonic()
                    self.purge_sent()
                    if self.housekeeping is not None:
                        self.housekeeping()
            except SQLAlchemyError as exc:
                log.warning("outbox relay cannot reach the database", extra={"error": type(exc).__name__})
                published, failed = 0, True
            except Exception:
                # The relay thread must survive whatever happens; the next pass retries.
                log.exception("outbox relay pass failed")
                published, failed = 0, True
            self.backlog.measure()
            if failed:
                failures += 1
                # Back off without listening to nudges: new rows cannot go out either.
                self._stopping.wait(self._backoff(failures))
                continue
            failures = 0
            if published < self.batch_size:
                self._wake.wait(self.poll_seconds)
