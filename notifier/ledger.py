"""The delivery ledger: which email events were sent, shared by every notifier instance.

One row per event id, in PostgreSQL. Before sending, an instance *claims* the event (insert,
or take over a claim older than the lease); after the SMTP server accepted the mail it
*marks it sent*. So:

- an event already marked sent is never sent again, by any instance (a redelivery after a
  crash, a producer's second publish, a copy on another instance);
- an event claimed by an instance that died before marking it is claimed again once the
  lease is over, and sent: retried, never lost. Only a mail handed to SMTP at the very
  moment of the crash (sent, not yet marked) can go out twice;
- an event claimed by a live instance (the lease is running) is left to it: the copy is
  deferred and looked at again later.

Rows expire `retention` after they were written and are purged now and then.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import socket
import threading
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    CursorResult,
    DateTime,
    Engine,
    MetaData,
    String,
    Table,
    TextClause,
    text,
)
from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger(__name__)

metadata = MetaData()

deliveries = Table(
    "notifier_deliveries",
    metadata,
    Column("event_id", String(128), primary_key=True),
    Column("claimed_by", String(200), nullable=False),
    Column("claimed_at", DateTime(timezone=True), nullable=False),
    Column("sent_at", DateTime(timezone=True), nullable=True),
    Column("expires_at", DateTime(timezone=True), nullable=False, index=True),
)

_CLAIM = text(
    """
    INSERT INTO notifier_deliveries AS d (event_id, claimed_by, claimed_at, expires_at)
    VALUES (:event_id, :me, now(), now() + :retention)
    ON CONFLICT (event_id) DO UPDATE
        SET claimed_by = excluded.claimed_by, claimed_at = excluded.claimed_at,
            expires_at = excluded.expires_at
        WHERE d.sent_at IS NULL AND d.claimed_at < now() - :lease
    RETURNING 1
    """
)
_STATE = text(
    """
    SELECT sent_at IS NOT NULL AS sent,
           GREATEST(EXTRACT(EPOCH FROM claimed_at + :lease - now()), 0) AS lease_left
    FROM notifier_deliveries WHERE event_id = :event_id
    """
)
_MARK_SENT = text(
    "UPDATE notifier_deliveries SET sent_at = now(), expires_at = now() + :retention "
    "WHERE event_id = :event_id"
)
_RELEASE = text(
    "DELETE FROM notifier_deliveries WHERE event_id = :event_id AND sent_at IS NULL AND claimed_by = :me"
)
_PURGE = text(
    """
    DELETE FROM notifier_deliveries WHERE event_id IN (
        SELECT event_id FROM notifier_deliveries WHERE expires_at < now() LIMIT :batch
    )
    """
)


class LedgerUnavailable(Exception):
    """The ledger could not be read or written (PostgreSQL unreachable, timeout)."""


class ClaimState(enum.Enum):
    CLAIMED = "claimed"  # ours: send it, then mark it sent
    SENT = "sent"  # sent before (by anyone): do not send again
    BUSY = "busy"  # another live claim: leave it to its holder, look again later


@dataclass(frozen=True)
class Claim:
    state: ClaimState
    # For BUSY: seconds until the holder's lease is over.
    lease_left: float = 0.0


def instance_id() -> str:
    """Who holds a claim: host, process and a random part (a restarted process is another)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"[:200]


class DeliveryLedger:
    """Claims and marks in PostgreSQL. Thread-safe: each thread keeps one connection of its own
    (in autocommit: every statement is atomic alone), so a mail costs two statements and no
    pool checkout or ping; a connection that failed is dropped and the next call opens another.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        lease: float = 300.0,
        retention: float = 7 * 86_400.0,
        owner: str | None = None,
    ) -> None:
        if lease <= 0 or retention <= lease:
            raise ValueError("the lease must be positive and shorter than the retention")
        self._engine = engine
        self._lease = timedelta(seconds=lease)
        self._retention = timedelta(seconds=retention)
        self._local = threading.local()
        self.owner = owner or instance_id()

    def _run(self, statement: TextClause, params: dict[str, Any]) -> CursorResult[Any]:
        connection: Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            self._local.connection = connection
        try:
            return connection.execute(statement, params)
        except SQLAlchemyError:
            self._local.connection = None
            with contextlib.suppress(SQLAlchemyError):
                connection.invalidate()
                connection.close()
            raise

    def claim(self, event_id: str) -> Claim:
        """Claim `event_id` for sending, unless it was sent or another live instance holds it."""
        try:
            won = self._run(
                _CLAIM,
                {"event_id": event_id, "me": self.owner, "retention": self._retention, "lease": self._lease},
            ).first()
            if won is not None:
                return Claim(ClaimState.CLAIMED)
            row = self._run(_STATE, {"event_id": event_id, "lease": self._lease}).first()
        except SQLAlchemyError as exc:
            raise LedgerUnavailable(f"dedup ledger unavailable: {_short(exc)}") from exc
        if row is None:
            # Purged between the two statements: treat as a live claim, looked at again soon.
            return Claim(ClaimState.BUSY)
        if row.sent:
            return Claim(ClaimState.SENT)
        return Claim(ClaimState.BUSY, lease_left=float(row.lease_left))

    def mark_sent(self, event_id: str) -> None:
        """Record that the mail for `event_id` was handed over."""
        try:
            self._run(_MARK_SENT, {"event_id": event_id, "retention": self._retention})
        except SQLAlchemyError as exc:
            raise LedgerUnavailable(f"dedup ledger unavailable: {_short(exc)}") from exc

    def release(self, event_id: str) -> None:
        """Give up our unsent claim (the send failed), so that a retry can claim it at once."""
        try:
            self._run(_RELEASE, {"event_id": event_id, "me": self.owner})
        except SQLAlchemyError as exc:
            # The claim then simply runs out with its lease.
            log.warning("could not release a claim", extra={"event_id": event_id, "error": _short(exc)})

    def purge_expired(self, batch: int = 10_000) -> int:
        """Delete up to `batch` expired rows; how many went."""
        result = self._run(_PURGE, {"batch": batch})
        return int(getattr(result, "rowcount", 0) or 0)

    def close(self) -> None:
        """Close this thread's connection (the others close with the engine)."""
        connection = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            with contextlib.suppress(SQLAlchemyError):
                connection.close()


def _short(exc: BaseException) -> str:
    """The first line of the database's own message (no SQL, no parameters)."""
    text_ = str(getattr(exc, "orig", None) or exc).strip()
    return text_.splitlines()[0][:200] if text_ else repr(exc)
