"""auth_svc's Prometheus metrics: the outbox backlog (pending rows and the age of the oldest),
measured by the relay with one cheap query at most once a second, and the rows it
published. Every metric has labels (see `ocrmesh.platform.metrics` for why)."""

from __future__ import annotations

import logging
import time

from prometheus_client import Counter, Gauge
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from auth_svc.orm import OutboxMessage
from ocrmesh.rules.email_events import EVENT_TYPE

log = logging.getLogger(__name__)

# Every auth_svc process measures the same table: the freshest of the live ones counts.
OUTBOX_PENDING_ROWS = Gauge(
    "outbox_pending_rows",
    "Outbox rows not yet published to RabbitMQ (mail waiting for the broker).",
    ["event_type"],
    multiprocess_mode="livemax",
)
OUTBOX_OLDEST_PENDING_AGE = Gauge(
    "outbox_oldest_pending_age_seconds",
    "Age of the oldest unpublished outbox row (0 when none is pending).",
    ["event_type"],
    multiprocess_mode="livemax",
)
OUTBOX_PUBLISHED = Counter(
    "outbox_published_total",
    "Outbox rows published with a broker confirm.",
    ["event_type"],
)

_BACKLOG = select(
    func.count(),
    func.coalesce(func.extract("epoch", func.now() - func.min(OutboxMessage.created_at)), 0),
).where(OutboxMessage.sent_at.is_(None))


class OutboxBacklog:
    """Measures the outbox backlog into the gauges, at most once per `every` seconds."""

    def __init__(self, sessions: sessionmaker[Session], *, every: float = 1.0) -> None:
        self._sessions = sessions
        self._every = every
        self._last = float("-inf")
        self._pending = OUTBOX_PENDING_ROWS.labels(EVENT_TYPE)
        self._age = OUTBOX_OLDEST_PENDING_AGE.labels(EVENT_TYPE)
        self._published = OUTBOX_PUBLISHED.labels(EVENT_TYPE)

    def published(self, rows: int) -> None:
        if rows:
            self._published.inc(rows)

    def measure(self) -> None:
        """Update the gauges unless they were updated less than `every` seconds ago. A database
        that does not answer leaves them as they were (the relay logs that already)."""
        now = time.monotonic()
        if now - self._last < self._every:
            return
        self._last = now
        try:
            with self._sessions() as session:
                count, age = session.execute(_BACKLOG).one()
        except SQLAlchemyError as exc:
            log.debug("cannot measure the outbox backlog", extra={"error": type(exc).__name__})
            return
        self._pending.set(int(count))
        self._age.set(max(0.0, float(age)))
