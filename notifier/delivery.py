"""The use case: one email event in, one decision out (ack, retry later, or park).

No AMQP here: the consumer parses the delivery, calls `MailDelivery.handle`, and carries
out the decision on the broker.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from notifier.ledger import ClaimState, DeliveryLedger, LedgerUnavailable
from notifier.mail import MalformedEvent, build_message, parse_event
from notifier.transports import MailTransport, PermanentDeliveryError, TransientDeliveryError
from ocrmesh.platform.telemetry import span

log = logging.getLogger(__name__)

# Headers the notifier sets when it republishes a message to a delay or the parking queue.
ATTEMPT_HEADER = "x-ocrmesh-attempt"
LAST_ERROR_HEADER = "x-ocrmesh-last-error"
PARK_REASON_HEADER = "x-ocrmesh-park-reason"
PARKED_AT_HEADER = "x-ocrmesh-parked-at"
_MAX_ATTEMPT_HEADER = 10_000


@dataclass(frozen=True)
class Ack:
    """Delivered now, or delivered before (`duplicate`): acknowledge."""

    event_id: str
    duplicate: bool = False


@dataclass(frozen=True)
class Retry:
    """A transient failure: republish to the delay queue, as attempt number `next_attempt`."""

    next_attempt: int
    delay: float
    reason: str


@dataclass(frozen=True)
class Defer:
    """Another live instance holds the event's claim: put this copy in the delay queue for
    `delay` seconds, as the same attempt, and look again then (never ack it: the holder may
    die before sending)."""

    delay: float
    attempt: int
    reason: str


@dataclass(frozen=True)
class Park:
    """Never deliverable, or out of attempts: republish to the parking queue with `reason`."""

    reason: str
    attempts: int


Decision = Ack | Retry | Defer | Park


def attempt_from_headers(headers: Mapping[str, Any] | None) -> int:
    """Which attempt this delivery is (1 for a fresh event), from our own header."""
    value = (headers or {}).get(ATTEMPT_HEADER)
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= _MAX_ATTEMPT_HEADER:
        return value
    return 1


class DeliveredIds:
    """The most recent `capacity` delivered event ids (bounded memory, oldest forgotten first).
    Thread-safe: the sender threads of one process share it."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def __contains__(self, event_id: object) -> bool:
        with self._lock:
            return event_id in self._ids

    def __len__(self) -> int:
        with self._lock:
            return len(self._ids)

    def add(self, event_id: str) -> None:
        with self._lock:
            self._ids[event_id] = None
            self._ids.move_to_end(event_id)
            while len(self._ids) > self._capacity:
                self._ids.popitem(last=False)


class MailDelivery:
    """Turns events into mails through `transport`, deduplicating by `event_id`: in the shared
    `ledger` (PostgreSQL, every instance) when there is one, and in this process's memory."""

    def __init__(
        self,
        transport: MailTransport,
        *,
        mail_from: str,
        retry_delays: tuple[float, ...],
        max_attempts: int,
        dedup_size: int = 100_000,
        ledger: DeliveryLedger | None = None,
        delivered: DeliveredIds | None = None,
    ) -> None:
        self.transport = transport
        self.ledger = ledger
        self._mail_from = mail_from
        self._retry_delays = retry_delays
        self._max_attempts = max_attempts
        self._dedup_size = dedup_size
        self._delivered = delivered if delivered is not None else DeliveredIds(dedup_size)

    def sibling(self, transport: MailTransport) -> MailDelivery:
        """The same use case over another transport (one per sender thread), sharing the ledger
        and the memory of delivered ids."""
        return MailDelivery(
            transport,
            mail_from=self._mail_from,
            retry_delays=self._retry_delays,
            max_attempts=self._max_attempts,
            dedup_size=self._dedup_size,
            ledger=self.ledger,
            delivered=self._delivered,
        )

    def handle(self, body: bytes, *, message_type: str | None, attempt: int) -> Decision:
        """Deliver one event; never raises (whatever goes wrong becomes a retry or a park)."""
        try:
            event = parse_event(body, message_type)
        except MalformedEvent as exc:
            return Park(reason=f"malformed: {exc}", attempts=attempt)
        event_id = event.event_id
        if event_id in self._delivered:
            return Ack(event_id, duplicate=True)
        if self.ledger is not None:
            try:
                claim = self.ledger.claim(event_id)
            except LedgerUnavailable as exc:
                return self._retry_or_park(str(exc), attempt)
            if claim.state is ClaimState.SENT:
                self._delivered.add(event_id)
                return Ack(event_id, duplicate=True)
            if claim.state is ClaimState.BUSY:
                return Defer(
                    delay=self._defer_delay(claim.lease_left),
                    attempt=attempt,
                    reason=f"claimed by another notifier (its lease ends in {claim.lease_left:.0f}s "
                    "unless renewed)",
                )
        try:
            with span("mail send"):
                self.transport.send(build_message(event, self._mail_from), event_id)
        except PermanentDeliveryError as exc:
            self._release(event_id)
            return Park(reason=f"rejected: {exc}", attempts=attempt)
        except TransientDeliveryError as exc:
            self._release(event_id)
            return self._retry_or_park(str(exc), attempt)
        except Exception as exc:
            # A bug of ours or an unforeseen library error: retrying is bounded, dropping is not.
            log.exception("unexpected error delivering a mail", extra={"event_id": event_id})
            self._release(event_id)
            return self._retry_or_park(f"unexpected: {exc!r}", attempt)
        self._delivered.add(event_id)
        if self.ledger is not None:
            try:
                self.ledger.mark_sent(event_id)
            except LedgerUnavailable as exc:
                # The mail is out; the ledger keeps its claim renewed and marks it later.
                log.error("mail sent, not marked sent yet", extra={"event_id": event_id, "error": str(exc)})
        return Ack(event_id)

    def _release(self, event_id: str) -> None:
        if self.ledger is not None:
            self.ledger.release(event_id)

    def _defer_delay(self, lease_left: float) -> float:
        """The longest delay queue that ends before the holder's lease would (else the shortest):
        a live holder renews its lease, so the copy only needs to look again soon after the lease
        of a dead one ran out (a delay step late at most), not wait out a longer delay."""
        fitting = [d for d in self._retry_delays if d <= lease_left]
        return max(fitting) if fitting else min(self._retry_delays)

    def _retry_or_park(self, reason: str, attempt: int) -> Decision:
        if attempt >= self._max_attempts:
            return Park(reason=f"gave up after {attempt} attempts: {reason}", attempts=attempt)
        delay = self._retry_delays[min(attempt, len(self._retry_delays)) - 1]
        return Retry(next_attempt=attempt + 1, delay=delay, reason=reason)
