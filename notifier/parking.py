"""Operating the parking queue: look at parked messages, and send them back for delivery."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from notifier.delivery import ATTEMPT_HEADER, LAST_ERROR_HEADER, PARK_REASON_HEADER, PARKED_AT_HEADER
from ocrmesh.rules.email_events.topology import EmailTopology

_OUR_HEADERS = (ATTEMPT_HEADER, LAST_ERROR_HEADER, PARK_REASON_HEADER, PARKED_AT_HEADER)


@dataclass(frozen=True)
class ParkedMessage:
    message_id: str | None
    reason: str | None
    attempts: int | None
    parked_at: str | None
    size: int


def list_parked(channel: BlockingChannel, topology: EmailTopology, limit: int) -> list[ParkedMessage]:
    """Up to `limit` parked messages, oldest first. They are read without ack: once the channel
    closes they are back in the parking queue, in order."""
    found = []
    for _ in range(limit):
        method, properties, body = channel.basic_get(topology.dead, auto_ack=False)
        if method is None or properties is None or body is None:
            break
        headers = properties.headers or {}
        attempts = headers.get(ATTEMPT_HEADER)
        found.append(
            ParkedMessage(
                message_id=properties.message_id,
                reason=_text(headers.get(PARK_REASON_HEADER)) or _broker_reason(headers),
                attempts=attempts if isinstance(attempts, int) else None,
                parked_at=_text(headers.get(PARKED_AT_HEADER)),
                size=len(body),
            )
        )
    return found


def requeue_parked(channel: BlockingChannel, topology: EmailTopology, limit: int) -> tuple[int, str | None]:
    """Move up to `limit` parked messages back to the work queue with a fresh attempt count
    (after the cause was fixed, e.g. the SMTP credentials). Each move is confirmed before the
    parked copy is acked, so a crash duplicates rather than loses. Returns how many moved, and
    why it stopped early (the work queue is full: the broker nacked the move), if it did."""
    channel.confirm_delivery()
    moved = 0
    while moved < limit:
        method, properties, body = channel.basic_get(topology.dead, auto_ack=False)
        if method is None or properties is None or body is None or method.delivery_tag is None:
            break
        headers = {k: v for k, v in (properties.headers or {}).items() if k not in _OUR_HEADERS}
        try:
            _publish_back(channel, topology, properties, body, headers)
        except pika.exceptions.NackError:
            # The work queue is at its length limit; the parked copy stays parked.
            channel.basic_nack(method.delivery_tag, requeue=True)
            return moved, f"the broker refused the move ({topology.queue!r} is full); try again later"
        channel.basic_ack(method.delivery_tag)
        moved += 1
    return moved, None


def _publish_back(
    channel: BlockingChannel,
    topology: EmailTopology,
    properties: pika.BasicProperties,
    body: bytes,
    headers: dict[str, Any],
) -> None:
    channel.basic_publish(
        exchange="",
        routing_key=topology.queue,
        body=body,
        properties=pika.BasicProperties(
            content_type=properties.content_type,
            delivery_mode=pika.DeliveryMode.Persistent,
            message_id=properties.message_id,
            type=properties.type,
            timestamp=properties.timestamp,
            correlation_id=properties.correlation_id,
            headers=headers or None,
        ),
        mandatory=True,
    )


def _broker_reason(headers: Mapping[str, Any]) -> str | None:
    """Why the broker itself dead-lettered a message (no notifier header): the delivery limit
    of a message that was never settled, or a reject."""
    deaths = headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
        reason = _text(deaths[0].get("reason"))
        if reason == "delivery_limit":
            return "delivery limit: delivered too often without being settled (did it crash the notifier?)"
        return f"dead-lettered by the broker: {reason}"
    return None


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return None if value is None else str(value)
