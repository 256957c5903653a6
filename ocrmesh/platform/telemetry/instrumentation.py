"""The libraries' own OpenTelemetry instrumentations, installed only when tracing is on: gRPC
server and client interceptors, SQLAlchemy engines, a FastAPI app. Off, each function below
installs nothing (no interceptor, no engine event hook, no ASGI middleware), and the
instrumentation packages are not even imported.

They carry the trace context as W3C `traceparent`/`tracestate` in gRPC metadata and HTTP
headers themselves (through the API's default propagator).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from ocrmesh.platform.telemetry.configuration import on_shutdown, tracer_provider

if TYPE_CHECKING:
    from fastapi import FastAPI
    from grpc import aio
    from sqlalchemy import Engine

_sqlalchemy_instrumented = False


def grpc_server_interceptors() -> list[aio.ServerInterceptor]:
    """The OpenTelemetry server interceptor (health checks left out), or none when off."""
    provider = tracer_provider()
    if provider is None:
        return []
    from opentelemetry.instrumentation.grpc import aio_server_interceptor  # type: ignore[import-untyped]
    from opentelemetry.instrumentation.grpc.filters import (  # type: ignore[import-untyped]
        health_check,
        negate,
    )

    interceptor: aio.ServerInterceptor = aio_server_interceptor(  # type: ignore[no-untyped-call]
        tracer_provider=provider, filter_=negate(health_check())
    )
    return [interceptor]


def grpc_client_interceptors() -> list[aio.ClientInterceptor] | None:
    """The OpenTelemetry client interceptors (they send `traceparent`), or None when off."""
    provider = tracer_provider()
    if provider is None:
        return None
    from opentelemetry.instrumentation.grpc import aio_client_interceptors
    from opentelemetry.instrumentation.grpc.filters import health_check, negate

    interceptors: list[aio.ClientInterceptor] = aio_client_interceptors(  # type: ignore[no-untyped-call]
        tracer_provider=provider, filter_=negate(health_check())
    )
    return interceptors


def instrument_engines(*engines: Engine) -> None:
    """A span per SQL statement on `engines` when tracing is on (once per process: the
    instrumentor is a singleton). The statement text only, never its bound parameters."""
    global _sqlalchemy_instrumented
    provider = tracer_provider()
    if provider is None:
        return
    from opentelemetry.instrumentation.sqlalchemy import (  # type: ignore[import-untyped]
        SQLAlchemyInstrumentor,
    )

    SQLAlchemyInstrumentor().instrument(
        tracer_provider=provider,
        engines=list(engines),
        enable_commenter=False,
        # It declares SQLAlchemy < 2.1 and refuses 2.1 outright; the engine events it hooks
        # are unchanged in 2.1 (tests/e2e/test_tracing.py sees the statements' spans).
        skip_dep_check=True,
    )
    if not _sqlalchemy_instrumented:
        _sqlalchemy_instrumented = True
        # Its hooks hold this provider's tracer: they go with it.
        on_shutdown(_uninstrument_engines)


def _uninstrument_engines() -> None:
    global _sqlalchemy_instrumented
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    SQLAlchemyInstrumentor().uninstrument()
    _sqlalchemy_instrumented = False


def instrument_fastapi(app: FastAPI, *, excluded_urls: Iterable[str] = ()) -> None:
    """The OpenTelemetry ASGI middleware on `app` when tracing is on; nothing otherwise.

    A request whose URL matches one of `excluded_urls` (regular expressions, searched in the
    whole URL) gets no span: the app's probes and scrapes are noise in a trace backend.
    No headers are recorded (no Authorization), nor a span per body chunk."""
    patterns = list(excluded_urls)
    # The instrumentation takes them as one comma-separated string.
    if any("," in pattern for pattern in patterns):
        raise ValueError(f"excluded URL patterns cannot contain a comma: {patterns!r}")
    provider = tracer_provider()
    if provider is None:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=provider,
        # Always a string (empty: none excluded), never None: None would read the
        # OTEL_PYTHON_FASTAPI_EXCLUDED_URLS variable instead.
        excluded_urls=",".join(patterns),
        exclude_spans=["receive", "send"],
    )


__all__ = ["grpc_client_interceptors", "grpc_server_interceptors", "instrument_engines", "instrument_fastapi"]
