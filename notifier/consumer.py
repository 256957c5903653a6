"""The queue entrypoint: consume email events, deliver them off the I/O thread, settle on the broker.

Threads: the thread calling `run()` owns the pika connection and does all AMQP work; one
sender thread per `MailDelivery` owns that delivery's transport (its SMTP connection) and
does the (possibly slow) sends, taking deliveries from one shared queue. A sender hands each
decision back with `add_callback_threadsafe`, so the connection keeps servicing heartbeats
however long an SMTP server takes.

Settling a decision: ack; or republish to a delay queue / the parking queue (see
`notifier.settlement`) on a confirmed channel and only then ack the original, so a crash
between the two duplicates a message rather than losing it.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
import queue
import random
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel
from pika.spec import Basic

from notifier.delivery import Ack, Decision, Defer, MailDelivery, Park, Retry, attempt_from_headers
from notifier.health import HealthFile
from notifier.metrics import count_outcome
from notifier.settlement import republish, republish_for
from ocrmesh.platform.amqp import CONNECTION_ERRORS, connection_parameters
from ocrmesh.platform.telemetry import REQUEST_ID_ATTRIBUTE, SpanKind, continued_span
from ocrmesh.rules.email_events.errors import TopologyError
from ocrmesh.rules.email_events.topology import EmailTopology

log = logging.getLogger(__name__)

_POLL = 0.5
_IDLE_CHECK = 1.0


@dataclass(frozen=True)
class _Delivery:
    generation: int
    delivery_tag: int
    properties: pika.BasicProperties
    body: bytes


# ConsumerStats' counters -> the outcome label of notifier_messages_total.
_OUTCOMES = {
    "delivered": "delivered",
    "duplicates": "duplicate",
    "retried": "retried",
    "deferred": "deferred",
    "parked": "parked",
}


@dataclass
class ConsumerStats:
    """Counters since start (tests and the bench read them; logs carry the same events)."""

    delivered: int = 0
    duplicates: int = 0
    retried: int = 0
    deferred: int = 0
    parked: int = 0
    reconnects: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, name: str) -> None:
        with self.lock:
            setattr(self, name, getattr(self, name) + 1)
        if name in _OUTCOMES:
            count_outcome(_OUTCOMES[name])


class NotifierConsumer:
    """Consumes `topology.queue` with manual acks and `prefetch` unacked messages at most."""

    def __init__(
        self,
        url: str,
        topology: EmailTopology,
        delivery: MailDelivery | Sequence[MailDelivery],
        *,
        prefetch: int = 10,
        heartbeat: int = 30,
        health: HealthFile | None = None,
        connection_name: str = "ocrmesh-notifier",
        shutdown_grace: float = 30.0,
        topology_recheck: float = 30.0,
    ) -> None:
        self._params = connection_parameters(url, connection_name=connection_name, heartbeat=heartbeat)
        self._topology = topology
        # One sender thread per MailDelivery (each with its own transport, so its own SMTP
        # connection): sending is mostly waiting for the server, so a few in parallel keep
        # the prefetched messages moving.
        self._deliveries = [delivery] if isinstance(delivery, MailDelivery) else list(delivery)
        if not self._deliveries:
            raise ValueError("at least one MailDelivery is needed")
        self._prefetch = prefetch
        self._health = health
        self._grace = shutdown_grace
        self._topology_recheck = topology_recheck
        #: Why the queues cannot be declared (None while they can).
        self.topology_error: str | None = None
        self._stopping = threading.Event()
        self._work: queue.Queue[_Delivery | None] = queue.Queue()
        self._generation = 0
        self._connection: pika.BlockingConnection | None = None
        self._consume_channel: BlockingChannel | None = None
        self._publish_channel: BlockingChannel | None = None
        # Per connection generation: messages the worker took whose settlement has not run
        # yet. Only the current generation counts: a settlement queued on a connection that
        # then died never runs, and must not hold up a stop forever.
        self._unsettled: Counter[int] = Counter()
        self._unsettled_lock = threading.Lock()
        self.stats = ConsumerStats()
        #: Set while consuming (tests wait on it).
        self.consuming = threading.Event()

    def stop(self) -> None:
        """Ask `run()` to finish the mail in hand, settle it and return. Safe from signal handlers."""
        self._stopping.set()

    # -- connection thread ----------------------------------------------------------------
    def run(self) -> None:
        """Consume until `stop()`, reconnecting with backoff whenever the connection is lost."""
        workers = [
            threading.Thread(target=self._work_loop, args=(d,), name=f"notifier-sender-{i}", daemon=True)
            for i, d in enumerate(self._deliveries)
        ]
        for worker in workers:
            worker.start()
        backoff = 0.5
        try:
            while not self._stopping.is_set():
                try:
                    self._consume_once()
                    backoff = 0.5
                except TopologyError as exc:
                    # An operator has to act (migrate or delete a queue): exiting would only
                    # make the orchestrator restart us in a loop. Say so, stay alive and not
                    # ready, and look again now and then, so that the notifier starts
                    # consuming by itself once the queue is fixed.
                    self.consuming.clear()
                    self._drop_connection()
                    log.error(
                        "cannot declare the email queues; not consuming until they are fixed",
                        extra={"error": str(exc), "recheck_in_s": self._topology_recheck},
                    )
                    self.topology_error = str(exc)
                    self._beat(connected=False)
                    self._stopping.wait(self._topology_recheck)
                except CONNECTION_ERRORS as exc:
                    self.consuming.clear()
                    self._drop_connection()
                    self.stats.count("reconnects")
                    log.warning("notifier lost the broker, reconnecting", extra={"error": repr(exc)})
                    self._beat(connected=False)
                    self._stopping.wait(backoff * (0.5 + random.random() / 2))
                    backoff = min(backoff * 2, 10.0)
        finally:
            self.consuming.clear()
            for _ in workers:
                self._work.put(None)
            deadline = time.monotonic() + self._grace
            for worker in workers:
                worker.join(max(0.0, deadline - time.monotonic()))
            self._drop_connection()
            for delivery in self._deliveries:
                delivery.transport.close()
            if self._health is not None:
                self._health.remove()
            log.info("notifier stopped", extra=self._stats_fields())

    def _consume_once(self) -> None:
        connection = pika.BlockingConnection(self._params)
        # A new generation before the worker can see the new connection: deliveries of the
        # old one are then never settled on it.
        with self._unsettled_lock:
            self._generation += 1
            self._unsettled.clear()
        self._connection = connection
        consume = connection.channel()
        self._topology.declare(consume)
        self.topology_error = None
        consume.basic_qos(prefetch_count=self._prefetch)
        publish = connection.channel()
        publish.confirm_delivery()
        self._consume_channel, self._publish_channel = consume, publish
        consumer_tag = consume.basic_consume(self._topology.queue, self._on_message, auto_ack=False)
        self.consuming.set()
        log.info("notifier consuming", extra={"queue": self._topology.queue, "prefetch": self._prefetch})
        while not self._stopping.is_set():
            connection.process_data_events(time_limit=_POLL)
            self._beat(connected=True)
        # Stopping: no new deliveries; let the worker finish the mail in hand and settle it.
        consume.basic_cancel(consumer_tag)
        deadline = time.monotonic() + self._grace
        while self._pending() and time.monotonic() < deadline:
            connection.process_data_events(time_limit=0.1)
        self.consuming.clear()
        # Closing returns every prefetched, unstarted message to the queue.
        connection.close()
        self._connection = None

    def _on_message(
        self, channel: BlockingChannel, method: Basic.Deliver, properties: pika.BasicProperties, body: bytes
    ) -> None:
        assert method.delivery_tag is not None
        self._work.put(_Delivery(self._generation, method.delivery_tag, properties, body))

    def _settle(self, item: _Delivery, decision: Decision) -> None:
        try:
            if item.generation != self._generation or self._consume_channel is None:
                # Delivered on a connection that is gone: the broker redelivers it, and the
                # dedup set drops it if the mail went out.
                return
            copy = republish_for(decision, self._topology)
            if copy is not None:
                assert self._publish_channel is not None
                republish(self._publish_channel, copy, item.properties, item.body)
            self._consume_channel.basic_ack(item.delivery_tag)
            self._record(item, decision)
        except (pika.exceptions.UnroutableError, pika.exceptions.NackError) as exc:
            # The delay or parking queue refused it: keep the original rather than lose it.
            log.error("could not republish, returning the message", extra={"error": repr(exc)})
            if self._consume_channel is not None:
                self._consume_channel.basic_nack(item.delivery_tag, requeue=True)
        finally:
            with self._unsettled_lock:
                self._unsettled[item.generation] -= 1

    def _record(self, item: _Delivery, decision: Decision) -> None:
        fields = {"message_id": item.properties.message_id, "delivery_tag": item.delivery_tag}
        if isinstance(decision, Ack):
            self.stats.count("duplicates" if decision.duplicate else "delivered")
            log.info("mail duplicate dropped" if decision.duplicate else "mail delivered", extra=fields)
        elif isinstance(decision, Retry):
            self.stats.count("retried")
            log.warning(
                "mail delivery failed, will retry",
                extra={
                    **fields,
                    "attempt": decision.next_attempt,
                    "delay": decision.delay,
                    "reason": decision.reason,
                },
            )
        elif isinstance(decision, Defer):
            self.stats.count("deferred")
            log.info("mail deferred", extra={**fields, "delay": decision.delay, "reason": decision.reason})
        else:
            self.stats.count("parked")
            log.error(
                "mail parked", extra={**fields, "reason": decision.reason, "attempts": decision.attempts}
            )

    def _pending(self) -> bool:
        with self._unsettled_lock:
            return self._unsettled[self._generation] > 0

    def _drop_connection(self) -> None:
        connection, self._connection = self._connection, None
        self._consume_channel = self._publish_channel = None
        if connection is not None and connection.is_open:
            with contextlib.suppress(*CONNECTION_ERRORS):
                connection.close()

    def _beat(self, *, connected: bool) -> None:
        if self._health is not None:
            try:
                self._health.beat(connected=connected, error=self.topology_error)
            except OSError as exc:
                log.warning("cannot write the health file", extra={"error": repr(exc)})

    def _stats_fields(self) -> dict[str, int]:
        s = self.stats
        return {
            "delivered": s.delivered,
            "duplicates": s.duplicates,
            "retried": s.retried,
            "deferred": s.deferred,
            "parked": s.parked,
            "reconnects": s.reconnects,
        }

    # -- worker thread --------------------------------------------------------------------
    def _work_loop(self, delivery: MailDelivery) -> None:
        while True:
            try:
                item = self._work.get(timeout=_IDLE_CHECK)
            except queue.Empty:
                # Between mails: let the transport drop a connection idle for too long.
                delivery.transport.close_if_idle()
                continue
            if item is None:
                break
            self._handle_one(delivery, item)
        if delivery.ledger is not None:
            delivery.ledger.close()  # this thread's connection back to the pool

    def _handle_one(self, delivery: MailDelivery, item: _Delivery) -> None:
        """Send one delivery and hand its settlement to the connection thread."""
        connection = self._connection
        # Checked and counted under the lock the stopping thread reads `_unsettled` with:
        # either it sees this mail in hand and waits for it, or this sees the stop.
        with self._unsettled_lock:
            if self._stopping.is_set() or item.generation != self._generation or connection is None:
                return  # left unacked: the broker gives it to the next consumer
            self._unsettled[item.generation] += 1
        attempt = attempt_from_headers(item.properties.headers)
        decision: Decision
        # The span joins the trace of the call that caused the mail (its traceparent header).
        with continued_span(
            "notifier deliver",
            item.properties.headers,
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.message.id": item.properties.message_id or "",
                "messaging.destination.name": self._topology.queue,
                REQUEST_ID_ATTRIBUTE: item.properties.correlation_id or "",
                "ocrmesh.attempt": attempt,
            },
        ):
            try:
                decision = delivery.handle(item.body, message_type=item.properties.type, attempt=attempt)
            except Exception as exc:
                # handle() is meant never to raise; if it does, this worker must survive it.
                log.exception("unexpected error handling a message")
                decision = Park(reason=f"unexpected: {exc!r}", attempts=attempt)
            # Settled in this context: its log line ("mail delivered") names the trace too.
            settle = functools.partial(contextvars.copy_context().run, self._settle, item, decision)
        try:
            connection.add_callback_threadsafe(settle)
        except pika.exceptions.ConnectionWrongStateError:
            with self._unsettled_lock:
                self._unsettled[item.generation] -= 1
