"""The "OCR completed" mail: fire-and-forget for the RPC, never silently lost.

`CompletionMailer.submit()` puts the event in a bounded in-memory buffer and returns at
once; one background task publishes buffered events in order, retrying each with
exponential backoff while the broker is away. An event is lost only when the buffer is
full (new events are then refused) or when the service stops before the broker is back;
both are logged at ERROR with the event ids and counted in `dropped`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from typing import Protocol

from ocrmesh.notify.v1 import email_pb2
from ocrmesh.platform.telemetry import REQUEST_ID_ATTRIBUTE, Context, SpanKind, current_context, resumed, span
from ocrmesh.rules.email_events import new_email_event
from ocrmesh.rules.tokens import TokenClaims

log = logging.getLogger(__name__)

# A mail carries the text; beyond this it is cut (the caller had the full stream).
MAX_TEXT_IN_MAIL = 20_000


class EventPublisher(Protocol):
    """What the mailer needs from `ocrmesh.rules.email_events.AsyncEmailPublisher`."""

    async def publish(self, event: email_pb2.EmailRequested, timeout: float | None = None) -> None: ...  # noqa: ASYNC109


def completion_email(
    claims: TokenClaims, *, full_text: str, line_count: int, filename: str = ""
) -> email_pb2.EmailRequested:
    """The "OCR completed" event for the user in `claims` (correlation id: this request)."""
    # The file name is the client's: keep printable characters only (no header tricks).
    shown = "".join(ch for ch in filename if ch.isprintable())[:255]
    what = f'"{shown}"' if shown else "your image"
    text = full_text if len(full_text) <= MAX_TEXT_IN_MAIL else full_text[:MAX_TEXT_IN_MAIL] + "\n[...]"
    noun = "line" if line_count == 1 else "lines"
    body = (
        f"Hello {claims.name},\n\n"
        f"The text recognition of {what} is complete: {line_count} {noun}.\n\n"
        f"{text if text else '(no text was found)'}\n"
    )
    return new_email_event(
        to=claims.email,
        subject="Your OCR result is ready",
        body=body,
        kind=email_pb2.EMAIL_KIND_OCR_COMPLETED,
    )


class CompletionMailer:
    """A bounded outbox in front of a publisher, drained by one background task."""

    def __init__(
        self,
        publisher: EventPublisher,
        *,
        buffer_size: int = 1000,
        publish_timeout: float = 10.0,
        initial_backoff: float = 0.5,
        max_backoff: float = 30.0,
    ) -> None:
        self._publisher = publisher
        self._buffer: asyncio.Queue[email_pb2.EmailRequested] = asyncio.Queue(maxsize=buffer_size)
        self._publish_timeout = publish_timeout
        self._initial_backoff = initial_backoff
        self._max_backoff = max_backoff
        self._task: asyncio.Task[None] | None = None
        self._in_flight: email_pb2.EmailRequested | None = None
        # Tracing on: the trace context of the call each buffered event came from, so its
        # publish (and the notifier's delivery) joins that call's trace.
        self._traces: dict[str, Context] = {}
        #: Events the broker confirmed.
        self.published = 0
        #: Events given up on (buffer full, or still unsent at shutdown).
        self.dropped = 0
        #: Failed publish attempts that were retried.
        self.retries = 0

    @property
    def pending(self) -> int:
        """Events not yet confirmed (buffered plus the one being published)."""
        return self._buffer.qsize() + (1 if self._in_flight is not None else 0)

    def start(self) -> None:
        """Start the background task (in the running event loop)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._drain(), name="completion-mailer")

    def submit(self, event: email_pb2.EmailRequested) -> bool:
        """Buffer `event` for publishing. Never blocks and never raises; False (logged and
        counted as dropped) when the buffer is full."""
        try:
            self._buffer.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += 1
            log.error(
                "completion mail dropped: buffer full",
                extra={"event_id": event.event_id, "dropped_total": self.dropped},
            )
            return False
        trace = current_context()
        if trace is not None:
            self._traces[event.event_id] = trace
        return True

    async def _drain(self) -> None:
        while True:
            event = await self._buffer.get()
            # Cleared only once confirmed: after a cancel, stop() still sees it as unsent.
            self._in_flight = event
            with (
                resumed(self._traces.pop(event.event_id, None)),
                span(
                    "email publish",
                    {"messaging.message.id": event.event_id, REQUEST_ID_ATTRIBUTE: event.correlation_id},
                    kind=SpanKind.PRODUCER,
                ),
            ):
                await self._publish_until_confirmed(event)
            self._in_flight = None
            self._buffer.task_done()

    async def _publish_until_confirmed(self, event: email_pb2.EmailRequested) -> None:
        backoff = self._initial_backoff
        while True:
            try:
                await self._publisher.publish(event, timeout=self._publish_timeout)
            except Exception as exc:
                # Any failure (PublishError, a bug in a publisher) is retried: the one way an
                # event is lost is an explicit, counted drop.
                self.retries += 1
                log.warning(
                    "completion mail not published yet, retrying",
                    extra={"event_id": event.event_id, "error": str(exc), "retry_in_s": round(backoff, 2)},
                )
                await asyncio.sleep(backoff * (0.5 + random.random() / 2))
                backoff = min(backoff * 2, self._max_backoff)
                continue
            self.published += 1
            log.info("completion mail published", extra={"event_id": event.event_id})
            return

    async def stop(self, grace: float) -> None:
        """Give buffered events `grace` seconds to be published, then drop (log and count)
        what is left."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._buffer.join(), timeout=grace)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        left: list[str] = []
        if self._in_flight is not None:
            left.append(self._in_flight.event_id)
            self._in_flight = None
        while not self._buffer.empty():
            left.append(self._buffer.get_nowait().event_id)
            self._buffer.task_done()
        self._traces.clear()
        if left:
            self.dropped += len(left)
            log.error(
                "completion mails dropped at shutdown: broker unreachable",
                extra={"event_ids": left, "count": len(left), "dropped_total": self.dropped},
            )
