"""OpenTelemetry tracing for every service, off unless the standard `OTEL_*` variables ask.

On when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) or
`OTEL_TRACES_EXPORTER` is set and `OTEL_SDK_DISABLED` is not `true`. Then each process has
the SDK's tracer provider (sampler from `OTEL_TRACES_SAMPLER`, service name from
`OTEL_SERVICE_NAME` or the service's own), a batch span processor (`OTEL_BSP_*`) and the
OTLP/HTTP exporter (`OTEL_EXPORTER_OTLP_*`), or the console one. The context travels as
W3C `traceparent`/`tracestate`: in gRPC metadata and HTTP headers (the instrumentations,
through the API's default propagator), in the email event's AMQP headers and in the outbox
row (`current_carrier`, `continued_span`).

Off, nothing is installed: no gRPC interceptor, no ASGI middleware, no SQLAlchemy event
hook, no log field; the helpers below return empty lists and null contexts. Configure in
the process that serves (after a fork, in the child: the batch processor's thread does not
survive a fork) and call `shutdown_tracing()` on the way out so the last spans are sent.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode

from ocrmesh.platform.request_context import current_request_id

if TYPE_CHECKING:
    from fastapi import FastAPI
    from grpc import aio
    from opentelemetry.sdk.trace import Span, SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.sdk.trace.sampling import Sampler
    from opentelemetry.trace import Link
    from opentelemetry.trace.span import TraceState
    from opentelemetry.util.types import Attributes
    from sqlalchemy import Engine

log = logging.getLogger(__name__)

REQUEST_ID_ATTRIBUTE = "ocrmesh.request_id"
USER_ID_ATTRIBUTE = "enduser.id"
# Carrier keys of the W3C propagator; nothing else is accepted from a stored or received
# carrier (a message's other headers, a database row, are not ours to read as context).
_CARRIER_KEYS = ("traceparent", "tracestate")
_MAX_CARRIER_VALUE = 512
_EXPORTERS = frozenset({"otlp", "console"})
# Health probes, reflection and metrics scrapes are noise in a trace backend.
GATEWAY_EXCLUDED_URLS = "/healthz,/readyz,/metrics"

_provider: TracerProvider | None = None
_sqlalchemy_instrumented = False
_tracer: trace.Tracer = trace.NoOpTracer()


class TracingConfigError(ValueError):
    """The `OTEL_*` variables ask for something this build cannot do."""


def tracing_requested(env: Mapping[str, str] | None = None) -> bool:
    """Whether the environment turns tracing on (see the module docstring)."""
    env = os.environ if env is None else env
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = _exporter_names(env)
    if exporters:
        return exporters != ["none"]
    return bool(
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
        or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    )


def tracing_enabled() -> bool:
    """Whether this process traces (`configure_tracing` turned it on)."""
    return _provider is not None


def _exporter_names(env: Mapping[str, str]) -> list[str]:
    raw = env.get("OTEL_TRACES_EXPORTER", "")
    return [name.strip().lower() for name in raw.split(",") if name.strip()]


def _check(env: Mapping[str, str]) -> list[str]:
    """The exporters to build; `TracingConfigError` for what this build does not offer."""
    names = [name for name in (_exporter_names(env) or ["otlp"]) if name != "none"]
    unknown = sorted(set(names) - _EXPORTERS)
    if unknown:
        raise TracingConfigError(
            f"OTEL_TRACES_EXPORTER: {', '.join(unknown)} not available (use otlp, console or none)"
        )
    if "otlp" in names:
        protocol = (
            env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or ""
        ).strip()
        if protocol not in ("", "http/protobuf"):
            raise TracingConfigError(
                f"OTEL_EXPORTER_OTLP_PROTOCOL: {protocol!r} not available (this build exports http/protobuf)"
            )
        for key in ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"):
            endpoint = env.get(key, "").strip()
            if endpoint and not endpoint.startswith(("http://", "https://")):
                raise TracingConfigError(f"{key}: {endpoint[:100]!r} is not an http:// or https:// URL")
    return names


def configure_tracing(
    service_name: str, env: Mapping[str, str] | None = None, *, exporter: SpanExporter | None = None
) -> bool:
    """Turn tracing on for this process when the environment asks for it; returns whether
    it is on. A configuration this build cannot serve stops the process (exit code 2, a
    readable line on stderr, like invalid settings). Idempotent.

    `exporter` (tests: the SDK's in-memory one) turns it on with that exporter alone."""
    env = os.environ if env is None else env
    if _provider is not None:
        return True
    if exporter is not None:
        _install(service_name, [exporter], env)
        return True
    if not tracing_requested(env):
        return False
    try:
        exporters = _check(env)
    except TracingConfigError as exc:
        sys.stderr.write(f"invalid tracing configuration for {service_name}: {exc}\n")
        raise SystemExit(2) from None
    _install(service_name, [_exporter(name, service_name) for name in exporters], env)
    log.info("tracing on", extra={"exporters": exporters, "service_name": service_name})
    return True


def _exporter(name: str, service_name: str) -> SpanExporter:
    if name == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()  # endpoint, headers, timeout: OTEL_EXPORTER_OTLP_*
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    return ConsoleSpanExporter(service_name=service_name)


def _install(service_name: str, exporters: list[SpanExporter], env: Mapping[str, str]) -> None:
    global _provider, _tracer
    # The SDK and the instrumentations are imported only when tracing is on.
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({SERVICE_NAME: env.get("OTEL_SERVICE_NAME", "").strip() or service_name})
    # shutdown_on_exit=False: `shutdown_tracing()` is called on every way out we own; a
    # forked worker leaves through os._exit, where atexit never runs anyway.
    provider = TracerProvider(resource=resource, sampler=_sampler(), shutdown_on_exit=False)
    provider.add_span_processor(_request_id_processor())
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _provider = provider
    _tracer = provider.get_tracer("ocrmesh")


def shutdown_tracing(timeout_s: float = 5.0) -> None:
    """Send the spans still buffered and stop the exporters (within `timeout_s`)."""
    global _provider, _tracer, _sqlalchemy_instrumented
    provider, _provider = _provider, None
    _tracer = trace.NoOpTracer()
    if provider is None:
        return
    if _sqlalchemy_instrumented:
        from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

        SQLAlchemyInstrumentor().uninstrument()
        _sqlalchemy_instrumented = False
    provider.force_flush(int(timeout_s * 1000))
    provider.shutdown()


@contextlib.contextmanager
def tracing(service_name: str) -> Iterator[bool]:
    """`configure_tracing` for the duration of a block, flushed at its end."""
    enabled = configure_tracing(service_name)
    try:
        yield enabled
    finally:
        if enabled:
            shutdown_tracing()


def _sampler() -> Sampler:
    """`OTEL_TRACES_SAMPLER`'s sampler (the SDK reads it), except that a client span with
    no parent starts no trace: those are pollers (the outbox relay's scan, the gateway's
    revocation poll every second), not work anyone asked for, and would bury the traces
    that are. Requests, messages and publishes still start traces."""
    from opentelemetry.sdk.trace import sampling

    configured = sampling._get_from_env_or_default()  # what TracerProvider() itself would use

    class NoPollerRoots(sampling.Sampler):
        def should_sample(
            self,
            parent_context: Context | None,
            trace_id: int,
            name: str,
            kind: SpanKind | None = None,
            attributes: Attributes = None,
            links: Sequence[Link] | None = None,
            trace_state: TraceState | None = None,
        ) -> sampling.SamplingResult:
            if (
                kind is SpanKind.CLIENT
                and not trace.get_current_span(parent_context).get_span_context().is_valid
            ):
                return sampling.SamplingResult(sampling.Decision.DROP)
            return configured.should_sample(
                parent_context, trace_id, name, kind, attributes, links, trace_state
            )

        def get_description(self) -> str:
            return f"NoPollerRoots{{{configured.get_description()}}}"

    return NoPollerRoots()


def _request_id_processor() -> SpanProcessor:
    from opentelemetry.sdk.trace import SpanProcessor

    class RequestIdProcessor(SpanProcessor):
        """Puts the request id bound when a span starts (`ocrmesh.platform.request_context`) on it."""

        def on_start(self, span: Span, parent_context: Context | None = None) -> None:
            request_id = current_request_id()
            if request_id:
                span.set_attribute(REQUEST_ID_ATTRIBUTE, request_id)

    return RequestIdProcessor()


# -- instrumentation, installed only when on ---------------------------------------------------


def grpc_server_interceptors() -> list[aio.ServerInterceptor]:
    """The OpenTelemetry server interceptor (health checks left out), or none when off."""
    if _provider is None:
        return []
    from opentelemetry.instrumentation.grpc import aio_server_interceptor  # type: ignore[import-untyped]
    from opentelemetry.instrumentation.grpc.filters import (  # type: ignore[import-untyped]
        health_check,
        negate,
    )

    interceptor: aio.ServerInterceptor = aio_server_interceptor(  # type: ignore[no-untyped-call]
        tracer_provider=_provider, filter_=negate(health_check())
    )
    return [interceptor]


def grpc_client_interceptors() -> list[aio.ClientInterceptor] | None:
    """The OpenTelemetry client interceptors (they send `traceparent`), or None when off."""
    if _provider is None:
        return None
    from opentelemetry.instrumentation.grpc import aio_client_interceptors
    from opentelemetry.instrumentation.grpc.filters import health_check, negate

    interceptors: list[aio.ClientInterceptor] = aio_client_interceptors(  # type: ignore[no-untyped-call]
        tracer_provider=_provider, filter_=negate(health_check())
    )
    return interceptors


def instrument_engines(*engines: Engine) -> None:
    """A span per SQL statement on `engines` when tracing is on (once per process: the
    instrumentor is a singleton). The statement text only, never its bound parameters."""
    global _sqlalchemy_instrumented
    if _provider is None:
        return
    from opentelemetry.instrumentation.sqlalchemy import (  # type: ignore[import-untyped]
        SQLAlchemyInstrumentor,
    )

    SQLAlchemyInstrumentor().instrument(
        tracer_provider=_provider,
        engines=list(engines),
        enable_commenter=False,
        # It declares SQLAlchemy < 2.1 and refuses 2.1 outright; the engine events it hooks
        # are unchanged in 2.1 (tests/e2e/test_tracing.py sees the statements' spans).
        skip_dep_check=True,
    )
    _sqlalchemy_instrumented = True


def instrument_fastapi(app: FastAPI) -> None:
    """The OpenTelemetry ASGI middleware on `app` when tracing is on; nothing otherwise.
    No headers are recorded (no Authorization), nor a span per body chunk."""
    if _provider is None:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=_provider,
        excluded_urls=GATEWAY_EXCLUDED_URLS,
        exclude_spans=["receive", "send"],
    )


