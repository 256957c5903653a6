"""A confirmed publisher of `EmailRequested` events.

The plumbing (one pika connection on one I/O loop thread, pipelined confirms, deadlines,
reconnects, drain-then-close) is the platform's `ConfirmedPublisher`; what is said here is
what is email about it: the events are serialised with their properties and published to the
work queue of the email topology, which every connection declares, and each failure becomes
a `PublishError` (a nack a `PublishRejected`, a queue declared with other arguments a
`TopologyError`) in words that tell an operator what to change. `AsyncEmailPublisher` puts
the same future behind `await` for asyncio services.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Future
from types import TracebackType

from ocrmesh.notify.v1 import email_pb2
from ocrmesh.platform.amqp import CALLER_GRACE, ConfirmedPublisher, ConfirmOutcome, connection_parameters
from ocrmesh.rules.email_events.errors import PublishError, PublishRejected
from ocrmesh.rules.email_events.messages import event_properties
from ocrmesh.rules.email_events.metrics import EMAIL_PUBLISHER_CONFIRMS, count_publisher_return
from ocrmesh.rules.email_events.topology import EmailTopology, topology_mismatch


class EmailOutcomes:
    """The `PublishHooks` of the email publisher: its errors and its metrics."""

    def __init__(self, topology: EmailTopology) -> None:
        self._topology = topology

    def error(self, reason: str) -> BaseException:
        """An event not confirmed (closed, unreachable, too slow)."""
        return PublishError(reason)

    def nacked(self, routing_key: str) -> BaseException:
        """A nack: the bounded work queue is full, or has no quorum; overload, not a bad event."""
        return PublishRejected(
            f"nacked by the broker: the queue {routing_key!r} is full "
            f"(EMAIL_QUEUE_MAX_LENGTH {self._topology.max_length}) or has no quorum; "
            "publish it again later"
        )

    def unroutable(self, routing_key: str) -> BaseException:
        """A returned event: its queue vanished."""
        return PublishError(f"unroutable: no queue {routing_key!r}")

    def declaration_refused(self, reply_text: str) -> BaseException:
        """A queue of the topology exists with other arguments: what to do about it."""
        return topology_mismatch(self._topology.queue, reply_text)

    def confirmed(self, outcome: ConfirmOutcome) -> None:
        """Count a confirm."""
        EMAIL_PUBLISHER_CONFIRMS.labels(outcome).inc()

    def returned(self, reply_code: int | None) -> None:
        """Count a returned event."""
        count_publisher_return(reply_code)


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
        self._topology = topology
        self._publisher = ConfirmedPublisher(
            connection_parameters(
                url, connection_name=connection_name, heartbeat=heartbeat, timeout=confirm_timeout
            ),
            list(topology.queue_arguments().items()),
            EmailOutcomes(topology),
            confirm_timeout=confirm_timeout,
            name=connection_name,
        )

    @property
    def connections_opened(self) -> int:
        """Connections opened so far (tests and metrics read it)."""
        return self._publisher.connections_opened

    def submit(self, event: email_pb2.EmailRequested, timeout: float | None = None) -> Future[None]:
        """Queue `event` for publishing; the future resolves when the broker confirmed it."""
        if not event.event_id:
            raise ValueError("event has no event_id; build it with new_email_event()")
        return self._publisher.submit(
            self._topology.queue, event.SerializeToString(), event_properties(event), timeout
        )

    def connect(self, timeout: float | None = None) -> None:
        """Open the connection and declare the topology now, to fail fast at start-up.

        Optional: `publish()` connects by itself. Raises `TopologyError` when a queue exists
        with other arguments, `PublishError` when the broker stays unreachable for `timeout`.
        """
        self._publisher.connect(timeout)

    def publish(self, event: email_pb2.EmailRequested, timeout: float | None = None) -> None:
        """Publish `event` and wait for the broker's confirm; raise `PublishError` otherwise."""
        limit = self._publisher.confirm_timeout if timeout is None else timeout
        self._publisher.wait(self.submit(event, limit), limit)

    def close(self, timeout: float = 10.0) -> None:
        """Finish the queued publishes (each within its deadline) on the current connection,
        then close. Idempotent. A closing publisher never opens a new connection (that would
        declare the topology again, after its owner may have deleted it): what still needs
        one fails with `PublishError`."""
        self._publisher.close(timeout)

    def __enter__(self) -> EmailPublisher:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


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
            await asyncio.wait_for(asyncio.wrap_future(future), limit + CALLER_GRACE)
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
