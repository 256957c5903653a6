"""The gateway's connections to the mesh, made once per process in the app's lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from grpc import aio
from grpc_health.v1 import health_pb2

from gateway.settings import GatewaySettings
from ocrmesh.auth.v1 import auth_pb2_grpc
from ocrmesh.ocr.v1 import ocr_pb2_grpc
from ocrmesh.platform.grpc_client import create_channel
from ocrmesh.platform.units import MiB
from ocrmesh.rules.tokens import TokenVerifier

if TYPE_CHECKING:
    from ocrmesh.auth.v1.auth_pb2_grpc import AuthServiceAsyncStub
    from ocrmesh.ocr.v1.ocr_pb2_grpc import OcrServiceAsyncStub

log = logging.getLogger(__name__)

HealthCheck = aio.UnaryUnaryMultiCallable[health_pb2.HealthCheckRequest, health_pb2.HealthCheckResponse]
_HEALTH_CHECK_METHOD = "/grpc.health.v1.Health/Check"

# Builds the token verifier from the settings and the channel to auth_svc (tests may swap it).
VerifierFactory = Callable[[GatewaySettings, aio.Channel], TokenVerifier]


def default_verifier(settings: GatewaySettings, auth_channel: aio.Channel) -> TokenVerifier:
    """The kernel's verifier, fetching auth_svc's public keys over the gateway's channel."""
    return TokenVerifier.from_channel(
        auth_channel,
        issuer=settings.token_issuer,
        audience=settings.token_audience,
        fetch_timeout=settings.grpc_timeout_seconds,
    )


def health_check(channel: aio.Channel) -> HealthCheck:
    """grpc.health.v1 Health.Check over `channel`, typed (the published stub is not)."""
    return channel.unary_unary(
        _HEALTH_CHECK_METHOD,
        request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
        response_deserializer=health_pb2.HealthCheckResponse.FromString,
    )


@dataclass(frozen=True)
class Backends:
    """Channels, stubs and the token verifier shared by every request."""

    settings: GatewaySettings
    auth_channel: aio.Channel
    ocr_channel: aio.Channel
    auth: AuthServiceAsyncStub
    ocr: OcrServiceAsyncStub
    auth_health: HealthCheck
    ocr_health: HealthCheck
    verifier: TokenVerifier


@asynccontextmanager
async def open_backends(
    settings: GatewaySettings, verifier_factory: VerifierFactory | None = None
) -> AsyncIterator[Backends]:
    """Open the channels to auth_svc and ocr_svc (they connect lazily and reconnect on their
    own), yield the stubs, and close the channels on exit, cancelling calls still running."""
    # The upload limit is the gateway's; gRPC's message limit must never be the tighter one.
    max_message = max(16 * MiB, settings.gateway_max_upload_bytes + MiB)
    auth_channel = create_channel(
        settings.auth_addr,
        tls=settings.grpc_tls,
        unary_timeout=settings.grpc_timeout_seconds,
        stream_timeout=settings.grpc_timeout_seconds,
        max_message_bytes=max_message,
    )
    ocr_channel = create_channel(
        settings.ocr_addr,
        tls=settings.grpc_tls,
        unary_timeout=settings.grpc_timeout_seconds,
        stream_timeout=settings.ocr_timeout_seconds,
        max_message_bytes=max_message,
    )
    try:
        backends = Backends(
            settings=settings,
            auth_channel=auth_channel,
            ocr_channel=ocr_channel,
            auth=auth_pb2_grpc.AuthServiceStub(auth_channel),  # type: ignore[no-untyped-call]
            ocr=ocr_pb2_grpc.OcrServiceStub(ocr_channel),  # type: ignore[no-untyped-call]
            auth_health=health_check(auth_channel),
            ocr_health=health_check(ocr_channel),
            verifier=(verifier_factory or default_verifier)(settings, auth_channel),
        )
        log.info("gRPC channels open", extra={"auth_addr": settings.auth_addr, "ocr_addr": settings.ocr_addr})
        yield backends
    finally:
        await auth_channel.close()
        await ocr_channel.close()
        log.info("gRPC channels closed")
