"""A confirmed publisher of `EmailRequested` events.

pika connections are not thread-safe, so `EmailPublisher` owns ONE connection driven by ONE
thread (pika's select I/O loop), and every caller hands it work through the loop's
thread-safe callback queue; the caller then waits on a future that the loop resolves when
the broker confirmed (or refused) the message. Confirms are pipelined: many events can be in
flight on the channel at once, each matched to its confirm by delivery tag, so concurrent
callers do not wait for each other's round trips. The loop services heartbeats on its own.
`AsyncEmailPublisher` puts the same future behind `await` for asyncio services.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import threading
import time
from collections import deque
from concurrent.futures import CancelledError, Future, InvalidStateError
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import pika
import pika.exceptions
from pika.adapters.select_connection import IOLoop
from pika.channel import Channel
from pika.spec import Basic

from ocrmesh.notify.v1 import email_pb2
from ocrmesh.platform.amqp import connection_parameters
from ocrmesh.platform.metrics import EMAIL_PUBLISHER_CONFIRMS, count_publisher_return
from ocrmesh.rules.email_events.errors import PublishError, PublishRejected
from ocrmesh.rules.email_events.messages import event_properties
from ocrmesh.rules.email_events.topology import EmailTopology, topology_mismatch

log = logging.getLogger(__name__)

# How often the loop fails the jobs whose deadline passed.
_DEADLINE_TICK = 0.1
# The caller waits this much longer than the loop's own deadline, so the loop's precise
# error (unreachable, nacked, ...) wins over a bare timeout.
_CALLER_GRACE = 1.0
_MIN_BACKOFF = 0.1
_MAX_BACKOFF = 2.0
# The AMQP reply code for "declared before with other arguments".
_PRECONDITION_FAILED = 406


@dataclass
class _Job:
    body: bytes
    properties: pika.BasicProperties
    deadline: float
    future: Future[None] = field(default_factory=Future)
    # Set once the job left the PENDING state; a job resent after a reconnect stays started.
    started: bool = False


@dataclass
class _ConnectJob:
    deadline: float
    future: Future[None] = field(default_factory=Future)


class EmailPublisher:
    """Thread-safe blocking publisher of email events with publisher confirms.

    `publish()` returns once the broker confirmed the (persistent, mandatory) message and
    raises `PublishError` otherwise. The connection is opened lazily and reopened after a
    drop or a broker restart; events unconfirmed when the connection dropped are sent again
    on the new one until their deadline (a possible duplicate, which the notifier drops).
    """

    def __init__(
        self,
        url: str,
        topology: EmailTopology,
        *,
        confirm_timeout: float = 10.0,
        connection_name: str = "ocrmesh-email-publisher",
        heartbeat: int | None = None,
    ) -> None:
        if confirm_timeout <= 0:
            raise ValueError("confirm_timeout must be positive")
        self._params = connection_parameters(
            url, connection_name=connection_name, heartbeat=heartbeat, timeout=confirm_timeout
        )
        self._topology = topology
        self._confirm_timeout = confirm_timeout
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._ioloop = IOLoop()
        # Everything below is touched only by the loop thread.
        self._pending: deque[_Job] = deque()
        self._inflight: dict[int, _Job] = {}
        self._waiters: list[_ConnectJob] = []
        self._returned: set[str] = set()
        self._connection: pika.SelectConnection | None = None
        self._channel: Channel | None = None
        self._ready = False
        self._connecting = False
        self._closing = False
        self._reconnect_timer: object | None = None
        self._next_tag = 0
        self._backoff = _MIN_BACKOFF
        self._last_error: BaseException | None = None
        #: Connections opened so far (tests and metrics read it).
        self.connections_opened = 0
        self._thread = threading.Thread(target=self._run, name=f"{connection_name}-owner", daemon=True)
        self._thread.start()

    # -- caller side (any thread) -----------------------------------------------------------
    def submit(self, event: email_pb2.EmailRequested, timeout: float | None = None) -> Future[None]:
        """Queue `event` for publishing; the future resolves when the broker confirmed it."""
        if not event.event_id:
            raise ValueError("event has no event_id; build it with new_email_event()")
        limit = self._confirm_timeout if timeout is None else timeout
        job = _Job(
            body=event.SerializeToString(),
            properties=event_properties(event),
            deadline=time.monotonic() + limit,
        )
        self._hand_over(functools.partial(self._enqueue, job))
        return job.future

    def connect(self, timeout: float | None = None) -> None:
        """Open the connection and declare the topology now, to fail fast at start-up.

        Optional: `publish()` connects by itself. Raises `TopologyError` when a queue exists
        with other arguments, `PublishError` when the broker stays unreachable for `timeout`.
        """
        limit = self._confirm_timeout if timeout is None else timeout
        job = _ConnectJob(deadline=time.monotonic() + limit)
        self._hand_over(functools.partial(self._add_waiter, job))
        wait_for(job.future, limit + _CALLER_GRACE)

    def publish(self, event: email_pb2.EmailRequested, timeout: float | None = None) -> None:
        """Publish `event` and wait for the broker's confirm; raise `PublishError` otherwise."""
        limit = self._confirm_timeout if timeout is None else timeout
        wait_for(self.submit(event, limit), limit + _CALLER_GRACE)

    def close(self, timeout: float = 10.0) -> None:
        """Finish the queued publishes (each within its deadline) on the current connection,
        then close. Idempotent. A closing publisher never opens a new connection (that would
        declare the topology again, after its owner may have deleted it): what still needs
        one fails with `PublishError`."""
        with self._lock:
            if self._closed.is_set():
                return
            self._closed.set()
            self._ioloop.add_callback_threadsafe(self._begin_close)
        self._thread.join(timeout)

    def __enter__(self) -> EmailPublisher:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _hand_over(self, callback: Any) -> None:
        with self._lock:
            if self._closed.is_set():
                raise PublishError("publisher is closed")
            self._ioloop.add_callback_threadsafe(callback)

    # -- loop thread ------------------------------------------------------------------------
    def _run(self) -> None:
        self._ioloop.call_later(_DEADLINE_TICK, self._check_deadlines)
        try:
            self._ioloop.start()
        finally:
            leftovers: list[_Job | _ConnectJob] = [*self._pending, *self._inflight.values(), *self._waiters]
            for job in leftovers:
                _fail(job, PublishError("publisher closed before the event was confirmed"))
            self._ioloop.close()

    def _enqueue(self, job: _Job) -> None:
        self._pending.append(job)
        self._kick()

    def _add_waiter(self, job: _ConnectJob) -> None:
        if not job.future.set_running_or_notify_cancel():
            return
        if self._ready:
            _resolve(job.future)
            return
        self._waiters.append(job)
        self._kick()

    def _kick(self) -> None:
        """Publish what is pending, or start connecting when there is work and no connection."""
        if self._ready:
            self._flush()
        elif not self._connecting and self._reconnect_timer is None and (self._pending or self._waiters):
            self._start_connecting()

    def _flush(self) -> None:
        assert self._channel is not None
        while self._pending:
            job = self._pending.popleft()
            if not job.started:
                if not job.future.set_running_or_notify_cancel():
                    continue  # the caller gave up before it was sent
                job.started = True
            elif job.future.done():
                continue
            self._channel.basic_publish(
                exchange="",
                routing_key=self._topology.queue,
                body=job.body,
                properties=job.properties,
                mandatory=True,
            )
            self._next_tag += 1
            self._inflight[self._next_tag] = job

    def _start_connecting(self) -> None:
        self._connecting = True
        pika.SelectConnection(
            self._params,
            on_open_callback=self._on_connection_open,
            on_open_error_callback=self._on_connection_open_error,
            on_close_callback=self._on_connection_closed,
            custom_ioloop=self._ioloop,
        )

    def _on_connection_open(self, connection: pika.SelectConnection) -> None:
        self._connection = connection
        connection.channel(on_open_callback=self._on_channel_open)

    def _on_connection_open_error(self, connection: Any, error: BaseException | str) -> None:
        self._connecting = False
        self._last_error = (
            error if isinstance(error, BaseException) else pika.exceptions.AMQPConnectionError(error)
        )
        log.warning("email publisher cannot connect", extra={"error": repr(error)})
        self._schedule_reconnect()

    def _on_channel_open(self, channel: Channel) -> None:
        self._channel = channel
        channel.add_on_close_callback(self._on_channel_closed)
        channel.add_on_return_callback(self._on_return)
        self._declare(list(self._topology.queue_arguments().items()))

    def _declare(self, queues: list[tuple[str, dict[str, Any]]]) -> None:
        channel = self._channel
        if channel is None:
            return
        if not queues:
            channel.confirm_delivery(ack_nack_callback=self._on_confirm, callback=self._on_confirm_mode)
            return
        (name, arguments), rest = queues[0], queues[1:]
        channel.queue_declare(
            name, durable=True, arguments=arguments, callback=lambda _frame: self._declare(rest)
        )

    def _on_confirm_mode(self, _frame: Any) -> None:
        self._ready, self._connecting = True, False
        self._next_tag = 0
        self._backoff = _MIN_BACKOFF
        self.connections_opened += 1
        log.info("email publisher connected", extra={"queue": self._topology.queue})
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            _resolve(waiter.future)
        self._flush()

    def _on_return(
        self, channel: Channel, method: Any, properties: pika.BasicProperties, body: bytes
    ) -> None:
        # The broker returns an unroutable mandatory message just before it confirms it.
        count_publisher_return(getattr(method, "reply_code", None))
        if properties.message_id:
            self._returned.add(properties.message_id)

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        tags = (
            sorted(t for t in self._inflight if t <= method.delivery_tag)
            if method.multiple
            else [method.delivery_tag]
        )
        for tag in tags:
            job = self._inflight.pop(tag, None)
            if job is None:
                continue
            message_id = job.properties.message_id or ""
            if isinstance(method, Basic.Nack):
                EMAIL_PUBLISHER_CONFIRMS.labels("nack").inc()
                _fail(
                    job,
                    PublishRejected(
                        f"nacked by the broker: the queue {self._topology.queue!r} is full "
                        f"(EMAIL_QUEUE_MAX_LENGTH {self._topology.max_length}) or has no quorum; "
                        "publish it again later"
                    ),
                )
            elif message_id in self._returned:
                self._returned.discard(message_id)
                EMAIL_PUBLISHER_CONFIRMS.labels("returned").inc()
                _fail(job, PublishError(f"unroutable: no queue {self._topology.queue!r}"))
            else:
                EMAIL_PUBLISHER_CONFIRMS.labels("ack").inc()
                _resolve(job.future)
        self._finish_close_if_drained()

    def _on_channel_closed(self, channel: Channel, error: BaseException) -> None:
        self._channel, self._ready = None, False
        if (
            isinstance(error, pika.exceptions.ChannelClosedByBroker)
            and error.reply_code == _PRECONDITION_FAILED
        ):
            # Declaring failed: retrying cannot help, so fail everyone waiting now.
            problem = topology_mismatch(self._topology.queue, str(error.reply_text))
            log.error("email topology mismatch", extra={"error": str(problem)})
            for waiter in self._waiters:
                _fail(waiter, problem)
            self._waiters.clear()
            for job in [*self._pending, *self._inflight.values()]:
                _fail(job, PublishError(str(problem)))
            self._pending.clear()
            self._inflight.clear()
        connection = self._connection
        if connection is not None and connection.is_open:
            # One channel per connection: start over with a fresh connection.
            connection.close()

    def _on_connection_closed(self, connection: Any, error: BaseException) -> None:
        was_ready = self._ready or self._channel is not None
        self._connection, self._channel = None, None
        self._ready = self._connecting = False
        self._last_error = error
        # Unconfirmed events go out again, first, in their original order.
        self._pending.extendleft(reversed([self._inflight[t] for t in sorted(self._inflight)]))
        self._inflight.clear()
        self._returned.clear()
        if self._closing and not self._pending:
            self._ioloop.stop()
            return
        if was_ready:
            log.warning("email publisher connection lost", extra={"error": repr(error)})
        self._schedule_reconnect()

    def _schedule_reconnect(self) -> None:
        if self._closing:
            self._give_up("publisher closed before the event was confirmed")
            self._finish_close_if_drained()
            return
        if not (self._pending or self._waiters) or self._reconnect_timer is not None:
            return  # reconnect lazily, when there is something to send
        delay = self._backoff * (0.5 + random.random() / 2)
        self._backoff = min(self._backoff * 2, _MAX_BACKOFF)
        self._reconnect_timer = self._ioloop.call_later(delay, self._reconnect_now)

    def _reconnect_now(self) -> None:
        self._reconnect_timer = None
        self._kick()

    def _check_deadlines(self) -> None:
        now = time.monotonic()
        reason = (
            f"broker unreachable: {self._last_error!r}"
            if not self._ready
            else "no confirm before the deadline"
        )
        for job in [j for j in self._pending if j.deadline <= now]:
            self._pending.remove(job)
            _fail(job, PublishError(reason))
        for tag in [t for t, j in self._inflight.items() if j.deadline <= now]:
            _fail(self._inflight.pop(tag), PublishError("no confirm before the deadline"))
        for waiter in [w for w in self._waiters if w.deadline <= now]:
            self._waiters.remove(waiter)
            _fail(waiter, PublishError(reason))
        self._finish_close_if_drained()
        self._ioloop.call_later(_DEADLINE_TICK, self._check_deadlines)

    def _begin_close(self) -> None:
        self._closing = True
        # Events their callers cancelled must not keep the publisher (re)connecting.
        self._pending = deque(job for job in self._pending if not job.future.cancelled())
        if self._reconnect_timer is not None:
            # Waiting to reconnect: no connection will come any more (with nothing pending,
            # the timer, should it still fire, connects nothing).
            self._give_up("publisher closed before the event was confirmed")
        self._finish_close_if_drained()

    def _give_up(self, reason: str) -> None:
        """Fail the events still waiting for a connection."""
        for job in self._pending:
            _fail(job, PublishError(reason))
        self._pending.clear()

    def _finish_close_if_drained(self) -> None:
        if not self._closing or self._pending or self._inflight:
            return
        for waiter in self._waiters:
            _fail(waiter, PublishError("publisher closed"))
        self._waiters.clear()
        connection = self._connection
        if connection is not None and connection.is_open:
            connection.close()  # _on_connection_closed stops the loop
        elif connection is None or connection.is_closed:
            self._ioloop.stop()


