"""Spans of our own (a block, a wait already over), what we set on the current span (the
request id, the user), and the trace fields of a log line. When tracing is off each of these
is a null context or does nothing."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode

from ocrmesh.platform.telemetry.attributes import REQUEST_ID_ATTRIBUTE, USER_ID_ATTRIBUTE
from ocrmesh.platform.telemetry.configuration import active_tracer, tracing_enabled


def span(
    name: str,
    attributes: Mapping[str, str | int | float | bool] | None = None,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
) -> contextlib.AbstractContextManager[Any]:
    """A child span of the current one for a block (a null context when off). Attributes
    must never hold a secret, a token, a code, an email address or image bytes."""
    if not tracing_enabled():
        return contextlib.nullcontext()
    return started_span(name, None, kind, attributes)


@contextlib.contextmanager
def started_span(
    name: str,
    parent: Context | None,
    kind: SpanKind,
    attributes: Mapping[str, str | int | float | bool] | None,
) -> Iterator[trace.Span]:
    """A span of ours, current for the block, child of `parent` (None: of the current span).
    Only for when tracing is on; `span` and `continued_span` check."""
    # A failure is marked with its exception's type only: messages can quote user data
    # (an SMTP refusal names the recipient).
    with active_tracer().start_as_current_span(
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
    if not tracing_enabled():
        return
    active_tracer().start_span(name, start_time=started_ns, attributes=attributes).end()


def now_ns() -> int:
    """The clock spans use (`record_span`'s start)."""
    return time.time_ns()


def set_user_id(user_id: str) -> None:
    """The user a request acts for, on the current span (`enduser.id`: the id, never an address)."""
    if tracing_enabled() and user_id:
        trace.get_current_span().set_attribute(USER_ID_ATTRIBUTE, user_id)


def tag_request_id(request_id: str) -> None:
    """The request id on the current span (for spans started before the id was bound)."""
    if tracing_enabled():
        trace.get_current_span().set_attribute(REQUEST_ID_ATTRIBUTE, request_id)


def log_fields() -> dict[str, str]:
    """`trace_id` and `span_id` of the current span for a log line (empty outside a trace)."""
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return {}
    return {
        "trace_id": format(span_context.trace_id, "032x"),
        "span_id": format(span_context.span_id, "016x"),
    }


__all__ = ["log_fields", "now_ns", "record_span", "set_user_id", "span", "started_span", "tag_request_id"]
