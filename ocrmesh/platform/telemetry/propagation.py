"""The trace context where no instrumentation carries it: with a message (AMQP headers) or a
stored row (an outbox), as W3C `traceparent`/`tracestate`, and into another task of this
process. Off, the carriers are empty and the contexts null."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind

from ocrmesh.platform.telemetry.configuration import tracing_enabled
from ocrmesh.platform.telemetry.spans import started_span

# Carrier keys of the W3C propagator; nothing else is accepted from a stored or received
# carrier (a message's other headers, a database row, are not ours to read as context).
_CARRIER_KEYS = ("traceparent", "tracestate")
_MAX_CARRIER_VALUE = 512


def current_carrier() -> dict[str, str]:
    """The current trace context as W3C headers (`traceparent`, `tracestate`), to travel
    with a message or be stored with an outbox row; empty when off or outside a trace."""
    if not tracing_enabled():
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
    if not tracing_enabled():
        yield
        return
    with started_span(name, propagate.extract(clean_carrier(carrier)), kind, attributes):
        yield


def current_context() -> Context | None:
    """The current OpenTelemetry context, to resume later in another task (None when off)."""
    return otel_context.get_current() if tracing_enabled() else None


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


__all__ = ["clean_carrier", "continued_span", "current_carrier", "current_context", "resumed"]
