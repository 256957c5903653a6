"""The FastAPI application: routes, middleware, and the lifespan that opens the gRPC
channels, stubs and token verifier once per process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from gateway import metrics
from gateway.backends import VerifierFactory, open_backends
from gateway.body_limits import BodyLimitMiddleware, BodyLimits, BodyRule
from gateway.client_limits import ClientRequestLimitMiddleware
from gateway.middleware import RESPONSE_REQUEST_ID_HEADER, RequestContextMiddleware
from gateway.routes import auth, health, ocr, page
from gateway.settings import GatewaySettings
from gateway.uploads import MULTIPART_OVERHEAD_BYTES
from ocrmesh.platform.settings import load_settings
from ocrmesh.platform.telemetry import configure_tracing, instrument_fastapi, shutdown_tracing

DESCRIPTION = """\
The REST edge of ocrmesh. Register, verify your email with the emailed code, log in, then
send images to `/ocr` (one JSON result) or `/ocr/stream` (NDJSON, or server-sent events with
`Accept: text/event-stream`). Use **Authorize** with your email and password to try the
protected routes here. Every response carries an `X-Request-ID`; quote it when reporting a
problem.
"""

# No trace spans for health probes and metrics scrapes: noise in a trace backend. Regular
# expressions searched in the request's URL.
TRACING_EXCLUDED_URLS = ("/healthz", "/readyz", "/metrics")


def create_app(
    settings: GatewaySettings | None = None, *, verifier_factory: VerifierFactory | None = None
) -> FastAPI:
    """The gateway app. Channels open when its lifespan starts and close when it ends, so one
    app serves many requests over the same connections."""
    settings = settings or load_settings(GatewaySettings)
    # Here rather than in `main`: each uvicorn worker process builds its own app. On only
    # with OTEL_* set; off, no middleware is added.
    traced = configure_tracing("gateway")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_backends(settings, verifier_factory) as backends:
            app.state.backends = backends
            try:
                yield
            finally:
                del app.state.backends
                if traced:
                    shutdown_tracing()  # the last spans out before the process ends

    app = FastAPI(
        title="ocrmesh gateway",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        swagger_ui_parameters={"persistAuthorization": True},
        # FastAPI's own OpenTelemetry hooks look up the global providers on every request
        # (~5% of a GET /auth/me); the gateway's tracing is configured by OTEL_* instead.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        # Forms (only /auth/token has one) hold a few short fields and never a file; the
        # body size itself is BodyLimitMiddleware's.
        form_limits={"max_files": 0, "max_fields": 16, "max_part_size": settings.gateway_max_body_bytes},
    )
    app.include_router(auth.router)
    app.include_router(ocr.router)
    app.include_router(health.router)
    app.include_router(metrics.router)
    page.add_page(app)  # GET / and /static/: the web page
    if settings.gateway_cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.gateway_cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "Accept", RESPONSE_REQUEST_ID_HEADER],
            expose_headers=[RESPONSE_REQUEST_ID_HEADER],
        )
    # Bodies bounded in size and time before any route reads them (413/415/408).
    upload = BodyRule(settings.gateway_max_upload_bytes + MULTIPART_OVERHEAD_BYTES, multipart=True)
    app.add_middleware(
        BodyLimitMiddleware,
        limits=BodyLimits(
            default=BodyRule(settings.gateway_max_body_bytes),
            routes=dict.fromkeys(ocr.UPLOAD_PATHS, upload),
            body_timeout_seconds=settings.gateway_body_timeout_seconds,
            idle_timeout_seconds=settings.gateway_body_idle_timeout_seconds,
        ),
    )
    app.add_middleware(
        ClientRequestLimitMiddleware,
        max_requests=settings.gateway_max_requests_per_client,
        max_uploads=settings.gateway_max_uploads_per_client,
        upload_paths=ocr.UPLOAD_PATHS,
        trusted_proxies=settings.gateway_trusted_proxies,
    )
    # Added last, so outermost: even CORS answers and 500s carry the request id.
    app.add_middleware(RequestContextMiddleware)
    # Outermost when on: its span covers every middleware.
    instrument_fastapi(app, excluded_urls=TRACING_EXCLUDED_URLS)
    return app
