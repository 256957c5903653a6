"""deploy/k8s rolls each Deployment without dropping a request (docs/reliability.md): a new
pod before an old one goes, a preStop sleep so a terminating pod keeps serving while the
endpoints, DNS and clients forget it, a grace period that covers that sleep and the
service's own graceful stop, and budgets that never let a voluntary disruption take more than
one pod nor be blocked by a pod that is not ready."""

from __future__ import annotations

from typing import Any

import pytest

from harness.deployment import APP_SERVICES, AppService
from harness.k8s import Rendered, label_selector, pod_labels, pod_spec, selects
from tests.unit.deploy.app_workloads import APP, APP_IDS, RENDERINGS, container_of, settings_of

# Services that clients reach through a Service (the notifier only consumes from RabbitMQ).
SERVED = ("auth", "ocr", "gateway")
GRPC = ("auth", "ocr")
# CoreDNS's default TTL for a Service's records, and grpc's least time between two DNS
# resolutions of one channel (grpc.dns_min_time_between_resolutions_ms, 30 s by default).
DNS_TTL_S = 5
GRPC_DNS_MIN_INTERVAL_S = 30


def _pre_stop_sleep(container: dict[str, Any]) -> int:
    pre_stop = (container.get("lifecycle") or {}).get("preStop") or {}
    return int((pre_stop.get("sleep") or {}).get("seconds", 0))


@pytest.mark.parametrize("name", RENDERINGS)
@pytest.mark.parametrize("app", APP_SERVICES, ids=APP_IDS)
def test_a_rollout_starts_the_new_pod_before_it_stops_an_old_one(
    app: AppService, name: str, rendered: dict[str, Rendered]
) -> None:
    strategy = rendered[name].deployment(app)["spec"]["strategy"]
    assert strategy["type"] == "RollingUpdate"
    assert strategy["rollingUpdate"]["maxUnavailable"] == 0
    assert strategy["rollingUpdate"]["maxSurge"] >= 1


@pytest.mark.parametrize("name", RENDERINGS)
@pytest.mark.parametrize("app", [APP[s] for s in SERVED], ids=list(SERVED))
def test_a_terminating_pod_keeps_serving_until_endpoints_and_dns_have_dropped_it(
    app: AppService, name: str, rendered: dict[str, Rendered]
) -> None:
    sleep = _pre_stop_sleep(container_of(rendered[name], app))
    # Longer than a cached DNS answer lives; short against the grace period.
    assert DNS_TTL_S < sleep <= 15


def test_the_notifier_takes_no_pre_stop_pause_it_serves_no_endpoint(rendered: dict[str, Rendered]) -> None:
    for name in RENDERINGS:
        assert _pre_stop_sleep(container_of(rendered[name], APP["notifier"])) == 0


@pytest.mark.parametrize("name", RENDERINGS)
@pytest.mark.parametrize("app", APP_SERVICES, ids=APP_IDS)
def test_the_grace_period_covers_the_pre_stop_sleep_and_the_graceful_stop(
    app: AppService, name: str, rendered: dict[str, Rendered], monkeypatch: pytest.MonkeyPatch
) -> None:
    grace = settings_of(rendered[name], app, monkeypatch).shutdown_grace_seconds
    period = pod_spec(rendered[name].deployment(app))["terminationGracePeriodSeconds"]
    # The kubelet counts the preStop hook inside the grace period; a supervised service
    # drains its server, then its workers (up to twice the grace).
    assert period > _pre_stop_sleep(container_of(rendered[name], app)) + 2 * grace


@pytest.mark.parametrize("name", RENDERINGS)
@pytest.mark.parametrize("app", [APP[s] for s in GRPC], ids=list(GRPC))
def test_grpc_pods_roll_no_faster_than_clients_re_resolve_dns(
    app: AppService, name: str, rendered: dict[str, Rendered]
) -> None:
    assert rendered[name].deployment(app)["spec"]["minReadySeconds"] >= GRPC_DNS_MIN_INTERVAL_S


@pytest.mark.parametrize("name", RENDERINGS)
def test_disruption_budgets_let_unready_pods_be_evicted(name: str, rendered: dict[str, Rendered]) -> None:
    budgets = rendered[name].of_kind("PodDisruptionBudget")
    covered = set()
    for budget in budgets:
        assert budget["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
        selector = label_selector(budget["spec"]["selector"])
        covered |= {
            w["metadata"]["name"] for w in rendered[name].workloads() if selects(selector, pod_labels(w))
        }
    assert covered == {rendered[name].deployment(app)["metadata"]["name"] for app in APP_SERVICES}


@pytest.mark.parametrize("name", RENDERINGS)
@pytest.mark.parametrize("app", [APP[s] for s in SERVED], ids=list(SERVED))
def test_readiness_is_asked_often_enough_to_drop_a_pod_within_ten_seconds(
    app: AppService, name: str, rendered: dict[str, Rendered]
) -> None:
    probe = container_of(rendered[name], app)["readinessProbe"]
    # A pod whose dependency is gone (auth_svc without PostgreSQL) leaves the endpoints soon.
    assert probe["periodSeconds"] * probe["failureThreshold"] <= 10
