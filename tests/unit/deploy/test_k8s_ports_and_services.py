"""deploy/k8s's ports and Services: containers declare the ports the servers listen on,
Prometheus is told where each serves its metrics, every Service reaches one workload, and
clients dial every pod of the headless gRPC Services."""

from __future__ import annotations

import pytest

from harness.deployment import APP_SERVICES, AppService
from harness.k8s import DEPLOYMENTS, Rendered, container_ports, only_container, pod_labels, selects
from tests.unit.deploy.app_workloads import APP, APP_IDS, GRPC_SERVERS, RENDERINGS, container_of, settings_of

# Where each service is told its metrics port (and the notifier its metrics host).
METRICS_PORT_VARIABLES = {
    "auth": "AUTH_METRICS_PORT",
    "ocr": "OCR_METRICS_PORT",
    "notifier": "NOTIFIER_METRICS_PORT",
}
METRICS_HOST_VARIABLES = {"notifier": "NOTIFIER_METRICS_HOST"}


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
    # And the port listens on the pod network (auth_svc and ocr_svc: their gRPC host, checked
    # in test_k8s_environment.py).
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
