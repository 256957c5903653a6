"""deploy/k8s sizes each pod for what its service runs: one process per pod (replicas
scale), OCR workers within the CPU limit, and longer than the graceful shutdown before a pod
is killed."""

from __future__ import annotations

import pytest

from harness.deployment import APP_SERVICES, AppService
from harness.k8s import Rendered, pod_spec
from tests.unit.deploy.app_workloads import APP, APP_IDS, RENDERINGS, container_of, settings_of


@pytest.mark.parametrize("name", RENDERINGS)
@pytest.mark.parametrize("app", APP_SERVICES, ids=APP_IDS)
def test_pods_get_longer_than_the_graceful_shutdown_before_they_are_killed(
    app: AppService, name: str, rendered: dict[str, Rendered], monkeypatch: pytest.MonkeyPatch
) -> None:
    grace = settings_of(rendered[name], app, monkeypatch).shutdown_grace_seconds
    # ocr_svc drains its server, then its engine workers: up to twice the grace.
    assert pod_spec(rendered[name].deployment(app))["terminationGracePeriodSeconds"] > 2 * grace


@pytest.mark.parametrize("name", RENDERINGS)
def test_ocr_workers_fit_the_cpu_limit(
    name: str, rendered: dict[str, Rendered], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_of(rendered[name], APP["ocr"], monkeypatch)
    limit = float(container_of(rendered[name], APP["ocr"])["resources"]["limits"]["cpu"])
    # The defaults count the node's cores; inside a CPU limit more threads only queue.
    assert settings.ocr_processes == 1
    assert settings.ocr_workers * max(settings.ocr_engine_threads, 1) <= limit


@pytest.mark.parametrize("name", RENDERINGS)
def test_each_pod_runs_one_process_and_scales_by_replicas(
    name: str, rendered: dict[str, Rendered], monkeypatch: pytest.MonkeyPatch
) -> None:
    # 0 (one per core) would count the node's cores, not the pod's CPU limit.
    assert settings_of(rendered[name], APP["auth"], monkeypatch).auth_processes == 1
    assert settings_of(rendered[name], APP["gateway"], monkeypatch).gateway_workers == 1
