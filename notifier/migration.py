"""Moving the email queues to the arguments this version declares (classic -> quorum).

RabbitMQ cannot change a queue's type or arguments in place: a queue is deleted and declared
again. `migrate_topology` does that without losing a message, one queue at a time: every
message is moved (confirmed publish, then ack) to a temporary quorum queue
`<name>.migrating`, the old queue is deleted once empty, declared again with the new
arguments, and the messages are moved back. Nothing may consume the old queues meanwhile
(stop the old notifier first); producers that publish meanwhile get an error and keep their
events (the auth_svc outbox and ocr_svc's buffer retry).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from ocrmesh.rules.email_events.topology import EmailTopology

log = logging.getLogger(__name__)

_PRECONDITION_FAILED = 406
_NOT_FOUND = 404
_MAX_ROUNDS = 10


class MigrationError(Exception):
    """The queues cannot be migrated now (a consumer is still attached, a move was refused)."""


@dataclass(frozen=True)
class QueueMigration:
    queue: str
    moved: int


def migrate_topology(
    open_channel: Callable[[], BlockingChannel], topology: EmailTopology
) -> list[QueueMigration]:
    """Redeclare every queue of `topology` whose arguments differ, keeping its messages.

    `open_channel` gives a fresh channel (the broker closes one after a failed declare).
    Returns the queues migrated and how many messages each held. Idempotent.
    """
    done = []
    for name, arguments in topology.queue_arguments().items():
        consumers = _consumers(open_channel(), name)
        if consumers is None:
            continue  # not there yet: the services declare it
        channel = open_channel()
        try:
            channel.queue_declare(name, durable=True, arguments=arguments)
            # Already as declared now; finish an earlier run that stopped half-way, if any.
            if _consumers(open_channel(), _holding(name)) is not None:
                confirmed = open_channel()
                confirmed.confirm_delivery()
                done.append(QueueMigration(name, _restore(confirmed, name)))
            continue
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code != _PRECONDITION_FAILED:
                raise
        if consumers:
            raise MigrationError(
                f"queue {name!r} has {consumers} consumer(s): stop the old notifier before migrating"
            )
        done.append(QueueMigration(name, _migrate_queue(open_channel(), name, arguments)))
        log.info("queue migrated", extra={"queue": name, "moved": done[-1].moved})
    return done


def _holding(name: str) -> str:
    return f"{name}.migrating"


def _consumers(channel: BlockingChannel, name: str) -> int | None:
    """The consumer count of queue `name`, or None when there is no such queue."""
    try:
        frame = channel.queue_declare(name, passive=True)
    except pika.exceptions.ChannelClosedByBroker as exc:
        if exc.reply_code == _NOT_FOUND:
            return None
        raise
    return int(frame.method.consumer_count)


def _migrate_queue(channel: BlockingChannel, name: str, arguments: dict[str, Any]) -> int:
    holding = _holding(name)
    channel.confirm_delivery()
    channel.queue_declare(holding, durable=True, arguments={"x-queue-type": "quorum"})
    moved = 0
    for _ in range(_MAX_ROUNDS):
        moved += _move_all(channel, name, holding)
        try:
            # if_empty: a message published after the last move is never deleted with it.
            channel.queue_delete(name, if_empty=True)
            break
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code != _PRECONDITION_FAILED:
                raise
            channel = channel.connection.channel()
            channel.confirm_delivery()
    else:
        raise MigrationError(f"queue {name!r} keeps receiving messages: stop its producers, then retry")
    channel.queue_declare(name, durable=True, arguments=arguments)
    # A fresh channel: RabbitMQ 3.10 channels remember the type of a queue they used, and
    # publishing on one to the same name, now a quorum queue, crashes the channel.
    fresh = channel.connection.channel()
    fresh.confirm_delivery()
    _restore(fresh, name)
    return moved


def _restore(channel: BlockingChannel, name: str) -> int:
    """Move the held messages back into the (now redeclared) queue `name`; `channel` is in
    confirm mode."""
    moved = _move_all(channel, _holding(name), name)
    # Quorum queues do not support delete-if-empty; nothing but this publishes to it.
    if channel.queue_declare(_holding(name), passive=True).method.message_count == 0:
        channel.queue_delete(_holding(name))
    return moved


def _move_all(channel: BlockingChannel, source: str, target: str) -> int:
    """Move every message from `source` to `target`: confirmed publish first, ack second."""
    moved = 0
    while True:
        method, properties, body = channel.basic_get(source, auto_ack=False)
        if method is None or properties is None or body is None or method.delivery_tag is None:
            return moved
        try:
            channel.basic_publish("", target, body, properties, mandatory=True)
        except (pika.exceptions.NackError, pika.exceptions.UnroutableError) as exc:
            channel.basic_nack(method.delivery_tag, requeue=True)
            raise MigrationError(f"the broker refused a message moved to {target!r}: {exc}") from exc
        channel.basic_ack(method.delivery_tag)
        moved += 1
