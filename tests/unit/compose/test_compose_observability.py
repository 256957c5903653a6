"""docker-compose.yml's observability: Prometheus scrapes each service where it serves its
metrics, Grafana shows the dashboard to viewers only, and tracing is off until .env names an
OTLP endpoint, then on in every service."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from harness.deployment import (
    APP_SERVICES,
    COMPOSE_FILE,
    AppService,
    compose_env,
    environment,
    load_compose,
    mounts,
    services,
)
from ocrmesh.platform import telemetry
from tests.unit.compose.service_kinds import APP_IDS

# What docker-compose.yml passes to each service from .env (x-tracing-env).
TRACING_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG")


# ---- metrics


def test_prometheus_reads_the_compose_scrape_config_and_rules_read_only(
    svc: dict[str, dict[str, Any]],
) -> None:
    prometheus = svc["prometheus"]
    config = next(arg for arg in prometheus["command"] if arg.startswith("--config.file="))
    binds = {m.target: m for m in mounts(prometheus)}
    deploy = binds["/etc/prometheus"]
    assert deploy.source == "./deploy/prometheus"
    assert deploy.read_only
    assert config == "--config.file=/etc/prometheus/prometheus.compose.yml"
    assert (COMPOSE_FILE.parent / "deploy" / "prometheus" / "prometheus.compose.yml").is_file()


def test_each_service_serves_metrics_where_the_compose_scrape_config_looks(
    svc: dict[str, dict[str, Any]],
) -> None:
    scrape = yaml.safe_load(
        (COMPOSE_FILE.parent / "deploy" / "prometheus" / "prometheus.compose.yml").read_text()
    )
    targets = {job["job_name"]: job["static_configs"][0]["targets"][0] for job in scrape["scrape_configs"]}
    expected = {
        "auth_svc": ("auth", "AUTH_METRICS_PORT"),
        "ocr_svc": ("ocr", "OCR_METRICS_PORT"),
        "notifier": ("notifier", "NOTIFIER_METRICS_PORT"),
    }
    for job, (service, variable) in expected.items():
        assert targets[job] == f"{service}:{environment(svc[service])[variable]}"
    assert targets["gateway"] == f"gateway:{environment(svc['gateway'])['GATEWAY_PORT']}"
    # Scraped over the compose network: never the container's loopback.
    assert environment(svc["notifier"])["NOTIFIER_METRICS_HOST"] == "0.0.0.0"
    assert environment(svc["auth"])["AUTH_HOST"] == environment(svc["ocr"])["OCR_HOST"] == "0.0.0.0"


def test_grafana_is_provisioned_with_the_dashboard_and_only_lets_viewers_in(
    svc: dict[str, dict[str, Any]],
) -> None:
    grafana = svc["grafana"]
    binds = {m.target: m for m in mounts(grafana)}
    assert all(m.read_only for m in binds.values())
    for mount in binds.values():
        assert (COMPOSE_FILE.parent / mount.source).is_dir(), mount.source
    env = environment(grafana)
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    assert env["GF_AUTH_DISABLE_LOGIN_FORM"] == "true"


# ---- tracing


@pytest.mark.parametrize("app", APP_SERVICES, ids=APP_IDS)
def test_tracing_is_off_until_env_names_an_otlp_endpoint_then_on_in_every_service(
    app: AppService, monkeypatch: pytest.MonkeyPatch
) -> None:
    off = environment(services(load_compose(compose_env()))[app.name])
    assert {name for name in off if name.startswith("OTEL_")} == set(TRACING_VARIABLES)
    assert not telemetry.tracing_requested(off)

    endpoint = "http://jaeger:4318"
    with_endpoint = {**compose_env(), "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint}
    on = environment(services(load_compose(with_endpoint))[app.name])
    assert on["OTEL_EXPORTER_OTLP_ENDPOINT"] == endpoint
    # Started the way the service starts it (the SDK reads the sampler from the process
    # environment); a value this build cannot serve would stop it with exit code 2.
    for name in TRACING_VARIABLES:
        monkeypatch.setenv(name, on[name])
    try:
        assert telemetry.configure_tracing(app.module)
        provider = telemetry.tracer_provider()
        assert provider is not None
        assert "TraceIdRatioBased{1.0}" in provider.sampler.get_description()
    finally:
        telemetry.shutdown_tracing()
