"""Where a delivery decision sends the message on the broker, and what it writes on it.

Ack: nowhere, the message is acked. Retry and Defer: a copy to the delay queue of their
delay, which dead-letters it back to the work queue when it expires, carrying the attempt
number and the last error. Park: a copy to the parking queue, carrying why, after how many
attempts and when (what `python -m notifier parked` shows). The consumer publishes the copy
on a confirmed channel and only then acks the original, so a crash between the two
duplicates a message rather than losing it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pika
from pika.adapters.blocking_connection import BlockingChannel

from notifier.delivery import (
    ATTEMPT_HEADER,
    LAST_ERROR_HEADER,
    PARK_REASON_HEADER,
    PARKED_AT_HEADER,
    Decision,
    Defer,
    Park,
    Retry,
)
from ocrmesh.rules.email_events.topology import EmailTopology

# Reasons are exception texts (an SMTP server's reply, a traceback's last line): a header
# stays well below what a broker accepts.
MAX_HEADER_CHARS = 1000


@dataclass(frozen=True)
class Republish:
    """A copy of the message to publish before acking the original."""

    routing_key: str
    headers: dict[str, str | int]


def republish_for(decision: Decision, topology: EmailTopology) -> Republish | None:
    """The copy `decision` asks for, or None when the original is simply acked."""
    if isinstance(decision, Retry):
        return Republish(
            topology.retry_queue(decision.delay),
            {ATTEMPT_HEADER: decision.next_attempt, LAST_ERROR_HEADER: decision.reason[:MAX_HEADER_CHARS]},
        )
    if isinstance(decision, Defer):
        return Republish(
            topology.retry_queue(decision.delay),
            {ATTEMPT_HEADER: decision.attempt, LAST_ERROR_HEADER: decision.reason[:MAX_HEADER_CHARS]},
        )
    if isinstance(decision, Park):
        return Republish(
            topology.dead,
            {
                PARK_REASON_HEADER: decision.reason[:MAX_HEADER_CHARS],
                ATTEMPT_HEADER: decision.attempts,
                PARKED_AT_HEADER: datetime.now(UTC).isoformat(timespec="seconds"),
            },
        )
    return None


def republish(
    channel: BlockingChannel, copy: Republish, properties: pika.BasicProperties, body: bytes
) -> None:
    """Publish `copy` of the message (`properties`, `body`) persistent and mandatory: on a
    confirmed channel, a queue that refuses it raises `UnroutableError` or `NackError`."""
    channel.basic_publish(
        exchange="",
        routing_key=copy.routing_key,
        body=body,
        properties=pika.BasicProperties(
            content_type=properties.content_type,
            delivery_mode=pika.DeliveryMode.Persistent,
            message_id=properties.message_id,
            type=properties.type,
            timestamp=properties.timestamp,
            correlation_id=properties.correlation_id,
            headers={**(properties.headers or {}), **copy.headers},
        ),
        mandatory=True,
    )


__all__ = ["MAX_HEADER_CHARS", "Republish", "republish", "republish_for"]
