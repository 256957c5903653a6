"""Tracing on or off for this process, from the standard `OTEL_*` variables.

On when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) or
`OTEL_TRACES_EXPORTER` is set and `OTEL_SDK_DISABLED` is not `true`. Then the process has
the SDK's tracer provider (sampler from `OTEL_TRACES_SAMPLER`, service name from
`OTEL_SERVICE_NAME` or the service's own), a batch span processor (`OTEL_BSP_*`) and the
OTLP/HTTP exporter (`OTEL_EXPORTER_OTLP_*`), or the console one.

Configure in the process that serves (after a fork, in the child: the batch processor's
thread does not survive a fork) and call `shutdown_tracing()` on the way out so the last
spans are sent. The provider lives here; the other modules of the package ask for it
(`tracer_provider()`, `active_tracer()`) and do nothing while it is None.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind

from ocrmesh.platform.request_context import current_request_id
from ocrmesh.platform.telemetry.attributes import REQUEST_ID_ATTRIBUTE

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import Span, SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.sdk.trace.sampling import Sampler
    from opentelemetry.trace import Link
    from opentelemetry.trace.span import TraceState
    from opentelemetry.util.types import Attributes

log = logging.getLogger(__name__)

_EXPORTERS = frozenset({"otlp", "console"})

_provider: TracerProvider | None = None
_tracer: trace.Tracer = trace.NoOpTracer()
# What `shutdown_tracing` undoes before the provider goes (instrumentations bound to it).
_shutdown_hooks: list[Callable[[], None]] = []


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


def tracer_provider() -> TracerProvider | None:
    """The SDK tracer provider this process traces with, or None when tracing is off."""
    return _provider


def active_tracer() -> trace.Tracer:
    """The tracer of ocrmesh's own spans (a no-op one when tracing is off)."""
    return _tracer


def on_shutdown(hook: Callable[[], None]) -> None:
    """Run `hook` once when tracing shuts down, before the last spans are flushed: for an
    instrumentation that must not outlive the provider it was given."""
    _shutdown_hooks.append(hook)


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
    global _provider, _tracer
    provider, _provider = _provider, None
    _tracer = trace.NoOpTracer()
    if provider is None:
        return
    hooks = list(_shutdown_hooks)
    _shutdown_hooks.clear()
    for hook in hooks:
        hook()
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
    no parent starts no trace: those are pollers (a relay scanning a table, a client
    refreshing a list every second), not work anyone asked for, and would bury the traces
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


__all__ = [
    "TracingConfigError",
    "active_tracer",
    "configure_tracing",
    "on_shutdown",
    "shutdown_tracing",
    "tracer_provider",
    "tracing",
    "tracing_enabled",
    "tracing_requested",
]
