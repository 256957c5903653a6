"""The one definition of the email queues, declared identically by producers and the notifier.

    producers ──(default exchange, routing key = queue)──▶ email_notification ──▶ notifier
    notifier, transient failure ──▶ email_notification.retry.<delay>  (x-message-ttl)
        └── expires ──(dead-lettered to the default exchange)──▶ email_notification
    notifier, malformed or out of attempts ──▶ email_notification.dead  (parking, kept)

Every queue is a quorum queue (replicated on a cluster, fsynced before a confirm). Only
features of RabbitMQ 3.10 without plugins are used, all of which 3.13 and 4.x keep: quorum
queues with per-queue message TTL (3.10+), a length limit with `reject-publish` (producers get
a nack, never a silent drop), a delivery limit, and at-least-once dead-lettering (3.10+: an
expired retry message reaches the work queue even when that queue is full for a while, the
dead-letter publish being retried until the work queue accepts it). The default exchange is
used throughout, so there is no exchange or binding to drift out of sync.

A queue declared before with other arguments (a classic queue of an older ocrmesh, say) is
never silently reused: declaring raises `TopologyError`; docs/notifications.md says how to
migrate.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from ocrmesh.rules.email_events.errors import TopologyError

DEFAULT_EMAIL_QUEUE = "email_notification"
# Seconds before the 2nd, 3rd, ... attempt; attempts past the end reuse the last delay.
DEFAULT_RETRY_DELAYS: tuple[float, ...] = (5.0, 30.0, 120.0, 600.0)
# Messages the work queue holds before publishes are nacked (x-max-length, reject-publish).
DEFAULT_MAX_LENGTH = 100_000
# Deliveries of one message (redeliveries after a consumer died included) before the broker
# parks it: a message that kills the notifier every time must not kill it forever. 20 is
# RabbitMQ 4.x's own default for quorum queues, stated so that 3.x behaves the same.
DELIVERY_LIMIT = 20

# The AMQP reply code for "declared before with other arguments".
_PRECONDITION_FAILED = 406


def parse_delays(text: str) -> tuple[float, ...]:
    """`"5,30,120"` -> `(5.0, 30.0, 120.0)`; raises ValueError on anything else."""
    delays = tuple(float(part) for part in text.split(",") if part.strip())
    if not delays or any(not 0 < d <= 86_400 for d in delays):
        raise ValueError("retry delays must be positive seconds (at most a day), comma-separated")
    return delays


def _delay_label(seconds: float) -> str:
    millis = round(seconds * 1000)
    return f"{millis // 1000}s" if millis % 1000 == 0 else f"{millis}ms"


def topology_mismatch(queue: str, reply_text: str) -> TopologyError:
    """The error for a queue the broker already has with other arguments, saying what to do."""
    hint = (
        "it is a classic queue from before ocrmesh used quorum queues: migrate it as "
        "docs/notifications.md says ('Migrating from classic queues')"
        if "x-queue-type" in reply_text
        else "delete it (after moving its messages) or choose another EMAIL_QUEUE"
    )
    return TopologyError(f"queue {queue!r} exists with other arguments ({reply_text}); {hint}")


@dataclass(frozen=True)
class EmailTopology:
    """Names and arguments of the work queue, its delay queues and its parking queue."""

    queue: str = DEFAULT_EMAIL_QUEUE
    retry_delays: tuple[float, ...] = DEFAULT_RETRY_DELAYS
    max_length: int = DEFAULT_MAX_LENGTH

    def __post_init__(self) -> None:
        if not self.queue or len(self.queue) > 200:
            raise ValueError("queue name must be 1 to 200 characters")
        if not self.retry_delays or any(d <= 0 for d in self.retry_delays):
            raise ValueError("retry delays must be a non-empty list of positive seconds")
        if self.max_length < 1:
            raise ValueError("the queue length limit must be at least 1")

    @classmethod
    def from_prefix(
        cls,
        prefix: str,
        *,
        retry_delays: tuple[float, ...] = DEFAULT_RETRY_DELAYS,
        max_length: int = DEFAULT_MAX_LENGTH,
    ) -> EmailTopology:
        """A topology whose every name starts with `prefix` (tests use a unique one per run)."""
        return cls(queue=f"{prefix}.email_notification", retry_delays=retry_delays, max_length=max_length)

    @classmethod
    def from_env(cls) -> EmailTopology:
        """The topology named by `EMAIL_QUEUE`, `EMAIL_RETRY_DELAYS` (comma-separated seconds)
        and `EMAIL_QUEUE_MAX_LENGTH`."""
        delays = os.environ.get("EMAIL_RETRY_DELAYS")
        max_length = os.environ.get("EMAIL_QUEUE_MAX_LENGTH")
        return cls(
            queue=os.environ.get("EMAIL_QUEUE") or DEFAULT_EMAIL_QUEUE,
            retry_delays=parse_delays(delays) if delays else DEFAULT_RETRY_DELAYS,
            max_length=int(max_length) if max_length else DEFAULT_MAX_LENGTH,
        )

    @property
    def dead(self) -> str:
        """The parking queue: messages that cannot be delivered, with the reason in a header."""
        return f"{self.queue}.dead"

    def retry_queue(self, delay: float) -> str:
        """The delay queue that holds a message `delay` seconds, then returns it to the work queue."""
        return f"{self.queue}.retry.{_delay_label(delay)}"

    @property
    def retry_queues(self) -> tuple[str, ...]:
        """Every delay queue, one per distinct delay."""
        return tuple(dict.fromkeys(self.retry_queue(d) for d in self.retry_delays))

    def delay_for_attempt(self, failed_attempt: int) -> float:
        """Seconds to wait after attempt number `failed_attempt` (1-based) failed."""
        index = min(max(failed_attempt, 1), len(self.retry_delays)) - 1
        return self.retry_delays[index]

    def queue_arguments(self) -> dict[str, dict[str, Any]]:
        """Every queue of the topology and its `x-` arguments, in declaration order."""
        quorum: dict[str, Any] = {"x-queue-type": "quorum"}
        # At-least-once dead-lettering: the broker retries the dead-letter publish until the
        # target queue confirms it (at-most-once would drop it, e.g. into a full work queue).
        # RabbitMQ requires reject-publish overflow on a queue that dead-letters this way.
        dead_letter_safely: dict[str, Any] = {
            "x-dead-letter-exchange": "",
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }
        # Parking has no length limit: what is parked stays until an operator handles it.
        queues: dict[str, dict[str, Any]] = {self.dead: dict(quorum)}
        for delay in self.retry_delays:
            queues[self.retry_queue(delay)] = {
                **quorum,
                **dead_letter_safely,
                "x-message-ttl": round(delay * 1000),
                "x-dead-letter-routing-key": self.queue,
            }
        # The work queue: bounded (producers learn of overload through nacks), and a message
        # rejected without requeue or delivered DELIVERY_LIMIT times is parked, never dropped.
        queues[self.queue] = {
            **quorum,
            **dead_letter_safely,
            "x-dead-letter-routing-key": self.dead,
            "x-max-length": self.max_length,
            "x-delivery-limit": DELIVERY_LIMIT,
        }
        return queues

    def declare(self, channel: BlockingChannel) -> None:
        """Declare every queue (idempotent). Raises `TopologyError` when one exists with other arguments.

        The channel is closed by the broker after a mismatch; use a fresh one afterwards.
        """
        for name, arguments in self.queue_arguments().items():
            try:
                channel.queue_declare(name, durable=True, arguments=arguments)
            except pika.exceptions.ChannelClosedByBroker as exc:
                if exc.reply_code == _PRECONDITION_FAILED:
                    raise topology_mismatch(name, str(exc.reply_text)) from exc
                raise

    def delete(self, channel: BlockingChannel) -> None:
        """Delete every queue of the topology, messages included (tests, benchmarks, and an
        operator retiring a queue name). Missing queues are fine."""
        for name in self.queue_arguments():
            channel.queue_delete(name)