# -- spans of our own --------------------------------------------------------------------------


def span(
    name: str,
    attributes: Mapping[str, str | int | float | bool] | None = None,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
) -> contextlib.AbstractContextManager[Any]:
    """A child span of the current one for a block (a null context when off). Attributes
    must never hold a secret, a token, a code, an email address or image bytes."""
    if _provider is None:
        return contextlib.nullcontext()
    return _our_span(name, None, kind, attributes)


@contextlib.contextmanager
def _our_span(
    name: str,
    parent: Context | None,
    kind: SpanKind,
    attributes: Mapping[str, str | int | float | bool] | None,
) -> Iterator[trace.Span]:
    # A failure is marked with its exception's type only: messages can quote user data
    # (an SMTP refusal names the recipient).
    with _tracer.start_as_current_span(
        name,
        context=parent,
        kind=kind,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as current:
        try:
            yield current
        except BaseException as exc:
            current.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise


def record_span(
    name: str, started_ns: int, attributes: Mapping[str, str | int | float] | None = None
) -> None:
    """A finished child span from `started_ns` (`time.time_ns()`) to now: for a wait that
    is over by the time we know it was one (a queue)."""
    if _provider is None:
        return
    _tracer.start_span(name, start_time=started_ns, attributes=attributes).end()


def now_ns() -> int:
    """The clock spans use (`record_span`'s start)."""
    return time.time_ns()


def set_user_id(user_id: str) -> None:
    """The user a request acts for, on the current span (`enduser.id`: the id, never an address)."""
    if _provider is not None and user_id:
        trace.get_current_span().set_attribute(USER_ID_ATTRIBUTE, user_id)


def tag_request_id(request_id: str) -> None:
    """The request id on the current span (for spans started before the id was bound)."""
    if _provider is not None:
        trace.get_current_span().set_attribute(REQUEST_ID_ATTRIBUTE, request_id)


def current_carrier() -> dict[str, str]:
    """The current trace context as W3C headers (`traceparent`, `tracestate`), to travel
    with a message or be stored with an outbox row; empty when off or outside a trace."""
    if _provider is None:
        return {}
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return {key: carrier[key] for key in _CARRIER_KEYS if key in carrier}


def clean_carrier(headers: Mapping[str, Any] | None) -> dict[str, str]:
    """The trace headers of `headers` (a message's, a stored row's), bounded; others dropped."""
    if not headers:
        return {}
    found: dict[str, str] = {}
    for key in _CARRIER_KEYS:
        value = headers.get(key)
        if isinstance(value, bytes):
            value = value.decode("ascii", errors="replace")
        if isinstance(value, str) and 0 < len(value) <= _MAX_CARRIER_VALUE:
            found[key] = value
    return found


@contextlib.contextmanager
def continued_span(
    name: str,
    carrier: Mapping[str, Any] | None,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, str | int | float | bool] | None = None,
) -> Iterator[None]:
    """A span that continues the trace of `carrier` (W3C headers from a message or a stored
    row; a new trace without one), current for the block. Nothing when off."""
    if _provider is None:
        yield
        return
    with _our_span(name, propagate.extract(clean_carrier(carrier)), kind, attributes):
        yield


