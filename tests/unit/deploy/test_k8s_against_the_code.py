"""deploy/k8s held against the code: the Procfile's commands and compose's images, variables
that the settings classes know and accept, ports the servers listen on, probes that ask
what each service really answers, and Services that reach them."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from gateway.routes.health import router as health_router
from harness.deployment import (
    APP_SERVICES,
    AppService,
    compose_env,
    load_compose,
    procfile,
    services,
    settings_from,
)
from harness.k8s import (
    BASE,
    DEPLOYMENTS,
    OVERLAYS,
    Rendered,
    container_ports,
    only_container,
    pod_labels,
    pod_spec,
    selects,
)
from notifier.__main__ import main as notifier_main
from notifier.health import HealthFile
from ocrmesh.auth.v1 import auth_pb2
from ocrmesh.ocr.v1 import ocr_pb2
from ocrmesh.platform import telemetry

RENDERINGS = (BASE, *OVERLAYS)
APP_IDS = [app.name for app in APP_SERVICES]
APP = {app.name: app for app in APP_SERVICES}

# Variables a container may be given that no settings class reads, and who reads them.
EXTERNAL_VARIABLES = {
    "MALLOC_ARENA_MAX": "glibc (docs/ocr.md: memory under load)",
    "PYTHONUNBUFFERED": "Python",
}
EXTERNAL_PREFIXES = ("OTEL_",)  # the OpenTelemetry SDK
# The operator's ConfigMap of OTEL_* variables (docs/kubernetes.md, "Tracing").
TRACING_CONFIG_MAP = "ocrmesh-tracing"
# Where each service is told its metrics port (and the notifier its metrics host).
METRICS_PORT_VARIABLES = {
    "auth": "AUTH_METRICS_PORT",
    "ocr": "OCR_METRICS_PORT",
    "notifier": "NOTIFIER_METRICS_PORT",
}
METRICS_HOST_VARIABLES = {"notifier": "NOTIFIER_METRICS_HOST"}
# The gRPC servers and their settings field for the port, with the service they host.
GRPC_SERVERS = {
    "auth": ("auth_port", auth_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name),
    "ocr": ("ocr_port", ocr_pb2.DESCRIPTOR.services_by_name["OcrService"].full_name),
}


def known_variables(app: AppService) -> set[str]:
    return {name.upper() for name in app.settings.model_fields}


def container_of(rendered: Rendered, app: AppService) -> dict[str, Any]:
    return only_container(rendered.deployment(app))


def settings_of(rendered: Rendered, app: AppService, monkeypatch: pytest.MonkeyPatch) -> Any:
    return settings_from(app, rendered.environment(container_of(rendered, app)), monkeypatch)


# ---- commands and images


@pytest.mark.parametrize("name", RENDERINGS)
@pytest.mark.parametrize("app", APP_SERVICES, ids=APP_IDS)
def test_each_deployment_runs_the_procfile_command(
    app: AppService, name: str, rendered: dict[str, Rendered]
) -> None:
    argv = shlex.split(procfile()[app.name])
    # The Procfile's `exec` only makes its shell step aside; Kubernetes runs the argv itself.
    assert argv[0] == "exec"
    container = container_of(rendered[name], app)
    assert container["command"] == argv[1:]
    assert "args" not in container


@pytest.mark.parametrize("app", APP_SERVICES, ids=APP_IDS)
def test_each_deployment_runs_the_image_compose_builds_for_that_service(
    app: AppService, rendered: dict[str, Rendered]
) -> None:
    compose_image = services(load_compose(compose_env()))[app.name]["image"]
    assert container_of(rendered[BASE], app)["image"] == compose_image
    # dev uses what `docker compose build` made; prod pins a tag in a registry.
    assert container_of(rendered["dev"], app)["image"] == f"{compose_image}:latest"
    prod_image = container_of(rendered["prod"], app)["image"]
    assert re.fullmatch(r"[a-z0-9.-]+/[a-z0-9/_-]+:[\w.-]+", prod_image), prod_image
    assert not prod_image.endswith(":latest")


# ---- environment


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


@pytest.mark.parametrize("name", RENDERINGS)
def test_clients_dial_every_pod_of_a_headless_service_on_the_port_its_server_listens_on(
    name: str, rendered: dict[str, Rendered], monkeypatch: pytest.MonkeyPatch
) -> None:
    r = rendered[name]
    for server, (port_field, _) in GRPC_SERVERS.items():
        port = getattr(settings_of(r, APP[server], monkeypatch), port_field)
        (service,) = [
            s
            for s in r.of_kind("Service")
            if selects(s["spec"]["selector"], pod_labels(r.deployment(APP[server])))
        ]
        # Headless: DNS gives every ready pod, and round_robin spreads the calls over them.
        assert service["spec"].get("clusterIP") == "None"
        assert [p["port"] for p in service["spec"]["ports"]] == [port]
        variable = f"{server.upper()}_ADDR"
        clients = [app for app in APP_SERVICES if variable in r.env_names(container_of(r, app))]
        assert clients, f"nobody calls {server}?"
        for client in clients:
            target = r.environment(container_of(r, client))[variable]
            assert target == f"dns:///{service['metadata']['name']}:{port}", f"{client.name}: {target}"


# ---- ports and Services


@pytest.mark.parametrize("name", RENDERINGS)
def test_container_ports_are_the_ports_the_settings_listen_on(
    name: str, rendered: dict[str, Rendered], monkeypatch: pytest.MonkeyPatch
) -> None:
    r = rendered[name]
    for server, (port_field, _) in GRPC_SERVERS.items():
        settings = settings_of(r, APP[server], monkeypatch)
        assert container_ports(container_of(r, APP[server]))["grpc"] == getattr(settings, port_field)
    gateway = settings_of(r, APP["gateway"], monkeypatch)
    assert container_ports(container_of(r, APP["gateway"])) == {"http": gateway.gateway_port}
    for app_name, variable in METRICS_PORT_VARIABLES.items():
        container = container_of(r, APP[app_name])
        env = r.environment(container)
        assert container_ports(container)["metrics"] == int(env[variable]), app_name


@pytest.mark.parametrize("name", RENDERINGS)
@pytest.mark.parametrize("app", APP_SERVICES, ids=APP_IDS)
def test_prometheus_is_told_where_each_service_serves_its_metrics(
    app: AppService, name: str, rendered: dict[str, Rendered]
) -> None:
    deployment = rendered[name].deployment(app)
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    ports = container_ports(only_container(deployment))
    # The gateway serves /metrics on its HTTP port; the others on a port of their own.
    expected = ports["http"] if app.name == "gateway" else ports["metrics"]
    assert annotations["prometheus.io/port"] == str(expected)
    # And the port listens on the pod network (auth_svc and ocr_svc: their gRPC host, checked above).
    if app.name in METRICS_HOST_VARIABLES:
        env = rendered[name].environment(only_container(deployment))
        assert env[METRICS_HOST_VARIABLES[app.name]] == "0.0.0.0"


@pytest.mark.parametrize("name", RENDERINGS)
def test_every_service_selects_exactly_one_workload_and_targets_its_declared_ports(
    name: str, rendered: dict[str, Rendered]
) -> None:
    r = rendered[name]
    assert r.of_kind("Service")
    for service in r.of_kind("Service"):
        selector = service["spec"]["selector"]
        assert selector, f"{service['metadata']['name']} selects nothing in particular"
        matched = [w for w in r.workloads() if selects(selector, pod_labels(w))]
        assert len(matched) == 1, (
            f"{service['metadata']['name']} selects {[w['metadata']['name'] for w in matched]}"
        )
        (workload,) = matched
        declared = container_ports(only_container(workload))
        for port in service["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            if isinstance(target, str):
                assert target in declared, f"{service['metadata']['name']}: no container port named {target}"
            else:
                assert target in declared.values(), (
                    f"{service['metadata']['name']}: nothing listens on {target}"
                )


def test_only_the_gateway_has_a_service_with_a_virtual_ip(rendered: dict[str, Rendered]) -> None:
    for name in RENDERINGS:
        app_services = {
            s["metadata"]["name"]: s["spec"]
            for s in rendered[name].of_kind("Service")
            if s["metadata"]["name"] in DEPLOYMENTS.values()
        }
        assert set(app_services) == {"auth-svc", "ocr-svc", "gateway"}, "the notifier serves no traffic"
        assert app_services["gateway"].get("clusterIP") != "None"
        assert app_services["gateway"].get("type", "ClusterIP") == "ClusterIP"


# ---- probes and shutdown


@pytest.mark.parametrize("name", RENDERINGS)
def test_grpc_probes_ask_the_servers_port_for_the_health_of_what_it_hosts(
    name: str, rendered: dict[str, Rendered], monkeypatch: pytest.MonkeyPatch
) -> None:
    for server, (port_field, hosted) in GRPC_SERVERS.items():
        container = container_of(rendered[name], APP[server])
        port = getattr(settings_of(rendered[name], APP[server], monkeypatch), port_field)
        probes = {kind: container[kind] for kind in ("startupProbe", "livenessProbe", "readinessProbe")}
        for kind, probe in probes.items():
            assert set(probe) & {"grpc", "exec", "httpGet", "tcpSocket"} == {"grpc"}, f"{server} {kind}"
            assert probe["grpc"]["port"] == port, f"{server} {kind}"
            # "" is the whole server (what the mesh sets alongside each service).
            assert probe["grpc"].get("service", "") in ("", hosted), f"{server} {kind}"
        # Ready means the service itself answers, not just the process.
        assert probes["readinessProbe"]["grpc"]["service"] == hosted


def test_the_ocr_startup_probe_waits_as_long_as_compose_does_for_the_engine(
    rendered: dict[str, Rendered],
) -> None:
    probe = container_of(rendered[BASE], APP["ocr"])["startupProbe"]
    # compose gives ocr_svc a 300 s start period (keras-ocr loads TensorFlow before serving).
    assert probe["periodSeconds"] * probe["failureThreshold"] >= 300


@pytest.mark.parametrize("name", RENDERINGS)
def test_the_gateway_probes_its_liveness_and_readiness_routes(
    name: str, rendered: dict[str, Rendered]
) -> None:
    container = container_of(rendered[name], APP["gateway"])
    routes = {getattr(route, "path", None) for route in health_router.routes}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert {"/healthz", "/readyz"} <= routes


def notifier_probe(rendered: Rendered, kind: str) -> list[str]:
    command: list[str] = container_of(rendered, APP["notifier"])[kind]["exec"]["command"]
    assert command[:4] == ["python", "-m", "notifier", "healthcheck"], command
    return command


@pytest.mark.parametrize("kind", ["livenessProbe", "readinessProbe"])
def test_the_notifier_probes_pass_while_the_consumer_beats_and_fail_when_it_stops(
    kind: str, rendered: dict[str, Rendered], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    command = notifier_probe(rendered["dev"], kind)
    env = rendered["dev"].environment(container_of(rendered["dev"], APP["notifier"]))
    # The probe reads the file the consumer writes: the same variable, here under tmp_path.
    health_file = tmp_path / "notifier.health"
    settings_from(APP["notifier"], {**env, "NOTIFIER_HEALTH_FILE": str(health_file)}, monkeypatch)
    assert notifier_main(command[3:]) == 1, "no health file yet: unhealthy"
    HealthFile(health_file).beat(connected=True)
    assert notifier_main(command[3:]) == 0
    HealthFile(health_file).beat(connected=False, error="broker unreachable")
    # Alive but not consuming: liveness passes (a restart would not help), readiness fails.
    expected = 0 if kind == "livenessProbe" else 1
    assert notifier_main(command[3:]) == expected


@pytest.mark.parametrize("name", RENDERINGS)
def test_the_notifier_health_file_is_on_a_writable_volume(name: str, rendered: dict[str, Rendered]) -> None:
    deployment = rendered[name].deployment(APP["notifier"])
    container = only_container(deployment)
    health_file = Path(rendered[name].environment(container)["NOTIFIER_HEALTH_FILE"])
    assert health_file.is_absolute(), "the probe and the consumer must read the same file"
    volumes = {v["name"]: v for v in pod_spec(deployment)["volumes"]}
    mounts = [m for m in container["volumeMounts"] if health_file.is_relative_to(m["mountPath"])]
    assert len(mounts) == 1
    assert not mounts[0].get("readOnly")
    assert "emptyDir" in volumes[mounts[0]["name"]]


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


@pytest.mark.parametrize("name", RENDERINGS)
def test_auth_svc_reads_its_signing_key_where_the_secret_is_mounted(
    name: str, rendered: dict[str, Rendered], monkeypatch: pytest.MonkeyPatch
) -> None:
    deployment = rendered[name].deployment(APP["auth"])
    container = only_container(deployment)
    settings = settings_of(rendered[name], APP["auth"], monkeypatch)
    assert settings.environment == "production", "production never generates a key of its own"
    key_file = Path(settings.auth_signing_key_file)
    (mount,) = [m for m in container["volumeMounts"] if Path(m["mountPath"]) == key_file.parent]
    assert mount["readOnly"] is True
    (volume,) = [v for v in pod_spec(deployment)["volumes"] if v["name"] == mount["name"]]
    secret = volume["secret"]
    assert secret["secretName"].startswith("ocrmesh-auth-signing-key")
    # Readable by the pod's group only (fsGroup), never by others.
    assert secret["defaultMode"] & 0o007 == 0
    assert (
        pod_spec(deployment)["securityContext"]["fsGroup"]
        == pod_spec(deployment)["securityContext"]["runAsGroup"]
    )
    data = rendered[name].secret_data(secret["secretName"])
    if data is not None:  # dev generates it; prod's is created by the operator
        assert set(data) == {key_file.name}
        assert "PRIVATE KEY" in data[key_file.name]


# ---- each overlay's infrastructure


def test_dev_points_every_url_at_the_infrastructure_it_runs(rendered: dict[str, Rendered]) -> None:
    dev = rendered["dev"]
    service_ports = {
        s["metadata"]["name"]: {p["name"]: p["port"] for p in s["spec"]["ports"]}
        for s in dev.of_kind("Service")
    }
    postgres = dev.environment(only_container(dev.get("StatefulSet", "postgres")))
    rabbitmq = dev.environment(only_container(dev.get("StatefulSet", "rabbitmq")))
    for app in (APP["auth"], APP["notifier"]):
        url = urlsplit(dev.environment(container_of(dev, app))["DATABASE_URL"])
        assert (url.hostname, url.port) == ("postgres", service_ports["postgres"]["postgres"])
        assert url.username == postgres["POSTGRES_USER"]
        assert unquote(url.password or "") == postgres["POSTGRES_PASSWORD"]
        assert url.path.lstrip("/") == postgres["POSTGRES_DB"]
    for app in (APP["auth"], APP["ocr"], APP["notifier"]):
        url = urlsplit(dev.environment(container_of(dev, app))["RABBITMQ_URL"])
        assert (url.hostname, url.port) == ("rabbitmq", service_ports["rabbitmq"]["amqp"])
        assert url.username == rabbitmq["RABBITMQ_DEFAULT_USER"]
        assert unquote(url.password or "") == rabbitmq["RABBITMQ_DEFAULT_PASS"]
    notifier = dev.environment(container_of(dev, APP["notifier"]))
    assert (notifier["SMTP_HOST"], int(notifier["SMTP_PORT"])) == (
        "mailpit",
        service_ports["mailpit"]["smtp"],
    )


def test_prod_runs_no_infrastructure_and_reads_every_url_from_its_secret(
    rendered: dict[str, Rendered],
) -> None:
    prod = rendered["prod"]
    assert prod.of_kind("StatefulSet") == []
    assert {d["metadata"]["name"] for d in prod.of_kind("Deployment")} == set(DEPLOYMENTS.values())
    for app in APP_SERVICES:
        for var in container_of(prod, app).get("env") or []:
            if var["name"] in ("DATABASE_URL", "RABBITMQ_URL", "SMTP_PASSWORD"):
                assert var["valueFrom"]["secretKeyRef"]["name"] == "ocrmesh-secrets", var["name"]


@pytest.mark.parametrize("name", OVERLAYS)
def test_every_overlay_sends_mail_to_a_server_not_into_the_pod(
    name: str, rendered: dict[str, Rendered]
) -> None:
    env = rendered[name].environment(container_of(rendered[name], APP["notifier"]))
    # Without SMTP_HOST the notifier writes .eml files, which would vanish with the pod.
    assert env.get("SMTP_HOST")
