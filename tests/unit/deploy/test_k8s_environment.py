"""deploy/k8s's environment held against the settings classes: every variable one its
service reads, values each service accepts, tracing from one optional ConfigMap, and no
default left pointing at the pod itself."""

from __future__ import annotations

import pytest

from harness.deployment import APP_SERVICES, AppService
from harness.k8s import DEPLOYMENTS, Rendered
from ocrmesh.platform import telemetry
from tests.unit.deploy.app_workloads import APP_IDS, RENDERINGS, container_of, settings_of

# Variables a container may be given that no settings class reads, and who reads them.
EXTERNAL_VARIABLES = {
    "MALLOC_ARENA_MAX": "glibc (docs/ocr.md: memory under load)",
    "PYTHONUNBUFFERED": "Python",
}
EXTERNAL_PREFIXES = ("OTEL_",)  # the OpenTelemetry SDK
# The operator's ConfigMap of OTEL_* variables (docs/kubernetes.md, "Tracing").
TRACING_CONFIG_MAP = "ocrmesh-tracing"


def known_variables(app: AppService) -> set[str]:
    return {name.upper() for name in app.settings.model_fields}


@pytest.mark.parametrize("name", RENDERINGS)
@pytest.mark.parametrize("app", APP_SERVICES, ids=APP_IDS)
def test_every_variable_a_container_gets_is_one_its_service_reads(
    app: AppService, name: str, rendered: dict[str, Rendered]
) -> None:
    # The settings ignore unknown names, so a misspelt one would be silently dropped.
    given = rendered[name].env_names(container_of(rendered[name], app))
    known = known_variables(app) | set(EXTERNAL_VARIABLES)
    unknown = {n for n in given - known if not n.startswith(EXTERNAL_PREFIXES)}
    assert not unknown, f"{name}: {DEPLOYMENTS[app.name]} is given {sorted(unknown)}, which it does not read"


@pytest.mark.parametrize("name", RENDERINGS)
def test_every_service_takes_tracing_from_one_optional_config_map_the_operator_creates(
    name: str, rendered: dict[str, Rendered]
) -> None:
    for app in APP_SERVICES:
        container = container_of(rendered[name], app)
        refs = [s["configMapRef"] for s in container.get("envFrom") or [] if "configMapRef" in s]
        assert {"name": TRACING_CONFIG_MAP, "optional": True} in refs, app.name
    # Not part of the rendering (docs/kubernetes.md says how to create it): without it every
    # pod starts, with tracing off.
    assert TRACING_CONFIG_MAP not in {obj["metadata"]["name"] for obj in rendered[name].of_kind("ConfigMap")}
    for app in APP_SERVICES:
        assert not telemetry.tracing_requested(rendered[name].environment(container_of(rendered[name], app)))


@pytest.mark.parametrize("name", RENDERINGS)
@pytest.mark.parametrize("app", APP_SERVICES, ids=APP_IDS)
def test_each_service_accepts_its_kubernetes_environment(
    app: AppService, name: str, rendered: dict[str, Rendered], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = rendered[name].environment(container_of(rendered[name], app))
    required = {n.upper() for n, field in app.settings.model_fields.items() if field.is_required()}
    assert required <= set(env), f"{app.name} needs {sorted(required - set(env))}"
    # Types, ranges and cross-field rules (production needs a key file, SMTP user and password
    # together and encrypted) pass with exactly what the pod gets.
    settings_of(rendered[name], app, monkeypatch)


@pytest.mark.parametrize("name", RENDERINGS)
@pytest.mark.parametrize("app", APP_SERVICES, ids=APP_IDS)
def test_no_service_keeps_a_default_that_points_at_itself(
    app: AppService, name: str, rendered: dict[str, Rendered]
) -> None:
    env = rendered[name].environment(container_of(rendered[name], app))
    local = {
        n.upper()
        for n, field in app.settings.model_fields.items()
        if isinstance(field.default, str) and ("127.0.0.1" in field.default or "localhost" in field.default)
    }
    # DATABASE_URL and RABBITMQ_URL come from Secrets (sample values in base and prod).
    assert local <= set(env), f"{app.name} would call its own pod: set {sorted(local - set(env))}"
    for variable in local:
        if variable.endswith("_HOST"):
            assert env[variable] == "0.0.0.0", (
                f"{variable}: kubelet probes and clients come over the pod network"
            )
        else:
            assert "127.0.0.1" not in env[variable], variable
            assert "localhost" not in env[variable], variable
