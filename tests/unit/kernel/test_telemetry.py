"""Tracing: off unless OTEL_* asks (and then nothing is installed), and what it records when on,
with the real SDK and its in-memory exporter."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from ocrmesh.notify.v1 import email_pb2
from ocrmesh.platform import telemetry
from ocrmesh.platform.logs import JsonFormatter
from ocrmesh.platform.request_context import reset_request_id, set_request_id
from ocrmesh.rules.email_events import event_properties, new_email_event


@pytest.fixture
def exported() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    assert telemetry.configure_tracing("test_svc", {}, exporter=exporter)
    try:
        yield exporter
    finally:
        telemetry.shutdown_tracing()


def finished(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    provider = telemetry.tracer_provider()
    assert provider is not None
    provider.force_flush()
    return list(exporter.get_finished_spans())


@pytest.mark.parametrize(
    ("env", "requested"),
    [
        ({}, False),
        ({"OTEL_SERVICE_NAME": "gateway"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, False),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, False),
    ],
)
def test_tracing_is_requested_only_by_the_standard_variables(env: dict[str, str], requested: bool) -> None:
    assert telemetry.tracing_requested(env) is requested


def test_without_otel_variables_nothing_is_configured_or_installed() -> None:
    assert telemetry.configure_tracing("test_svc", {}) is False
    assert not telemetry.tracing_enabled()
    assert telemetry.grpc_server_interceptors() == []
    assert telemetry.grpc_client_interceptors() is None
    app = FastAPI()
    before = list(app.user_middleware)
    telemetry.instrument_fastapi(app)
    assert app.user_middleware == before
    assert telemetry.current_carrier() == {}
    with telemetry.span("ocr.decode") as current:
        assert current is None
    assert "trace_id" not in json.loads(_log_line("hello"))


@pytest.mark.parametrize(
    ("env", "complaint"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "zipkin not available"),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
            "http/protobuf",
        ),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"}, "not an http:// or https:// URL"),
    ],
)
def test_a_tracing_configuration_this_build_cannot_serve_stops_with_a_clear_line(
    env: dict[str, str], complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        telemetry.configure_tracing("test_svc", env)
    assert stopped.value.code == 2
    assert complaint in capsys.readouterr().err
    assert not telemetry.tracing_enabled()


def test_when_on_the_grpc_interceptors_are_installed(exported: InMemorySpanExporter) -> None:
    assert len(telemetry.grpc_server_interceptors()) == 1
    assert telemetry.grpc_client_interceptors()


async def test_requests_to_the_urls_an_app_excludes_get_no_span(exported: InMemorySpanExporter) -> None:
    app = FastAPI()

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {}

    @app.get("/work")
    def work() -> dict[str, str]:
        return {}

    telemetry.instrument_fastapi(app, excluded_urls=["/healthz"])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/work")).status_code == 200
    assert {s.name for s in finished(exported) if s.kind is SpanKind.SERVER} == {"GET /work"}


def test_an_excluded_url_pattern_with_a_comma_is_refused() -> None:
    # The instrumentation reads the patterns as one comma-separated list: a comma would split one.
    with pytest.raises(ValueError, match="comma"):
        telemetry.instrument_fastapi(FastAPI(), excluded_urls=["/a,/b"])


def test_an_email_event_carries_the_trace_and_the_consumer_span_joins_it(
    exported: InMemorySpanExporter,
) -> None:
    with telemetry.span("register") as caller:
        properties = event_properties(
            new_email_event(
                to="ada@example.com", subject="s", body="b", kind=email_pb2.EMAIL_KIND_VERIFICATION_CODE
            )
        )
    assert properties.headers is not None
    assert set(properties.headers) == {"traceparent"}
    with (
        telemetry.continued_span("notifier deliver", properties.headers, kind=SpanKind.CONSUMER),
        telemetry.span("mail send"),
    ):
        pass
    spans = {s.name: s for s in finished(exported)}
    trace_id = caller.get_span_context().trace_id
    assert {s.context.trace_id for s in spans.values()} == {trace_id}
    assert spans["notifier deliver"].parent is not None
    assert spans["notifier deliver"].parent.span_id == caller.get_span_context().span_id
    assert spans["mail send"].parent is not None
    assert spans["mail send"].parent.span_id == spans["notifier deliver"].context.span_id


def test_a_carrier_keeps_only_bounded_trace_headers() -> None:
    header = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    assert telemetry.clean_carrier(
        {"traceparent": header.encode(), "x-ocrmesh-attempt": 2, "tracestate": "x" * 600}
    ) == {"traceparent": header}
    assert telemetry.clean_carrier(None) == {}


def test_spans_carry_the_request_id_bound_when_they_start(exported: InMemorySpanExporter) -> None:
    token = set_request_id("req-123")
    try:
        with telemetry.span("work"):
            pass
    finally:
        reset_request_id(token)
    (work,) = finished(exported)
    assert work.attributes is not None
    assert work.attributes[telemetry.REQUEST_ID_ATTRIBUTE] == "req-123"


def test_a_client_call_outside_any_trace_starts_none(exported: InMemorySpanExporter) -> None:
    tracer = trace.get_tracer("poller", tracer_provider=telemetry.tracer_provider())
    with tracer.start_as_current_span("GetRevocations", kind=SpanKind.CLIENT):
        pass
    with (
        tracer.start_as_current_span("request", kind=SpanKind.SERVER),
        tracer.start_as_current_span("SELECT", kind=SpanKind.CLIENT),
    ):
        pass
    assert sorted(s.name for s in finished(exported)) == ["SELECT", "request"]


def test_a_failed_span_names_the_exception_type_not_its_message(exported: InMemorySpanExporter) -> None:
    with pytest.raises(RuntimeError), telemetry.span("mail send"):
        raise RuntimeError("550 mailbox ada@example.com unavailable")
    (failed,) = finished(exported)
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.status.description == "RuntimeError"
    assert not failed.events
    assert "ada@example.com" not in json.dumps(failed.to_json())


def test_log_lines_carry_the_trace_id_when_tracing_is_on(exported: InMemorySpanExporter) -> None:
    with telemetry.span("work") as current:
        line = json.loads(_log_line("inside"))
    assert line["trace_id"] == format(current.get_span_context().trace_id, "032x")
    assert line["span_id"] == format(current.get_span_context().span_id, "016x")
    assert "trace_id" not in json.loads(_log_line("outside"))


def test_a_queue_wait_is_recorded_from_its_start(exported: InMemorySpanExporter) -> None:
    started = telemetry.now_ns()
    with telemetry.span("Recognize"):
        telemetry.record_span("ocr.queue_wait", started)
    spans = {s.name: s for s in finished(exported)}
    wait = spans["ocr.queue_wait"]
    assert wait.start_time == started
    assert wait.parent is not None
    assert wait.parent.span_id == spans["Recognize"].context.span_id


def _log_line(message: str) -> str:
    record = logging.LogRecord("test", logging.INFO, __file__, 1, message, (), None)
    return JsonFormatter("test_svc").format(record)
