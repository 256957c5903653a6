"""Client channels with keepalive, a default deadline on every call, and the request id
of the current call passed on as `x-request-id` metadata."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc
from grpc import aio

from ocrmesh.grpc_server import MiB
from ocrmesh.request_context import REQUEST_ID_HEADER, current_request_id

# A unary call that takes longer than this is a failure, not a slow success.
DEFAULT_UNARY_TIMEOUT_S = 5.0
# Streams (OCR) legitimately run longer.
DEFAULT_STREAM_TIMEOUT_S = 120.0


def _with_defaults(details: aio.ClientCallDetails, default_timeout: float) -> aio.ClientCallDetails:
    metadata = aio.Metadata.from_tuple(tuple(details.metadata or ()))
    request_id = current_request_id()
    if request_id and metadata.get(REQUEST_ID_HEADER) is None:
        metadata.add(REQUEST_ID_HEADER, request_id)
    return aio.ClientCallDetails(
        method=details.method,
        timeout=details.timeout if details.timeout is not None else default_timeout,
        metadata=metadata,
        credentials=details.credentials,
        wait_for_ready=details.wait_for_ready,
    )


class _UnaryDefaults(aio.UnaryUnaryClientInterceptor):
    def __init__(self, timeout: float) -> None:
        self.timeout = timeout

    async def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return await continuation(_with_defaults(client_call_details, self.timeout), request)


class _StreamDefaults(aio.UnaryStreamClientInterceptor):
    def __init__(self, timeout: float) -> None:
        self.timeout = timeout

    async def intercept_unary_stream(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return await continuation(_with_defaults(client_call_details, self.timeout), request)


def create_channel(
    target: str,
    *,
    unary_timeout: float = DEFAULT_UNARY_TIMEOUT_S,
    stream_timeout: float = DEFAULT_STREAM_TIMEOUT_S,
    max_message_bytes: int = 16 * MiB,
    options: Sequence[tuple[str, Any]] = (),
) -> aio.Channel:
    """An insecure grpc.aio channel to `target` ("host:port").

    Every call made on it without an explicit `timeout=` gets the default deadline for its
    kind (unary or server-streaming). Keepalive pings detect a dead peer on an idle
    connection; reconnection after a restart of the peer is gRPC's own.
    """
    return aio.insecure_channel(
        target,
        options=[
            ("grpc.keepalive_time_ms", 30_000),
            ("grpc.keepalive_timeout_ms", 10_000),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes),
            # Reconnect soon after a restarted peer is back, not after a long backoff.
            ("grpc.initial_reconnect_backoff_ms", 200),
            ("grpc.max_reconnect_backoff_ms", 2_000),
            *options,
        ],
        interceptors=[_UnaryDefaults(unary_timeout), _StreamDefaults(stream_timeout)],
    )


def bearer_metadata(token: str) -> tuple[tuple[str, str], ...]:
    """Call metadata that carries `token` as `authorization: Bearer <token>`."""
    return (("authorization", f"Bearer {token}"),)


__all__ = ["bearer_metadata", "create_channel", "grpc"]
