"""AMQP (RabbitMQ, through pika) for every client of ours: connection parameters, and a
publisher with pipelined confirms that reconnects by itself.

    parameters   connection_parameters(), CONNECTION_ERRORS
    confirms     ConfirmStateMachine: pending and in-flight messages, confirms, deadlines,
                 reconnect backoff, drain-then-close; no I/O, driven by plain calls
    transport    SelectTransport: one SelectConnection on one I/O loop thread, its channel,
                 declarations, confirm mode, publishing
    publisher    ConfirmedPublisher: the two together behind a thread-safe blocking API

It knows queues, bytes and AMQP properties, never what a message means: the owner of the
messages says, through `PublishHooks`, what each failure raises and what is counted.
"""

from __future__ import annotations

from ocrmesh.platform.amqp.confirms import (
    ConfirmOutcome,
    ConfirmStateMachine,
    ConnectWaiter,
    PublishHooks,
    PublishJob,
)
from ocrmesh.platform.amqp.parameters import CONNECTION_ERRORS, connection_parameters
from ocrmesh.platform.amqp.publisher import CALLER_GRACE, ConfirmedPublisher

__all__ = [
    "CALLER_GRACE",
    "CONNECTION_ERRORS",
    "ConfirmOutcome",
    "ConfirmStateMachine",
    "ConfirmedPublisher",
    "ConnectWaiter",
    "PublishHooks",
    "PublishJob",
    "connection_parameters",
]
