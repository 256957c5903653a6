"""OpenTelemetry tracing for every service, off unless the standard `OTEL_*` variables ask.

- `configuration`: on or off from the environment, the exporters and the sampler, the
  tracer provider and its shutdown (`configure_tracing`, `shutdown_tracing`, `tracing`).
- `instrumentation`: the libraries' own instrumentations, gRPC server and client,
  SQLAlchemy engines, a FastAPI app; they carry the W3C `traceparent`/`tracestate` in gRPC
  metadata and HTTP headers.
- `propagation`: the trace context where no instrumentation carries it, in a message's
  AMQP headers and a stored (outbox) row (`current_carrier`, `continued_span`), and into
  another task (`current_context`, `resumed`).
- `spans`: spans of our own, the request id and user on the current span, and the trace
  fields of a log line; `attributes`: the names of what we set on spans.

Off, nothing is installed: no gRPC interceptor, no ASGI middleware, no SQLAlchemy event
hook, no log field; the helpers return empty lists and null contexts. Import the names
from here; the modules are how the package is cut, not separate interfaces.
"""

from __future__ import annotations

from opentelemetry.context import Context
from opentelemetry.trace import SpanKind

from ocrmesh.platform.telemetry.attributes import REQUEST_ID_ATTRIBUTE, USER_ID_ATTRIBUTE
from ocrmesh.platform.telemetry.configuration import (
    TracingConfigError,
    configure_tracing,
    shutdown_tracing,
    tracer_provider,
    tracing,
    tracing_enabled,
    tracing_requested,
)
from ocrmesh.platform.telemetry.instrumentation import (
    grpc_client_interceptors,
    grpc_server_interceptors,
    instrument_engines,
    instrument_fastapi,
)
from ocrmesh.platform.telemetry.propagation import (
    clean_carrier,
    continued_span,
    current_carrier,
    current_context,
    resumed,
)
from ocrmesh.platform.telemetry.spans import (
    log_fields,
    now_ns,
    record_span,
    set_user_id,
    span,
    tag_request_id,
)

__all__ = [
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
    "tracer_provider",
    "tracing",
    "tracing_enabled",
    "tracing_requested",
]
