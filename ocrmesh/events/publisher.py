"""A confirmed publisher of `EmailRequested` events.

pika connections are not thread-safe, so `EmailPublisher` owns ONE connection in ONE thread
and every caller hands it work through a queue; the caller then waits on a future that the
owner thread resolves when the broker confirmed (or refused) the message. While idle the
owner thread keeps servicing the connection so heartbeats flow. `AsyncEmailPublisher` puts
the same future behind `await` for asyncio services.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import random
import threading
import time
from concurrent.futures import CancelledError, Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from types import TracebackType

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from ocrmesh.events.connection import CONNECTION_ERRORS, connection_parameters
from ocrmesh.events.email_events import event_properties
from ocrmesh.events.errors import PublishError, TopologyError
from ocrmesh.events.topology import EmailTopology
from ocrmesh.notify.v1 import email_pb2

log = logging.getLogger(__name__)

# How often an idle owner thread services the connection (heartbeats, broker closes).
_IDLE_TICK = 1.0
# The caller waits this much longer than the owner thread's own deadline, so the owner's
# precise error (unreachable, nacked, ...) wins over a bare timeout.
_CALLER_GRACE = 1.0
_MAX_BACKOFF = 2.0


@dataclass
class _Job:
    body: bytes
    properties: pika.BasicProperties
    deadline: float
    future: Future[None] = field(default_factory=Future)


@dataclass
class _ConnectJob:
    deadline: float
    future: Future[None] = field(default_factory=Future)


class _Stop:
    pass


_STOP = _Stop()


class EmailPublisher:
    """Thread-safe blocking publisher of email events with publisher confirms.

    `publish()` returns once the broker confirmed the (persistent, mandatory) message and
    raises `PublishError` otherwise. The connection is opened lazily and reopened after a
    drop or a broker restart; a publish interrupted by a drop is sent again on the new
    connection until its deadline (a possible duplicate, which the notifier drops).
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
        self._jobs: queue.Queue[_Job | _ConnectJob | _Stop] = queue.Queue()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._connection: pika.BlockingConnection | None = None
        self._channel: BlockingChannel | None = None
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
        with self._lock:
            if self._closed.is_set():
                raise PublishError("publisher is closed")
            self._jobs.put(job)
        return job.future

    def connect(self, timeout: float | None = None) -> None:
        """Open the connection and declare the topology now, to fail fast at start-up.

        Optional: `publish()` connects by itself. Raises `TopologyError` when a queue exists
        with other arguments, `PublishError` when the broker stays unreachable for `timeout`.
        """
        limit = self._confirm_timeout if timeout is None else timeout
        job = _ConnectJob(deadline=time.monotonic() + limit)
        with self._lock:
            if self._closed.is_set():
                raise PublishError("publisher is closed")
            self._jobs.put(job)
        wait_for(job.future, limit + _CALLER_GRACE)

    def publish(self, event: email_pb2.EmailRequested, timeout: float | None = None) -> None:
        """Publish `event` and wait for the broker's confirm; raise `PublishError` otherwise."""
        limit = self._confirm_timeout if timeout is None else timeout
        wait_for(self.submit(event, limit), limit + _CALLER_GRACE)

    def close(self, timeout: float = 10.0) -> None:
        """Finish the queued publishes, then close the connection. Idempotent."""
        with self._lock:
            if self._closed.is_set():
                return
            self._closed.set()
            self._jobs.put(_STOP)
        self._thread.join(timeout)

    def __enter__(self) -> EmailPublisher:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- owner thread ----------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while True:
                try:
                    job = self._jobs.get(timeout=_IDLE_TICK)
                except queue.Empty:
                    self._service_idle()
                    continue
                if isinstance(job, _Stop):
                    break
                if not job.future.set_running_or_notify_cancel():
                    continue
                if isinstance(job, _ConnectJob):
                    self._connect(job)
                else:
                    self._publish(job)
        finally:
            self._disconnect()
            self._fail_leftovers()

    def _service_idle(self) -> None:
        if self._connection is None:
            return
        try:
            self._connection.process_data_events(time_limit=0)
        except CONNECTION_ERRORS as exc:
            log.warning("email publisher connection lost while idle", extra={"error": repr(exc)})
            self._disconnect()

    def _publish(self, job: _Job) -> None:
        backoff = 0.1
        last_error: BaseException | None = None
        while time.monotonic() < job.deadline:
            try:
                channel = self._ensure_channel()
                channel.basic_publish(
                    exchange="",
                    routing_key=self._topology.queue,
                    body=job.body,
                    properties=job.properties,
                    mandatory=True,
                )
            except pika.exceptions.UnroutableError:
                self._fail(job, PublishError(f"unroutable: no queue {self._topology.queue!r}"))
                return
            except pika.exceptions.NackError:
                self._fail(job, PublishError("nacked by the broker"))
                return
            except TopologyError as exc:
                self._disconnect()
                self._fail(job, PublishError(str(exc)))
                return
            except CONNECTION_ERRORS as exc:
                last_error = exc
                log.warning(
                    "email publish failed, reconnecting",
                    extra={"error": repr(exc), "message_id": job.properties.message_id},
                )
                self._disconnect()
                pause = min(backoff, max(0.0, job.deadline - time.monotonic()))
                time.sleep(pause * (0.5 + random.random() / 2))
                backoff = min(backoff * 2, _MAX_BACKOFF)
                continue
            job.future.set_result(None)
            return
        reason = f"broker unreachable: {last_error!r}" if last_error else "no confirm before the deadline"
        self._fail(job, PublishError(reason))

    def _connect(self, job: _ConnectJob) -> None:
        backoff = 0.1
        last_error: BaseException | None = None
        while time.monotonic() < job.deadline:
            try:
                self._ensure_channel()
            except TopologyError as exc:
                self._disconnect()
                job.future.set_exception(exc)
                return
            except CONNECTION_ERRORS as exc:
                last_error = exc
                self._disconnect()
                time.sleep(min(backoff, max(0.0, job.deadline - time.monotonic())))
                backoff = min(backoff * 2, _MAX_BACKOFF)
                continue
            job.future.set_result(None)
            return
        job.future.set_exception(PublishError(f"broker unreachable: {last_error!r}"))

    def _ensure_channel(self) -> BlockingChannel:
        if self._channel is not None and self._channel.is_open:
            return self._channel
        self._disconnect()
        connection = pika.BlockingConnection(self._params)
        try:
            channel = connection.channel()
            self._topology.declare(channel)
            channel.confirm_delivery()
        except BaseException:
            if connection.is_open:
                connection.close()
            raise
        self._connection, self._channel = connection, channel
        self.connections_opened += 1
        log.info("email publisher connected", extra={"queue": self._topology.queue})
        return channel

    def _disconnect(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and connection.is_open:
            with contextlib.suppress(*CONNECTION_ERRORS):
                connection.close()

    @staticmethod
    def _fail(job: _Job, error: PublishError) -> None:
        log.error(
            "email event not published", extra={"message_id": job.properties.message_id, "error": str(error)}
        )
        job.future.set_exception(error)

    def _fail_leftovers(self) -> None:
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                return
            if not isinstance(job, _Stop) and job.future.set_running_or_notify_cancel():
                job.future.set_exception(PublishError("publisher closed before the event was sent"))


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
