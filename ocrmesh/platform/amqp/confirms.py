"""The state machine of a confirmed publisher, apart from any connection.

It holds the messages waiting for a channel (pending) and those published and waiting for
their confirm (in flight, by delivery tag), and decides everything about them: when to
connect, what to publish, which confirm settles which message, when a deadline has passed,
how long to wait before reconnecting, what goes out again on a new connection, and when a
closing publisher may stop. It does no I/O: it tells its `Link` (the transport) what to do
and the link tells it what happened, by plain method calls on the transport's loop thread.
So a test drives it event by event, without a broker or a thread.

What the failures say and what they count belongs to the owner of the messages: the machine
asks its `PublishHooks` for each exception and reports each confirm to them.
"""

from __future__ import annotations

import logging
import random
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Literal, Protocol

import pika

log = logging.getLogger(__name__)

# Seconds before the first reconnect attempt; doubled after each failed one, up to the cap,
# and jittered so that many publishers cut by one broker restart do not return in step.
MIN_BACKOFF = 0.1
MAX_BACKOFF = 2.0

ConfirmOutcome = Literal["ack", "nack", "returned"]


@dataclass
class PublishJob:
    """One message to publish (mandatory) until `deadline` (`time.monotonic()` seconds).

    `properties.message_id` matches a returned message to its confirm: give every message one.
    """

    routing_key: str
    body: bytes
    properties: pika.BasicProperties
    deadline: float
    exchange: str = ""
    future: Future[None] = field(default_factory=Future)
    # Set once the job left the PENDING state; a job resent after a reconnect stays started.
    started: bool = False


@dataclass
class ConnectWaiter:
    """A caller waiting for the publisher to be connected, until `deadline`."""

    deadline: float
    future: Future[None] = field(default_factory=Future)


class Link(Protocol):
    """What the machine asks of its transport; every call is made on the transport's loop thread."""

    def open(self) -> None:
        """Open a connection, its channel, the declarations and confirm mode; the outcome
        comes back as `on_ready`, `on_open_failed`, or a close."""

    def publish(self, exchange: str, routing_key: str, body: bytes, properties: pika.BasicProperties) -> None:
        """Publish one mandatory message on the ready channel (its delivery tag is the next one)."""

    def shutdown(self) -> None:
        """Close the connection if it is open (`on_connection_closed` follows); stop the loop
        now when there is no connection."""

    def stop(self) -> None:
        """Stop the loop."""

    def call_later(self, delay: float, callback: Callable[[], None]) -> object:
        """Run `callback` on the loop after `delay` seconds."""


class PublishHooks(Protocol):
    """What the owner of the messages decides: each failure's exception, and what to count."""

    def error(self, reason: str) -> BaseException:
        """A message not confirmed for `reason` (closed, unreachable, too slow)."""

    def nacked(self, routing_key: str) -> BaseException:
        """A message the broker refused (a nack)."""

    def unroutable(self, routing_key: str) -> BaseException:
        """A message the broker returned: no queue took it."""

    def declaration_refused(self, reply_text: str) -> BaseException:
        """A queue declaration the broker refused (declared before with other arguments)."""

    def confirmed(self, outcome: ConfirmOutcome) -> None:
        """One confirm arrived, with its outcome."""

    def returned(self, reply_code: int | None) -> None:
        """The broker returned a message, with this AMQP reply code."""


