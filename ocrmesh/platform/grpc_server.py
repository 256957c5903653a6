"""gRPC server bootstrap shared by every service: health, reflection, interceptors,
graceful shutdown on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio

from ocrmesh.platform.grpc_interceptors import ServerContextInterceptor
from ocrmesh.platform.server_reflection import enable_server_reflection
from ocrmesh.platform.settings import GrpcTls
from ocrmesh.platform.telemetry import grpc_server_interceptors
from ocrmesh.platform.units import MiB

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HostedService:
    """A servicer to host: its full service name (for health and reflection) and the
    generated `add_XServicer_to_server` function bound to it."""

    name: str
    register: Callable[[aio.Server], None]

    @classmethod
    def of(cls, servicer: Any, add_to_server: Callable[[Any, aio.Server], None], name: str) -> HostedService:
        return cls(name=name, register=lambda server: add_to_server(servicer, server))


@dataclass
class MeshServer:
    """A started-or-startable gRPC server with its health servicer."""

    server: aio.Server
    health: health_aio.HealthServicer
    service_names: list[str] = field(default_factory=list)

    async def start(self, *, serving: bool = True) -> None:
        """Start accepting calls. With serving=False health stays NOT_SERVING until
        `set_serving(True)` (for services that warm up first)."""
        await self.server.start()
        await self.set_serving(serving)

    async def set_serving(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        # "" is the overall server health, what probes without a service name ask for.
        for name in ["", *self.service_names]:
            await self.health.set(name, status)

    async def stop(self, grace: float) -> None:
        """Graceful stop: health NOT_SERVING, refuse new calls, let in-flight calls finish
        within `grace` seconds, then cancel what is left."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)


def server_credentials(tls: GrpcTls) -> grpc.ServerCredentials:
    """TLS credentials of a server: its certificate and key, and with a CA, mutual TLS (a
    client without a certificate that CA signed fails the handshake; no call reaches us)."""
    if tls.cert_file is None or tls.key_file is None:
        raise ValueError("a gRPC server needs GRPC_TLS_CERT_FILE and GRPC_TLS_KEY_FILE to serve TLS")
    ca = tls.ca_file.read_bytes() if tls.ca_file is not None else None
    return grpc.ssl_server_credentials(
        [(tls.key_file.read_bytes(), tls.cert_file.read_bytes())],
        root_certificates=ca,
        require_client_auth=ca is not None,
    )


def create_server(
    services: Sequence[HostedService],
    *,
    port: int = 0,
    host: str = "127.0.0.1",
    tls: GrpcTls | None = None,
    interceptors: Sequence[aio.ServerInterceptor] = (),
    max_receive_message_bytes: int = 4 * MiB,
    max_connection_age_s: float | None = None,
    max_connection_age_grace_s: float | None = None,
    options: Sequence[tuple[str, Any]] = (),
) -> tuple[MeshServer, int]:
    """Build a grpc.aio server hosting `services` plus grpc.health.v1.Health and server
    reflection, bound to host:port (port 0 picks a free one). Returns (server, bound port).

    The default host is the loopback interface: a service is reachable from other machines
    only when its settings say so (AUTH_HOST, OCR_HOST). With `tls` enabled the port serves
    TLS (mutual TLS when it names a CA), see `server_credentials`.

    With `max_connection_age_s` a client connection is closed (GOAWAY) after about that
    long, calls on it getting `max_connection_age_grace_s` to finish: clients then reconnect
    and re-resolve, which spreads them over replicas started since (see GrpcServerSettings)."""
    age_options = []
    if max_connection_age_s is not None:
        age_options.append(("grpc.max_connection_age_ms", int(max_connection_age_s * 1000)))
    if max_connection_age_grace_s is not None:
        age_options.append(("grpc.max_connection_age_grace_ms", int(max_connection_age_grace_s * 1000)))
    server = aio.server(
        # Tracing (when on) outermost: its span covers the call's access log line.
        interceptors=[*grpc_server_interceptors(), ServerContextInterceptor(), *interceptors],
        options=[
            ("grpc.max_receive_message_length", max_receive_message_bytes),
            ("grpc.max_send_message_length", max_receive_message_bytes),
            # Accept the client keepalive pings ocrmesh.platform.grpc_client sends.
            ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
            ("grpc.keepalive_permit_without_calls", 1),
            *age_options,
            *options,
        ],
    )
    for service in services:
        service.register(server)
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    names = [s.name for s in services]
    enable_server_reflection([*names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name], server)
    address = f"{host}:{port}"
    if tls is not None and tls.enabled:
        bound = server.add_secure_port(address, server_credentials(tls))
    else:
        bound = server.add_insecure_port(address)
    if bound == 0:
        raise OSError(f"cannot bind gRPC server to {host}:{port}")
    return MeshServer(server=server, health=health, service_names=names), bound


async def run_until_signalled(mesh: MeshServer, grace: float) -> None:
    """Wait until SIGTERM or SIGINT, then stop `mesh` gracefully."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    try:
        await stopping.wait()
        log.info("shutting down", extra={"grace_seconds": grace})
        await mesh.stop(grace)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    log.info("stopped")


__all__ = [
    "HostedService",
    "MeshServer",
    "create_server",
    "grpc",
    "run_until_signalled",
    "server_credentials",
]
