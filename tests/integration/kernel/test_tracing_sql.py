"""SQL statement spans (tracing on): the statement text, never its bound parameters, on a
real PostgreSQL; and instrumenting again after a shutdown still records."""

from __future__ import annotations

import json

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import create_engine, text

from ocrmesh.platform import telemetry

pytestmark = pytest.mark.integration


def traced_statements(postgres_admin_url: str, secret: str) -> list[dict[str, object]]:
    exporter = InMemorySpanExporter()
    telemetry.configure_tracing("test_svc", {}, exporter=exporter)
    engine = create_engine(postgres_admin_url, pool_size=1)
    try:
        telemetry.instrument_engines(engine)
        with telemetry.span("request"), engine.connect() as connection:
            assert connection.execute(text("SELECT :word AS word"), {"word": secret}).scalar() == secret
        provider = telemetry.tracer_provider()
        assert provider is not None
        provider.force_flush()
    finally:
        telemetry.shutdown_tracing()
        engine.dispose()
    return [dict(s.attributes or {}) for s in exporter.get_finished_spans() if s.name != "request"]


@pytest.mark.parametrize("cycle", [1, 2])
def test_statement_spans_hold_the_sql_never_its_parameters(postgres_admin_url: str, cycle: int) -> None:
    secret = f"hunter2-password-{cycle}"
    spans = traced_statements(postgres_admin_url, secret)
    statements = [s["db.statement"] for s in spans if "db.statement" in s]
    assert statements == ["SELECT %(word)s AS word"]
    assert secret not in json.dumps(spans)
