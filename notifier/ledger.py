"""The delivery ledger: which email events were sent, shared by every notifier instance.

One row per event id, in PostgreSQL. Before sending, an instance *claims* the event (insert,
or take over a claim whose lease ran out); after the SMTP server accepted the mail it
*marks it sent*. The lease is short (seconds): while an instance holds a claim (from the
claim until the mark or the release), `renewing()` renews it every quarter of the lease, so
a slow send keeps its claim however long it takes, and a claim nobody renews any more (its
instance died) is free a lease after the last renewal. So:

- an event already marked sent is never sent again, by any instance (a redelivery after a
  crash, a producer's second publish, a copy on another instance);
- an event claimed by an instance that died before marking it is claimed again once the
  lease is over, and sent: retried within seconds, never lost. Only a mail handed to SMTP
  at the very moment of the crash (sent, not yet marked) can go out twice;
- an event claimed by a live instance is left to it, however slow its send: the copy is
  deferred and looked at again later.

A live instance loses a claim only when it cannot renew it for a whole lease (PostgreSQL
unreachable from it alone, or the process frozen): the renewal then logs the loss.

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
from collections.abc import Iterator
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
# Sent, but the mark failed at the time (PostgreSQL unreachable): marked by the renewal.
_MARK_SENT_MANY = text(
    "UPDATE notifier_deliveries SET sent_at = now(), expires_at = now() + :retention "
    "WHERE event_id = ANY(:event_ids) AND sent_at IS NULL"
)
# Renews our unsent claims, and says which of them another instance took over meanwhile
# (ours no more, whatever its state: its holder may send it too).
_RENEW = text(
    """
    WITH renewed AS (
        UPDATE notifier_deliveries SET claimed_at = now()
        WHERE event_id = ANY(:event_ids) AND claimed_by = :me AND sent_at IS NULL
    )
    SELECT event_id FROM notifier_deliveries WHERE event_id = ANY(:event_ids) AND claimed_by <> :me
    """
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
    """Claims, marks and renewals in PostgreSQL. Thread-safe: each thread keeps one connection
    of its own (in autocommit: every statement is atomic alone), so a mail costs two statements
    and no pool checkout or ping; a connection that failed is dropped and the next call opens
    another. The claims this instance holds are renewed while `renewing()` runs.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        lease: float = 15.0,
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
        # A quarter of the lease: a claim survives three renewals in a row that fail or stall.
        self.renew_every = lease / 4
        # Claims of ours not yet marked sent or released (renewed), and the events sent whose
        # mark failed (marked by the renewal, their claims renewed until then).
        self._held: set[str] = set()
        self._unmarked: set[str] = set()
        self._held_lock = threading.Lock()

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
        """Claim `event_id` for sending, unless it was sent or another live instance holds it.
        A claim won is renewed (see `renewing()`) until `mark_sent` or `release`."""
        try:
            won = self._run(
                _CLAIM,
                {"event_id": event_id, "me": self.owner, "retention": self._retention, "lease": self._lease},
            ).first()
            if won is not None:
                with self._held_lock:
                    self._held.add(event_id)
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
        """Record that the mail for `event_id` was handed over. When that fails, the claim stays
        held (renewed, so no other instance sends it) and the renewal marks it later."""
        try:
            self._run(_MARK_SENT, {"event_id": event_id, "retention": self._retention})
        except SQLAlchemyError as exc:
            with self._held_lock:
                self._unmarked.add(event_id)
            raise LedgerUnavailable(f"dedup ledger unavailable: {_short(exc)}") from exc
        with self._held_lock:
            self._held.discard(event_id)

    def release(self, event_id: str) -> None:
        """Give up our unsent claim (the send failed), so that a retry can claim it at once."""
        with self._held_lock:
            self._held.discard(event_id)
        try:
            self._run(_RELEASE, {"event_id": event_id, "me": self.owner})
        except SQLAlchemyError as exc:
            # No longer renewed: the claim simply runs out with its lease.
            log.warning("could not release a claim", extra={"event_id": event_id, "error": _short(exc)})

    def held(self) -> frozenset[str]:
        """The claims this instance holds (sends in progress, marks pending)."""
        with self._held_lock:
            return frozenset(self._held)

    def renew_claims(self) -> None:
        """One renewal: mark what was sent but not marked, then renew every claim still held.
        A claim another instance took over meanwhile is logged and given up. Raises
        `LedgerUnavailable` (the next renewal tries again)."""
        with self._held_lock:
            unmarked = sorted(self._unmarked)
        try:
            if unmarked:
                self._run(_MARK_SENT_MANY, {"event_ids": unmarked, "retention": self._retention})
                with self._held_lock:
                    self._unmarked.difference_update(unmarked)
                    self._held.difference_update(unmarked)
            held = sorted(self.held())
            if not held:
                return
            lost = [row.event_id for row in self._run(_RENEW, {"event_ids": held, "me": self.owner})]
        except SQLAlchemyError as exc:
            raise LedgerUnavailable(f"dedup ledger unavailable: {_short(exc)}") from exc
        with self._held_lock:
            # Only what is still held: a claim released meanwhile may be anyone's now.
            lost = [event_id for event_id in lost if event_id in self._held]
            self._held.difference_update(lost)
        for event_id in lost:
            log.error(
                "claim taken over by another notifier while held (not renewed for a whole lease): "
                "the mail may go out twice",
                extra={"event_id": event_id},
            )

    @contextlib.contextmanager
    def renewing(self) -> Iterator[None]:
        """Renew the claims held, every `renew_every` seconds in a thread of its own, for as long
        as the block runs (keep it open until the last send has been marked or released)."""
        stop = threading.Event()
        renewer = threading.Thread(
            target=self._renew_until, args=(stop,), name="notifier-claim-renewer", daemon=True
        )
        renewer.start()
        try:
            yield
        finally:
            stop.set()
            renewer.join(self.renew_every + 15.0)

    def _renew_until(self, stop: threading.Event) -> None:
        wait = self.renew_every
        try:
            while not stop.wait(wait):
                try:
                    self.renew_claims()
                    wait = self.renew_every
                except LedgerUnavailable as exc:
                    # Sooner than usual: every renewal missed brings the lease's end closer.
                    log.warning("could not renew the claims held", extra={"error": str(exc)})
                    wait = min(1.0, self.renew_every)
                except Exception:
                    # A bug of ours must not end the renewals: slow sends would lose their claims.
                    log.exception("unexpected error renewing the claims held")
                    wait = min(1.0, self.renew_every)
        finally:
            self.close()

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
