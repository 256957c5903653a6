"""deploy/prometheus held against promtool and the code: both scrape configs and the alert
rules are valid (`promtool check`), the alerts fire when they should (`promtool test
rules`), the targets are the ports the services serve metrics on, and every metric an alert
or the dashboard asks for is one the code defines."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

import auth_svc.metrics
import gateway.metrics
import notifier.metrics
import ocr_svc.metrics
import ocrmesh.platform.metrics
import ocrmesh.rules.email_events.metrics
import ocrmesh.rules.tokens.metrics
from auth_svc.settings import AuthSettings
from gateway.settings import GatewaySettings
from harness.prometheus import DEPLOY, PROMTOOL
from notifier.settings import NotifierSettings
from ocr_svc.settings import OcrSettings

ROOT = DEPLOY.parents[1]
CONFIGS = [DEPLOY / "prometheus.yml", DEPLOY / "prometheus.compose.yml"]
RULES = DEPLOY / "rules" / "ocrmesh.rules.yml"
RULES_TEST = DEPLOY / "rules" / "ocrmesh.rules.test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "ocrmesh.json"
# The ports `make up-observed`, compose and deploy/k8s give the metrics servers.
METRICS_PORTS = {"auth_svc": 9101, "ocr_svc": 9102, "notifier": 9103}
COMPOSE_HOSTS = {"gateway": "gateway", "auth_svc": "auth", "ocr_svc": "ocr", "notifier": "notifier"}

needs_promtool = pytest.mark.skipif(
    not Path(PROMTOOL).exists(),
    reason="Debian's promtool is missing (scripts/debian_tools.py test installs the prometheus package)",
)


def promtool(*args: str, cwd: Path = DEPLOY) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


def jobs(config: Path) -> dict[str, list[str]]:
    loaded = yaml.safe_load(config.read_text())
    return {
        job["job_name"]: [target for static in job["static_configs"] for target in static["targets"]]
        for job in loaded["scrape_configs"]
    }


def defined_metric_names() -> set[str]:
    """Every series name the code can expose (histograms' and counters' suffixes included)."""
    names: set[str] = set()
    for module in (
        ocrmesh.platform.metrics,
        ocrmesh.rules.email_events.metrics,
        ocrmesh.rules.tokens.metrics,
        auth_svc.metrics,
        ocr_svc.metrics,
        gateway.metrics,
        notifier.metrics,
    ):
        for metric in vars(module).values():
            if not isinstance(metric, MetricWrapperBase):
                continue
            base = metric._name
            names |= {base, f"{base}_total", f"{base}_bucket", f"{base}_sum", f"{base}_count"}
    return names | {"up", "ALERTS"}


PROMQL_WORDS = {
    *("sum", "max", "min", "avg", "count", "rate", "increase", "histogram_quantile", "vector"),
    *("or", "and", "unless", "bool", "by", "without", "on", "ignoring", "group_left", "group_right"),
}


def metric_names_in(expression: str) -> set[str]:
    """The metric names a PromQL expression reads (strings, label matchers, ranges and
    grouping labels removed; functions and keywords skipped)."""
    text = re.sub(r'"[^"]*"', "", expression)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", text)
    return set(re.findall(r"\b[a-zA-Z_:][a-zA-Z0-9_:]*", text)) - PROMQL_WORDS


def alert_rules() -> list[dict[str, Any]]:
    loaded = yaml.safe_load(RULES.read_text())
    return [rule for group in loaded["groups"] for rule in group["rules"]]


@needs_promtool
@pytest.mark.parametrize("config", CONFIGS, ids=[c.name for c in CONFIGS])
def test_promtool_accepts_the_scrape_config(config: Path) -> None:
    done = promtool("check", "config", config.name)
    assert done.returncode == 0, done.stdout + done.stderr


@needs_promtool
def test_promtool_accepts_the_alert_rules() -> None:
    done = promtool("check", "rules", str(RULES.relative_to(DEPLOY)))
    assert done.returncode == 0, done.stdout + done.stderr


@needs_promtool
def test_each_alert_fires_on_the_series_that_should_fire_it_and_not_before() -> None:
    done = promtool("test", "rules", RULES_TEST.name, cwd=RULES_TEST.parent)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_alerts_cover_errors_ocr_saturation_outbox_age_parked_mail_and_a_service_down() -> None:
    rules = {rule["alert"]: rule for rule in alert_rules()}
    assert set(rules) == {
        "OcrmeshServiceDown",
        "OcrmeshHighHttpErrorRatio",
        "OcrmeshHighGrpcErrorRatio",
        "OcrmeshOcrQueueSaturated",
        "OcrmeshOutboxStuck",
        "OcrmeshMailParked",
    }
    for rule in rules.values():
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"]
        assert rule["annotations"]["description"]


def test_every_metric_an_alert_uses_is_one_the_code_defines() -> None:
    defined = defined_metric_names()
    for rule in alert_rules():
        used = metric_names_in(rule["expr"])
        assert used, rule["alert"]
        assert used <= defined, (rule["alert"], used - defined)


def test_the_local_config_scrapes_the_ports_the_services_serve_metrics_on() -> None:
    found = jobs(DEPLOY / "prometheus.yml")
    assert found["gateway"] == [f"127.0.0.1:{GatewaySettings().gateway_port}"]
    for job, port in METRICS_PORTS.items():
        assert found[job] == [f"127.0.0.1:{port}"]


def test_the_compose_config_scrapes_the_same_jobs_by_service_name() -> None:
    local, compose = jobs(DEPLOY / "prometheus.yml"), jobs(DEPLOY / "prometheus.compose.yml")
    assert set(local) == set(compose)
    for job, host in COMPOSE_HOSTS.items():
        port = local[job][0].rsplit(":", 1)[1]
        assert compose[job] == [f"{host}:{port}"]


def test_metrics_ports_are_settings_of_each_service_and_off_by_default() -> None:
    assert AuthSettings().auth_metrics_port is None
    assert OcrSettings().ocr_metrics_port is None
    assert NotifierSettings().notifier_metrics_port is None
    assert "auth_metrics_port" in AuthSettings.model_fields
    assert "ocr_metrics_port" in OcrSettings.model_fields
    assert "notifier_metrics_port" in NotifierSettings.model_fields


@pytest.mark.skipif(not DASHBOARD.exists(), reason="no Grafana dashboard")
def test_every_dashboard_query_asks_for_metrics_the_code_defines() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    assert expressions
    defined = defined_metric_names()
    for expression in expressions:
        used = metric_names_in(expression)
        assert used, expression
        assert used <= defined, (expression, used - defined)


@needs_promtool
@pytest.mark.skipif(not DASHBOARD.exists(), reason="no Grafana dashboard")
def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    # promtool checks PromQL in rule files: each query becomes a recording rule.
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [{"record": f"dashboard:query{i}", "expr": e} for i, e in enumerate(expressions)],
            }
        ]
    }
    (tmp_path / "dashboard.rules.yml").write_text(yaml.safe_dump(rules))
    done = promtool("check", "rules", "dashboard.rules.yml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_up_observed_runs_the_procfile_services_and_prometheus_on_the_local_config() -> None:
    def processes(path: Path) -> dict[str, str]:
        lines = [line for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
        return dict(line.split(": ", 1) for line in lines)

    plain, observed = processes(ROOT / "Procfile"), processes(ROOT / "Procfile.observed")
    assert {name: observed[name] for name in plain} == plain
    assert set(observed) - set(plain) == {"prometheus"}
    command = observed["prometheus"].split()
    assert "--config.file=deploy/prometheus/prometheus.yml" in command
    assert "--storage.tsdb.path=var/prometheus" in command
    # Where the local config's own job scrapes it.
    assert "--web.listen-address=127.0.0.1:9090" in command
    assert jobs(DEPLOY / "prometheus.yml")["prometheus"] == ["127.0.0.1:9090"]
    makefile = (ROOT / "Makefile").read_text()
    for job, port in METRICS_PORTS.items():
        variable = {"auth_svc": "AUTH", "ocr_svc": "OCR", "notifier": "NOTIFIER"}[job]
        assert f"{variable}_METRICS_PORT={port}" in makefile
