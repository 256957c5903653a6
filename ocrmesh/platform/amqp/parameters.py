"""Connection parameters every AMQP client of ours uses, and the errors that mean "reconnect"."""

from __future__ import annotations

import pika
import pika.exceptions

# Any of these means the connection or channel is gone and a new one is needed.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    pika.exceptions.AMQPConnectionError,
    pika.exceptions.AMQPChannelError,
    pika.exceptions.ConnectionWrongStateError,
    pika.exceptions.ChannelWrongStateError,
    pika.exceptions.StreamLostError,
    OSError,
)


def connection_parameters(
    url: str,
    *,
    connection_name: str,
    heartbeat: int | None = None,
    timeout: float = 10.0,
) -> pika.URLParameters:
    """Parameters for `url` with a name shown in the broker's connection list, a socket and
    blocked-connection timeout (a broker under a resource alarm must not hang us forever),
    and one connection attempt (callers do their own retrying)."""
    params = pika.URLParameters(url)
    params.client_properties = {"connection_name": connection_name}
    params.connection_attempts = 1
    params.socket_timeout = timeout
    params.stack_timeout = timeout
    params.blocked_connection_timeout = timeout
    if heartbeat is not None:
        params.heartbeat = heartbeat
    return params