class ConfirmStateMachine:
    """Pipelined confirms, deadlines, reconnects and drain-then-close of one publisher.

    Every method runs on the loop thread. Callers' work arrives as `enqueue`, `add_waiter`
    and `begin_close`; the clock as `check_deadlines`; the transport's news as the `on_*`
    methods.
    """

    def __init__(
        self, link: Link, hooks: PublishHooks, *, jitter: Callable[[], float] = random.random
    ) -> None:
        self._link = link
        self._hooks = hooks
        self._jitter = jitter
        self._pending: deque[PublishJob] = deque()
        self._inflight: dict[int, PublishJob] = {}
        self._waiters: list[ConnectWaiter] = []
        # message_ids the broker returned; their confirm follows the return.
        self._returned: set[str] = set()
        self._ready = False
        self._connecting = False
        self._closing = False
        self._reconnect_timer: object | None = None
        self._next_tag = 0
        self._backoff = MIN_BACKOFF
        self._last_error: BaseException | None = None
        #: Connections made ready so far (tests and metrics read it).
        self.connections_opened = 0

    # -- callers' work ----------------------------------------------------------------------
    def enqueue(self, job: PublishJob) -> None:
        """Publish `job` as soon as a channel is ready."""
        self._pending.append(job)
        self._kick()

    def add_waiter(self, waiter: ConnectWaiter) -> None:
        """Resolve `waiter` once connected (now, if already)."""
        if not waiter.future.set_running_or_notify_cancel():
            return
        if self._ready:
            _resolve(waiter.future)
            return
        self._waiters.append(waiter)
        self._kick()

    def begin_close(self) -> None:
        """Finish what is in flight or can go out on the current connection, then stop.
        From now on no new connection is opened (it would declare the queues again, after
        their owner may have deleted them): what still needs one fails."""
        self._closing = True
        # Events their callers cancelled must not keep the publisher (re)connecting.
        self._pending = deque(job for job in self._pending if not job.future.cancelled())
        if self._reconnect_timer is not None:
            # Waiting to reconnect: no connection will come any more (with nothing pending,
            # the timer, should it still fire, connects nothing).
            self._give_up("publisher closed before the event was confirmed")
        self._finish_close_if_drained()

    # -- the clock --------------------------------------------------------------------------
    def check_deadlines(self, now: float) -> None:
        """Fail whatever waited past its deadline (`now` in `time.monotonic()` seconds)."""
        reason = (
            f"broker unreachable: {self._last_error!r}"
            if not self._ready
            else "no confirm before the deadline"
        )
        for job in [j for j in self._pending if j.deadline <= now]:
            self._pending.remove(job)
            self._fail(job, self._hooks.error(reason))
        for tag in [t for t, j in self._inflight.items() if j.deadline <= now]:
            self._fail(self._inflight.pop(tag), self._hooks.error("no confirm before the deadline"))
        for waiter in [w for w in self._waiters if w.deadline <= now]:
            self._waiters.remove(waiter)
            _resolve(waiter.future, self._hooks.error(reason))
        self._finish_close_if_drained()

    # -- the transport's news ---------------------------------------------------------------
    def on_ready(self) -> None:
        """The channel is open, the queues declared and confirm mode on: delivery tags start at 1."""
        self._ready, self._connecting = True, False
        self._next_tag = 0
        self._backoff = MIN_BACKOFF
        self.connections_opened += 1
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            _resolve(waiter.future)
        self._flush()

    def on_open_failed(self, error: BaseException) -> None:
        """The connection could not be opened."""
        self._connecting = False
        self._last_error = error
        self._schedule_reconnect()

    def on_return(self, message_id: str | None, reply_code: int | None) -> None:
        """The broker returned a mandatory message it could not route, just before its confirm."""
        self._hooks.returned(reply_code)
        if message_id:
            self._returned.add(message_id)

    def on_confirm(self, delivery_tag: int, *, multiple: bool, nack: bool) -> None:
        """An ack or a nack for `delivery_tag` (and every earlier one, when `multiple`)."""
        tags = sorted(t for t in self._inflight if t <= delivery_tag) if multiple else [delivery_tag]
        for tag in tags:
            job = self._inflight.pop(tag, None)
            if job is None:
                continue
            message_id = job.properties.message_id or ""
            if nack:
                self._hooks.confirmed("nack")
                self._fail(job, self._hooks.nacked(job.routing_key))
            elif message_id in self._returned:
                self._returned.discard(message_id)
                self._hooks.confirmed("returned")
                self._fail(job, self._hooks.unroutable(job.routing_key))
            else:
                self._hooks.confirmed("ack")
                _resolve(job.future)
        self._finish_close_if_drained()

    def on_channel_closed(self, refused: str | None) -> None:
        """The channel is gone (the transport closes its connection next). `refused` is the
        broker's reply when it refused a declaration: retrying cannot help, so everyone
        waiting fails now."""
        self._ready = False
        if refused is None:
            return
        problem = self._hooks.declaration_refused(refused)
        log.error("queue declaration refused", extra={"error": str(problem)})
        for waiter in self._waiters:
            _resolve(waiter.future, problem)
        self._waiters.clear()
        for job in [*self._pending, *self._inflight.values()]:
            self._fail(job, self._hooks.error(str(problem)))
        self._pending.clear()
        self._inflight.clear()

    def on_connection_closed(self, error: BaseException) -> None:
        """The connection is gone: what was unconfirmed goes out again on the next one."""
        self._ready = self._connecting = False
        self._last_error = error
        # Unconfirmed events go out again, first, in their original order.
        self._pending.extendleft(reversed([self._inflight[t] for t in sorted(self._inflight)]))
        self._inflight.clear()
        self._returned.clear()
        if self._closing and not self._pending:
            self._link.stop()
            return
        self._schedule_reconnect()

    def on_stopped(self) -> None:
        """The loop ended: whatever is still waiting never will be confirmed."""
        leftovers: list[PublishJob | ConnectWaiter] = [
            *self._pending,
            *self._inflight.values(),
            *self._waiters,
        ]
        for job in leftovers:
            self._fail(job, self._hooks.error("publisher closed before the event was confirmed"))

    # -- decisions --------------------------------------------------------------------------
    def _kick(self) -> None:
        """Publish what is pending, or start connecting when there is work and no connection."""
        if self._ready:
            self._flush()
        elif not self._connecting and self._reconnect_timer is None and (self._pending or self._waiters):
            self._connecting = True
            self._link.open()

    def _flush(self) -> None:
        while self._pending:
            job = self._pending.popleft()
            if not job.started:
                if not job.future.set_running_or_notify_cancel():
                    continue  # the caller gave up before it was sent
                job.started = True
            elif job.future.done():
                continue
            self._link.publish(job.exchange, job.routing_key, job.body, job.properties)
            self._next_tag += 1
            self._inflight[self._next_tag] = job

    def _schedule_reconnect(self) -> None:
        if self._closing:
            self._give_up("publisher closed before the event was confirmed")
            self._finish_close_if_drained()
            return
        if not (self._pending or self._waiters) or self._reconnect_timer is not None:
            return  # reconnect lazily, when there is something to send
        delay = self._backoff * (0.5 + self._jitter() / 2)
        self._backoff = min(self._backoff * 2, MAX_BACKOFF)
        self._reconnect_timer = self._link.call_later(delay, self._reconnect_now)

    def _reconnect_now(self) -> None:
        self._reconnect_timer = None
        self._kick()

    def _give_up(self, reason: str) -> None:
        """Fail the events still waiting for a connection."""
        for job in self._pending:
            self._fail(job, self._hooks.error(reason))
        self._pending.clear()

    def _finish_close_if_drained(self) -> None:
        if not self._closing or self._pending or self._inflight:
            return
        for waiter in self._waiters:
            _resolve(waiter.future, self._hooks.error("publisher closed"))
        self._waiters.clear()
        self._link.shutdown()

    def _fail(self, job: PublishJob | ConnectWaiter, error: BaseException) -> None:
        if isinstance(job, PublishJob) and not job.future.done():
            log.error(
                "event not published", extra={"message_id": job.properties.message_id, "error": str(error)}
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
