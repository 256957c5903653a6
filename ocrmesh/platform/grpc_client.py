"""Client channels with keepalive, a default deadline on every call, and the request id
of the current call passed on as `x-request-id` metadata.

A channel spreads its calls over every address its target resolves to (`round_robin`):
`host:port` is one server, `dns:///auth-svc:50051` every pod of a headless Service,
`ipv4:10.0.0.1:50051,10.0.0.2:50051` a fixed list. A replica that goes away is skipped
as soon as its connection fails, and used again once it accepts connections. Calls that
are safe to send twice (reads, declared beside their protos: `declared_method_configs`)
are retried on UNAVAILABLE, on another replica; gRPC itself retries any call
transparently only when it never reached a server.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib import resources
from typing import Any

import grpc
from grpc import aio
from grpc_health.v1 import health_pb2

from ocrmesh.platform.metadata import AUTHORIZATION, BEARER_SCHEME
from ocrmesh.platform.request_context import REQUEST_ID_HEADER, current_request_id
from ocrmesh.platform.settings import GrpcTls
from ocrmesh.platform.telemetry import grpc_client_interceptors
from ocrmesh.platform.units import MiB

# A unary call that takes longer than this is a failure, not a slow success.
DEFAULT_UNARY_TIMEOUT_S = 5.0
# Streams (OCR) legitimately run longer.
DEFAULT_STREAM_TIMEOUT_S = 120.0


# Health checks are the platform's own protocol: a read, retried like the services' reads.
_HEALTH_CHECK_RETRIED: dict[str, Any] = {
    "name": [{"service": health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, "method": "Check"}],
    "retryPolicy": {
        "maxAttempts": 3,
        "initialBackoff": "0.05s",
        "maxBackoff": "0.5s",
        "backoffMultiplier": 2,
        "retryableStatusCodes": ["UNAVAILABLE"],
    },
}
SERVICE_CONFIG_SUFFIX = "_grpc_service_config.json"


def declared_method_configs() -> list[dict[str, Any]]:
    """The `methodConfig` entries the services declare beside their protos
    (`protos/ocrmesh/<area>/v1/<name>_grpc_service_config.json`, copied next to the
    generated code by `make protos`): which of their methods clients may retry."""
    configs: list[dict[str, Any]] = []
    for area in sorted(resources.files("ocrmesh").iterdir(), key=lambda entry: entry.name):
        generated = area / "v1"
        if not generated.is_dir():
            continue
        for entry in sorted(generated.iterdir(), key=lambda entry: entry.name):
            if entry.name.endswith(SERVICE_CONFIG_SUFFIX):
                configs += json.loads(entry.read_text(encoding="utf-8")).get("methodConfig", [])
    return configs


def retried_methods(method_configs: Sequence[dict[str, Any]]) -> list[str]:
    """`/package.Service/Method` of every method a retry policy covers."""
    return [
        f"/{name['service']}/{name['method']}"
        for config in method_configs
        if "retryPolicy" in config
        for name in config.get("name", ())
    ]


def service_config(method_configs: Sequence[dict[str, Any]] | None = None) -> str:
    """The channels' gRPC service config (JSON): round_robin over every resolved address;
    the methods the services declare retryable (reads without side effects: a second attempt
    on another replica does no harm) and health checks retried on UNAVAILABLE with backoff,
    within the call's own deadline; retries pause while about one call in ten fails
    (retryThrottling), so a failing fleet is not flooded with retries. Never a call that
    writes (Register, Login's counters, codes) or Recognize (it mails on completion)."""
    declared = declared_method_configs() if method_configs is None else list(method_configs)
    return json.dumps(
        {
            "loadBalancingConfig": [{"round_robin": {}}],
            "methodConfig": [_HEALTH_CHECK_RETRIED, *declared],
            "retryThrottling": {"maxTokens": 10, "tokenRatio": 0.1},
        }
    )


_SERVICE_CONFIG = service_config()


def _with_request_id(metadata: Any) -> Any:
    request_id = current_request_id()
    if not request_id:
        return metadata
    pairs = tuple(metadata or ())
    if any(key == REQUEST_ID_HEADER for key, _ in pairs):
        return metadata
    return (*pairs, (REQUEST_ID_HEADER, request_id))


class _WithDefaults:
    """A multicallable that fills in the default deadline and the request id, then calls
    the channel's own. (Not a client interceptor: grpc.aio runs each intercepted call in an
    extra task, ~10% of the gateway's CPU on `GET /auth/me`.)"""

    __slots__ = ("_call", "_timeout")

    def __init__(self, call: Any, timeout: float) -> None:
        self._call = call
        self._timeout = timeout

    def __call__(
        self, request: Any, *, timeout: float | None = None, metadata: Any = None, **options: Any
    ) -> Any:
        return self._call(
            request,
            timeout=self._timeout if timeout is None else timeout,
            metadata=_with_request_id(metadata),
            **options,
        )


class _MeshChannel(aio.Channel):
    """An `aio.Channel` whose calls get a default deadline per kind and the request id."""

    def __init__(self, channel: aio.Channel, unary_timeout: float, stream_timeout: float) -> None:
        self._channel = channel
        self._unary_timeout = unary_timeout
        self._stream_timeout = stream_timeout

    async def __aenter__(self) -> _MeshChannel:
        return self

    async def __aexit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        await self._channel.close(None)

    async def close(self, grace: float | None = None) -> None:
        await self._channel.close(grace)

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        return self._channel.get_state(try_to_connect)

    async def wait_for_state_change(self, last_observed_state: grpc.ChannelConnectivity) -> None:
        await self._channel.wait_for_state_change(last_observed_state)

    async def channel_ready(self) -> None:
        await self._channel.channel_ready()

    def unary_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return _WithDefaults(self._channel.unary_unary(method, *args, **kwargs), self._unary_timeout)

    def unary_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return _WithDefaults(self._channel.unary_stream(method, *args, **kwargs), self._stream_timeout)

    def stream_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return _WithDefaults(self._channel.stream_unary(method, *args, **kwargs), self._stream_timeout)

    def stream_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return _WithDefaults(self._channel.stream_stream(method, *args, **kwargs), self._stream_timeout)


def channel_credentials(tls: GrpcTls) -> grpc.ChannelCredentials:
    """TLS credentials of a client: the server is verified against the CA file (the system
    roots without one); the client's certificate and key, when set, are presented for
    mutual TLS."""
    return grpc.ssl_channel_credentials(
        root_certificates=tls.ca_file.read_bytes() if tls.ca_file is not None else None,
        private_key=tls.key_file.read_bytes() if tls.key_file is not None else None,
        certificate_chain=tls.cert_file.read_bytes() if tls.cert_file is not None else None,
    )


def create_channel(
    target: str,
    *,
    tls: GrpcTls | None = None,
    unary_timeout: float = DEFAULT_UNARY_TIMEOUT_S,
    stream_timeout: float = DEFAULT_STREAM_TIMEOUT_S,
    max_message_bytes: int = 16 * MiB,
    options: Sequence[tuple[str, Any]] = (),
) -> aio.Channel:
    """A grpc.aio channel to `target` (any gRPC target URI, see the module's docstring),
    balancing round robin over its addresses: plaintext, or TLS when `tls` is enabled (see
    `channel_credentials`).

    Every call made on it without an explicit `timeout=` gets the default deadline for its
    kind (unary or server-streaming). Keepalive pings detect a dead peer on an idle
    connection; reconnection after a restart of the peer is gRPC's own.
    """
    channel_options = [
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
        # Reconnect soon after a restarted peer is back, not after a long backoff.
        ("grpc.initial_reconnect_backoff_ms", 200),
        ("grpc.max_reconnect_backoff_ms", 2_000),
        ("grpc.service_config", _SERVICE_CONFIG),
        ("grpc.enable_retries", 1),
        # Connections of its own: round_robin reconnects a lost address at once and, while
        # it is refused, backs off; a channel made later for the same address must not
        # inherit that backoff (gRPC shares connections between channels by default).
        ("grpc.use_local_subchannel_pool", 1),
        *options,
    ]
    # Tracing's interceptors (None when it is off: then calls take no extra task).
    interceptors = grpc_client_interceptors()
    if tls is not None and tls.enabled:
        channel = aio.secure_channel(
            target, channel_credentials(tls), options=channel_options, interceptors=interceptors
        )
    else:
        channel = aio.insecure_channel(target, options=channel_options, interceptors=interceptors)
    return _MeshChannel(channel, unary_timeout, stream_timeout)


def bearer_metadata(token: str) -> tuple[tuple[str, str], ...]:
    """Call metadata that carries `token` as `authorization: Bearer <token>`."""
    return ((AUTHORIZATION, f"{BEARER_SCHEME} {token}"),)


__all__ = ["bearer_metadata", "channel_credentials", "create_channel", "grpc"]