def _fail(job: _Job | _ConnectJob, error: BaseException) -> None:
    if isinstance(job, _Job) and not job.future.done():
        log.error(
            "email event not published", extra={"message_id": job.properties.message_id, "error": str(error)}
        )
    _resolve(job.future, error)


def _resolve(future: Future[None], error: BaseException | None = None) -> None:
    """Complete `future` unless it is already done (the caller may cancel it at any time)."""
    try:
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
    except InvalidStateError:
        pass


def wait_for(future: Future[None], timeout: float) -> None:
    """Wait for a publish future; turn a timeout into `PublishError` (cancelling it if not started)."""
    try:
        future.result(timeout)
    except FutureTimeout:
        future.cancel()
        raise PublishError(f"no confirm within {timeout:.1f}s") from None
    except CancelledError:
        raise PublishError("publish cancelled") from None


class AsyncEmailPublisher:
    """`EmailPublisher` for asyncio code: `await publish(...)` never blocks the event loop."""

    def __init__(
        self,
        url: str,
        topology: EmailTopology,
        *,
        confirm_timeout: float = 10.0,
        connection_name: str = "ocrmesh-email-publisher",
        heartbeat: int | None = None,
    ) -> None:
        self._confirm_timeout = confirm_timeout
        self.sync = EmailPublisher(
            url,
            topology,
            confirm_timeout=confirm_timeout,
            connection_name=connection_name,
            heartbeat=heartbeat,
        )

    # `timeout` mirrors EmailPublisher.publish: it bounds the broker's confirm, which the
    # owner thread enforces, not only this await.
    async def publish(self, event: email_pb2.EmailRequested, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Publish `event` and wait (asynchronously) for the broker's confirm; `PublishError` otherwise."""
        limit = self._confirm_timeout if timeout is None else timeout
        future = self.sync.submit(event, limit)
        try:
            await asyncio.wait_for(asyncio.wrap_future(future), limit + _CALLER_GRACE)
        except TimeoutError:
            raise PublishError(f"no confirm within {limit:.1f}s") from None
        except asyncio.CancelledError:
            # The caller was cancelled: drop the publish if it has not started.
            future.cancel()
            raise

    async def close(self) -> None:
        """Finish queued publishes and close the connection, off the event loop."""
        await asyncio.to_thread(self.sync.close)

    async def __aenter__(self) -> AsyncEmailPublisher:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