def current_context() -> Context | None:
    """The current OpenTelemetry context, to resume later in another task (None when off)."""
    return otel_context.get_current() if _provider is not None else None


@contextlib.contextmanager
def resumed(context: Context | None) -> Iterator[None]:
    """Make `context` (from `current_context()`) current for the block."""
    if context is None:
        yield
        return
    token = otel_context.attach(context)
    try:
        yield
    finally:
        otel_context.detach(token)


def log_fields() -> dict[str, str]:
    """`trace_id` and `span_id` of the current span for a log line (empty outside a trace)."""
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return {}
    return {
        "trace_id": format(span_context.trace_id, "032x"),
        "span_id": format(span_context.span_id, "016x"),
    }


__all__ = [
    "GATEWAY_EXCLUDED_URLS",
    "REQUEST_ID_ATTRIBUTE",
    "USER_ID_ATTRIBUTE",
    "Context",
    "SpanKind",
    "TracingConfigError",
    "clean_carrier",
    "configure_tracing",
    "continued_span",
    "current_carrier",
    "current_context",
    "grpc_client_interceptors",
    "grpc_server_interceptors",
    "instrument_engines",
    "instrument_fastapi",
    "log_fields",
    "now_ns",
    "record_span",
    "resumed",
    "set_user_id",
    "shutdown_tracing",
    "span",
    "tag_request_id",
    "tracing",
    "tracing_enabled",
    "tracing_requested",
]
