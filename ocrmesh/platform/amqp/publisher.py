"""A thread-safe publisher with publisher confirms: the state machine on its transport.

Every caller hands its message to the transport's loop thread and gets a future that the
loop resolves when the broker confirmed (or refused) the message. Confirms are pipelined:
many messages can be in flight on the channel at once, each matched to its confirm by
delivery tag, so concurrent callers do not wait for each other's round trips.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import CancelledError, Future
from concurrent.futures import TimeoutError as FutureTimeout
from types import TracebackType
from typing import Any

import pika
from pika.connection import Parameters

from ocrmesh.platform.amqp.confirms import ConfirmStateMachine, ConnectWaiter, PublishHooks, PublishJob
from ocrmesh.platform.amqp.transport import SelectTransport

# How often the loop fails the jobs whose deadline passed.
DEADLINE_TICK = 0.1
# The caller waits this much longer than the loop's own deadline, so the loop's precise
# error (unreachable, nacked, ...) wins over a bare timeout.
CALLER_GRACE = 1.0


class ConfirmedPublisher:
    """Thread-safe blocking publisher: `publish()` returns once the broker confirmed the
    (mandatory) message, and raises what `hooks` make of the failure otherwise.

    The connection is opened lazily, declares `queues` (name, `x-` arguments) every time,
    and is reopened after a drop or a broker restart; messages unconfirmed when it dropped
    are sent again on the new one until their deadline (a possible duplicate).
    """

    def __init__(
        self,
        params: Parameters,
        queues: Sequence[tuple[str, Mapping[str, Any]]],
        hooks: PublishHooks,
        *,
        confirm_timeout: float = 10.0,
        name: str = "ocrmesh-publisher",
    ) -> None:
        if confirm_timeout <= 0:
            raise ValueError("confirm_timeout must be positive")
        self._hooks = hooks
        self._confirm_timeout = confirm_timeout
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._transport = SelectTransport(params, queues, name=name)
        # Touched only by the loop thread, through the transport.
        self._machine = ConfirmStateMachine(self._transport, hooks)
        self._transport.run_soon(self._check_deadlines)
        self._transport.start(self._machine)

    @property
    def confirm_timeout(self) -> float:
        """Seconds a publish waits for its confirm unless told otherwise."""
        return self._confirm_timeout

    @property
    def connections_opened(self) -> int:
        """Connections made ready so far."""
        return self._machine.connections_opened

    def submit(
        self,
        routing_key: str,
        body: bytes,
        properties: pika.BasicProperties,
        timeout: float | None = None,
        *,
        exchange: str = "",
    ) -> Future[None]:
        """Queue a message; the future resolves when the broker confirmed it."""
        limit = self._confirm_timeout if timeout is None else timeout
        job = PublishJob(
            routing_key=routing_key,
            body=body,
            properties=properties,
            deadline=time.monotonic() + limit,
            exchange=exchange,
        )
        self._hand_over(functools.partial(self._machine.enqueue, job))
        return job.future

    def publish(
        self,
        routing_key: str,
        body: bytes,
        properties: pika.BasicProperties,
        timeout: float | None = None,
        *,
        exchange: str = "",
    ) -> None:
        """Publish a message and wait for the broker's confirm."""
        limit = self._confirm_timeout if timeout is None else timeout
        self.wait(self.submit(routing_key, body, properties, limit, exchange=exchange), limit)

    def connect(self, timeout: float | None = None) -> None:
        """Open the connection and declare the queues now, to fail fast at start-up."""
        limit = self._confirm_timeout if timeout is None else timeout
        waiter = ConnectWaiter(deadline=time.monotonic() + limit)
        self._hand_over(functools.partial(self._machine.add_waiter, waiter))
        self.wait(waiter.future, limit)

    def wait(self, future: Future[None], timeout: float) -> None:
        """Wait for a future of this publisher, whose own deadline is `timeout`; a caller's
        timeout (a little later) cancels it if it was not sent, and raises `hooks.error`."""
        limit = timeout + CALLER_GRACE
        try:
            future.result(limit)
        except FutureTimeout:
            future.cancel()
            raise self._hooks.error(f"no confirm within {limit:.1f}s") from None
        except CancelledError:
            raise self._hooks.error("publish cancelled") from None

    def close(self, timeout: float = 10.0) -> None:
        """Finish the queued publishes (each within its deadline) on the current connection,
        then close. Idempotent. A closing publisher never opens a new connection (that would
        declare the queues again, after their owner may have deleted them): what still needs
        one fails."""
        with self._lock:
            if self._closed.is_set():
                return
            self._closed.set()
            self._transport.run_soon(self._machine.begin_close)
        self._transport.join(timeout)

    def __enter__(self) -> ConfirmedPublisher:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _hand_over(self, callback: functools.partial[None]) -> None:
        with self._lock:
            if self._closed.is_set():
                raise self._hooks.error("publisher is closed")
            self._transport.run_soon(callback)

    def _check_deadlines(self) -> None:
        self._machine.check_deadlines(time.monotonic())
        self._transport.call_later(DEADLINE_TICK, self._check_deadlines)
