"""docker-compose.yml starts and stops the mesh in order: healthchecks with the probe each
kind of service needs, restarts, one-shots that run once, each service waiting until what it
calls is healthy, and a stop that waits longer than the graceful shutdown."""

from __future__ import annotations

from typing import Any

import pytest

from harness.deployment import (
    APP_SERVICES,
    AppService,
    depends_on,
    environment,
    healthcheck_argv,
    host_of,
    seconds,
    settings_from,
)
from tests.unit.compose.service_kinds import APP_IDS, INFRASTRUCTURE, OBSERVABILITY, ONE_SHOTS

# What each service calls, as the issue lists it.
CALLS = {
    "gateway": {"auth", "ocr"},
    "auth": {"postgres", "rabbitmq"},
    "ocr": {"rabbitmq", "auth"},
    "notifier": {"rabbitmq", "mailpit"},
}


@pytest.mark.parametrize("name", [*APP_IDS, *INFRASTRUCTURE, *OBSERVABILITY])
def test_every_long_running_service_has_a_healthcheck_and_restarts(
    name: str, svc: dict[str, dict[str, Any]]
) -> None:
    assert healthcheck_argv(svc[name]), f"{name} has no healthcheck"
    check = svc[name]["healthcheck"]
    assert seconds(check["timeout"]) <= seconds(check["interval"])
    assert svc[name]["restart"] == "unless-stopped"


def test_healthchecks_use_the_probe_each_kind_of_service_needs(svc: dict[str, dict[str, Any]]) -> None:
    for name in ("auth", "ocr"):
        assert healthcheck_argv(svc[name])[:3] == ["python", "-m", "ocrmesh.platform.health_probe"]
    assert healthcheck_argv(svc["notifier"]) == ["python", "-m", "notifier", "healthcheck"]
    assert "/healthz" in healthcheck_argv(svc["gateway"])[-1]
    assert healthcheck_argv(svc["postgres"])[0] == "pg_isready"
    assert healthcheck_argv(svc["rabbitmq"])[0] == "rabbitmq-diagnostics"
    assert healthcheck_argv(svc["rabbitmq"])[-1] == "ping"
    assert healthcheck_argv(svc["mailpit"]) == ["/mailpit", "readyz"]


def test_one_shots_run_once(svc: dict[str, dict[str, Any]]) -> None:
    for name in ONE_SHOTS:
        assert svc[name]["restart"] == "no"
        assert not healthcheck_argv(svc[name])


@pytest.mark.parametrize("name", list(CALLS))
def test_each_service_waits_until_what_it_calls_is_healthy(name: str, svc: dict[str, dict[str, Any]]) -> None:
    deps = depends_on(svc[name])
    for callee in CALLS[name]:
        assert deps.get(callee) == "service_healthy", f"{name} must wait for {callee}"
    # And the list above is complete: every compose service its settings point at is waited for.
    called = {host_of(value) or "" for value in environment(svc[name]).values()} & set(svc)
    assert called <= set(deps), f"{name} calls {sorted(called - set(deps))} without waiting for it"


def test_dependency_conditions_are_ones_the_dependency_can_reach(svc: dict[str, dict[str, Any]]) -> None:
    for name, service in svc.items():
        for dependency, condition in depends_on(service).items():
            assert dependency in svc, f"{name} depends on unknown {dependency}"
            if condition == "service_healthy":
                assert healthcheck_argv(svc[dependency]), f"{dependency} has no healthcheck"
            else:
                assert condition == "service_completed_successfully"
                assert dependency in ONE_SHOTS


@pytest.mark.parametrize("app", APP_SERVICES, ids=APP_IDS)
def test_docker_waits_longer_than_the_graceful_shutdown(
    app: AppService, svc: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_from(app, environment(svc[app.name]), monkeypatch)
    grace = settings.shutdown_grace_seconds  # type: ignore[attr-defined]
    # ocr_svc drains its server, then its engine workers: up to twice the grace.
    assert seconds(svc[app.name]["stop_grace_period"]) > 2 * grace
