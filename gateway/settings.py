"""The gateway's configuration: environment variables only, checked at start-up."""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network, ip_network
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from ocrmesh.platform.settings import GrpcTarget, GrpcTlsSettings
from ocrmesh.platform.units import KiB, MiB
from ocrmesh.rules.endpoints import DEFAULT_AUTH_ADDR, DEFAULT_OCR_ADDR
from ocrmesh.rules.tokens import DEFAULT_TOKEN_AUDIENCE, DEFAULT_TOKEN_ISSUER


class GatewaySettings(GrpcTlsSettings):
    """GATEWAY_HOST, GATEWAY_PORT, AUTH_ADDR, OCR_ADDR, TOKEN_ISSUER, TOKEN_AUDIENCE,
    GATEWAY_MAX_UPLOAD_BYTES, GRPC_TIMEOUT_SECONDS, OCR_TIMEOUT_SECONDS,
    READINESS_TIMEOUT_SECONDS, GATEWAY_CORS_ORIGINS (comma separated), GATEWAY_WORKERS,
    GRPC_TLS_CERT_FILE, GRPC_TLS_KEY_FILE, GRPC_TLS_CA_FILE (the client side of mutual TLS),
    and the edge's limits: GATEWAY_MAX_BODY_BYTES, GATEWAY_BODY_TIMEOUT_SECONDS,
    GATEWAY_BODY_IDLE_TIMEOUT_SECONDS, GATEWAY_HEADER_TIMEOUT_SECONDS,
    GATEWAY_KEEPALIVE_TIMEOUT_SECONDS, GATEWAY_MAX_CONNECTIONS,
    GATEWAY_MAX_CONNECTIONS_PER_CLIENT, GATEWAY_MAX_REQUESTS_PER_CLIENT,
    GATEWAY_MAX_UPLOADS_PER_CLIENT (docs/gateway.md), GATEWAY_ROOT_PATH."""

    gateway_host: str = "0.0.0.0"  # noqa: S104 - the edge is meant to be reachable
    gateway_port: int = Field(default=8000, ge=1, le=65535)
    # uvicorn worker processes on GATEWAY_PORT; 0 = one per core. Each has its own channels
    # and token verifier (its key cache and verified-token cache are per process).
    gateway_workers: int = Field(default=1, ge=0, le=64)
    # The path prefix a reverse proxy serves the gateway under and strips before passing the
    # request on (e.g. /ocrmesh): /docs and the OpenAPI schema name it. The web page's links
    # are relative, so it works under any prefix without this. Empty: served at the root.
    gateway_root_path: str = Field(default="", max_length=200, pattern=r"^(/[A-Za-z0-9._~-]+)*$")
    # Any gRPC target: host:port, dns:///name:port (every address the name resolves to, e.g.
    # a headless Service's pods), ipv4:a:port,b:port. Calls are spread round robin.
    auth_addr: GrpcTarget = DEFAULT_AUTH_ADDR
    ocr_addr: GrpcTarget = DEFAULT_OCR_ADDR
    # Must match what auth_svc signs with; the verifier rejects tokens for anything else.
    token_issuer: str = Field(default=DEFAULT_TOKEN_ISSUER, min_length=1)
    token_audience: str = Field(default=DEFAULT_TOKEN_AUDIENCE, min_length=1)
    # Same default as OCR_MAX_IMAGE_BYTES: refusing here saves shipping bytes ocr_svc refuses.
    gateway_max_upload_bytes: int = Field(default=10 * MiB, ge=1)
    # Every other body (JSON, the /auth/token form): refused past this, before it is read.
    gateway_max_body_bytes: int = Field(default=16 * KiB, ge=256, le=MiB)
    # A body must arrive whole within this, and never pause longer than the idle timeout.
    gateway_body_timeout_seconds: float = Field(default=60.0, gt=0)
    gateway_body_idle_timeout_seconds: float = Field(default=10.0, gt=0)
    # From a connection's start (or the first byte of its next request) to the request's
    # last header line; then 408 and the connection is closed.
    gateway_header_timeout_seconds: float = Field(default=10.0, gt=0)
    # An idle keep-alive connection is closed after this.
    gateway_keepalive_timeout_seconds: int = Field(default=5, ge=1, le=300)
    # Per process (uvicorn worker): connections and requests at once; beyond it 503.
    gateway_max_connections: int = Field(default=1000, ge=1)
    # Per client address, per process: open connections (beyond it 429 and closed) and
    # requests in flight (beyond it 429 with Retry-After). 0 = no limit (behind a proxy
    # that limits clients itself, every client has the proxy's address).
    gateway_max_connections_per_client: int = Field(default=128, ge=0)
    gateway_max_requests_per_client: int = Field(default=64, ge=0)
    # Of those, uploads to /ocr and /ocr/stream (each holds its image in memory meanwhile).
    gateway_max_uploads_per_client: int = Field(default=4, ge=0)
    grpc_timeout_seconds: float = Field(default=5.0, gt=0)
    ocr_timeout_seconds: float = Field(default=120.0, gt=0)
    # /readyz answers probes: it must be quick even when a service hangs.
    readiness_timeout_seconds: float = Field(default=1.0, gt=0)
    # Browser origins allowed to call the API; none by default (curl and servers need none).
    gateway_cors_origins: Annotated[tuple[str, ...], NoDecode] = ()
    # GATEWAY_TRUSTED_PROXIES: addresses or networks (comma separated) of the proxies in
    # front of the gateway. Only from them is X-Forwarded-For believed when telling auth_svc
    # who the client is (its throttles count per client address); none by default.
    gateway_trusted_proxies: Annotated[tuple[IPv4Network | IPv6Network, ...], NoDecode] = ()

    @field_validator("gateway_trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(ip_network(part.strip(), strict=False) for part in value.split(",") if part.strip())
        return value

    @field_validator("gateway_cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        # A plain comma-separated list reads better in an env file than JSON.
        if isinstance(value, str):
            return tuple(origin.strip() for origin in value.split(",") if origin.strip())
        return value
