"""One pika connection and its one channel, driven by one I/O loop thread.

pika connections are not thread-safe, so the transport owns ONE `SelectConnection` driven by
ONE thread (pika's select I/O loop, which also services heartbeats); other threads hand it
work through `run_soon`, the loop's thread-safe callback queue. On each connection it opens a
channel, declares the queues it was given, turns confirm mode on and then reports `on_ready`;
from there it publishes what it is told and reports confirms, returns and closes as plain
calls on its `TransportEvents` (a `ConfirmStateMachine`), which make every decision.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import pika
import pika.exceptions
from pika.adapters.select_connection import IOLoop
from pika.channel import Channel
from pika.connection import Parameters
from pika.spec import Basic

log = logging.getLogger(__name__)

# The AMQP reply code for "declared before with other arguments".
PRECONDITION_FAILED = 406


class TransportEvents(Protocol):
    """What the transport reports, on its loop thread."""

    def on_ready(self) -> None:
        """Channel open, queues declared, confirm mode on."""

    def on_open_failed(self, error: BaseException) -> None:
        """The connection could not be opened."""

    def on_confirm(self, delivery_tag: int, *, multiple: bool, nack: bool) -> None:
        """An ack or a nack from the broker."""

    def on_return(self, message_id: str | None, reply_code: int | None) -> None:
        """The broker returned a mandatory message."""

    def on_channel_closed(self, refused: str | None) -> None:
        """The channel closed; `refused` is the broker's reply when it refused a declaration."""

    def on_connection_closed(self, error: BaseException) -> None:
        """The connection closed, by either side."""

    def on_stopped(self) -> None:
        """The loop ended."""


class SelectTransport:
    """A publishing connection on its own loop thread: `start()` it with the events' receiver.

    `run_soon` may be called from any thread; everything else only from the loop thread
    (from the receiver's methods and the callbacks handed over).
    """

    def __init__(
        self,
        params: Parameters,
        queues: Sequence[tuple[str, Mapping[str, Any]]],
        *,
        name: str,
    ) -> None:
        self._params = params
        self._queues = [(queue, dict(arguments)) for queue, arguments in queues]
        self._name = name
        self._ioloop = IOLoop()
        self._events: TransportEvents | None = None
        self._connection: pika.SelectConnection | None = None
        self._channel: Channel | None = None
        # Set when we close the connection ourselves, so that its close is no "loss".
        self._closing_connection = False
        self._thread = threading.Thread(target=self._run, name=f"{name}-owner", daemon=True)

    # -- any thread -------------------------------------------------------------------------
    def start(self, events: TransportEvents) -> None:
        """Start the loop thread, reporting to `events`."""
        self._events = events
        self._thread.start()

    def run_soon(self, callback: Callable[[], None]) -> None:
        """Run `callback` on the loop thread (thread-safe)."""
        self._ioloop.add_callback_threadsafe(callback)

    def join(self, timeout: float | None = None) -> None:
        """Wait for the loop thread to end."""
        self._thread.join(timeout)

    # -- loop thread: the machine's commands --------------------------------------------------
    def open(self) -> None:
        """Start opening a connection; the outcome arrives as events."""
        self._closing_connection = False
        pika.SelectConnection(
            self._params,
            on_open_callback=self._on_connection_open,
            on_open_error_callback=self._on_connection_open_error,
            on_close_callback=self._on_connection_closed,
            custom_ioloop=self._ioloop,
        )

    def publish(self, exchange: str, routing_key: str, body: bytes, properties: pika.BasicProperties) -> None:
        """Publish one mandatory message on the ready channel."""
        assert self._channel is not None
        self._channel.basic_publish(
            exchange=exchange, routing_key=routing_key, body=body, properties=properties, mandatory=True
        )

    def shutdown(self) -> None:
        """Close the connection if it is open (its close callback follows); stop the loop now
        when there is none. A connection still opening or closing reports its close later."""
        connection = self._connection
        if connection is not None and connection.is_open:
            self._closing_connection = True
            connection.close()
        elif connection is None or connection.is_closed:
            self._ioloop.stop()

    def stop(self) -> None:
        """Stop the loop."""
        self._ioloop.stop()

    def call_later(self, delay: float, callback: Callable[[], None]) -> object:
        """Run `callback` on the loop after `delay` seconds."""
        return self._ioloop.call_later(delay, callback)

    # -- loop thread: pika's callbacks --------------------------------------------------------
    def _receiver(self) -> TransportEvents:
        assert self._events is not None
        return self._events

    def _run(self) -> None:
        try:
            self._ioloop.start()
        finally:
            self._receiver().on_stopped()
            self._ioloop.close()

    def _on_connection_open(self, connection: pika.SelectConnection) -> None:
        self._connection = connection
        connection.channel(on_open_callback=self._on_channel_open)

    def _on_connection_open_error(self, connection: Any, error: BaseException | str) -> None:
        problem = error if isinstance(error, BaseException) else pika.exceptions.AMQPConnectionError(error)
        log.warning(
            "AMQP publisher cannot connect", extra={"connection_name": self._name, "error": repr(error)}
        )
        self._receiver().on_open_failed(problem)

    def _on_channel_open(self, channel: Channel) -> None:
        self._channel = channel
        channel.add_on_close_callback(self._on_channel_closed)
        channel.add_on_return_callback(self._on_return)
        self._declare(self._queues)

    def _declare(self, queues: list[tuple[str, dict[str, Any]]]) -> None:
        """Declare `queues` one after the other, then turn confirm mode on."""
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
        log.info(
            "AMQP publisher connected",
            extra={"connection_name": self._name, "queues": [name for name, _ in self._queues]},
        )
        self._receiver().on_ready()

    def _on_return(
        self, channel: Channel, method: Any, properties: pika.BasicProperties, body: bytes
    ) -> None:
        self._receiver().on_return(properties.message_id, getattr(method, "reply_code", None))

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        self._receiver().on_confirm(
            method.delivery_tag, multiple=bool(method.multiple), nack=isinstance(method, Basic.Nack)
        )

    def _on_channel_closed(self, channel: Channel, error: BaseException) -> None:
        self._channel = None
        refused = (
            str(error.reply_text)
            if isinstance(error, pika.exceptions.ChannelClosedByBroker)
            and error.reply_code == PRECONDITION_FAILED
            else None
        )
        self._receiver().on_channel_closed(refused)
        connection = self._connection
        if connection is not None and connection.is_open:
            # One channel per connection: start over with a fresh connection.
            self._closing_connection = True
            connection.close()

    def _on_connection_closed(self, connection: Any, error: BaseException) -> None:
        lost = self._channel is not None and not self._closing_connection
        self._connection, self._channel = None, None
        if lost:
            log.warning(
                "AMQP publisher connection lost", extra={"connection_name": self._name, "error": repr(error)}
            )
        self._receiver().on_connection_closed(error)
