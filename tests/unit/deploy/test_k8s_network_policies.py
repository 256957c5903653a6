"""Who may connect to whom, as the NetworkPolicies of each rendering decide it: only the
gateway from outside the namespace; auth_svc and ocr_svc from the gateway and each other;
metrics from Prometheus's namespace; in dev, each piece of infrastructure from its clients."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from harness.k8s import (
    BASE,
    OVERLAYS,
    Rendered,
    container_ports,
    label_selector,
    only_container,
    pod_labels,
    selects,
)

RENDERINGS = (BASE, *OVERLAYS)
APP_LABEL = "app.kubernetes.io/name"
NAMESPACE_LABEL = "kubernetes.io/metadata.name"
MONITORING = "monitoring"
MESH_NAMESPACE = "ocrmesh"


@dataclass(frozen=True)
class Source:
    """A pod that opens a connection: in the mesh's namespace, or in another one."""

    pod: dict[str, str]
    namespace: str | None = None  # None: the mesh's own namespace
    namespace_labels: dict[str, str] = field(default_factory=dict)


def in_mesh(app: str) -> Source:
    return Source({APP_LABEL: app})


def outside(namespace: str, app: str = "client") -> Source:
    return Source({APP_LABEL: app}, namespace, {NAMESPACE_LABEL: namespace})


def peer_admits(peer: dict[str, Any], source: Source) -> bool:
    assert "ipBlock" not in peer, "ipBlock peers: extend peer_admits"
    if "namespaceSelector" in peer:
        # Every namespace carries its name as a label (Kubernetes sets it).
        labels = source.namespace_labels if source.namespace else {NAMESPACE_LABEL: MESH_NAMESPACE}
        if not selects(label_selector(peer["namespaceSelector"]), labels):
            return False
    elif source.namespace is not None:
        return False  # a podSelector alone means the policy's own namespace
    return "podSelector" not in peer or selects(label_selector(peer["podSelector"]), source.pod)


def may_connect(rendered: Rendered, source: Source, target_app: str, port_name: str) -> bool:
    """Whether `source` may open a connection to the `target_app` pods' port `port_name`."""
    (workload,) = [w for w in rendered.workloads() if pod_labels(w).get(APP_LABEL) == target_app]
    labels = pod_labels(workload)
    port_number = container_ports(only_container(workload))[port_name]
    policies = [
        p
        for p in rendered.of_kind("NetworkPolicy")
        if "Ingress" in p["spec"].get("policyTypes", ["Ingress"])
        and selects(label_selector(p["spec"]["podSelector"]), labels)
    ]
    if not policies:
        return True  # not isolated
    for policy in policies:
        for rule in policy["spec"].get("ingress") or []:
            ports = rule.get("ports")
            if ports and not any(p.get("port") in (port_name, port_number) for p in ports):
                continue
            peers = rule.get("from")
            if not peers or any(peer_admits(peer, source) for peer in peers):
                return True
    return False


@pytest.mark.parametrize("name", RENDERINGS)
def test_every_pod_refuses_ingress_unless_a_policy_admits_it(
    name: str, rendered: dict[str, Rendered]
) -> None:
    deny = [
        p
        for p in rendered[name].of_kind("NetworkPolicy")
        if not label_selector(p["spec"]["podSelector"]) and p["spec"]["policyTypes"] == ["Ingress"]
    ]
    assert len(deny) == 1
    assert not deny[0]["spec"].get("ingress")
    # So a pod added without its own policy is unreachable, never open by omission.
    assert not may_connect(rendered[name], in_mesh("gateway"), "notifier", "metrics")


@pytest.mark.parametrize("name", RENDERINGS)
def test_the_gateway_is_reachable_from_outside_the_namespace(
    name: str, rendered: dict[str, Rendered]
) -> None:
    for source in (outside("ingress-nginx", "controller"), outside("default"), in_mesh("anything")):
        assert may_connect(rendered[name], source, "gateway", "http"), source


@pytest.mark.parametrize("name", RENDERINGS)
@pytest.mark.parametrize(("server", "peer"), [("auth-svc", "ocr-svc"), ("ocr-svc", "auth-svc")])
def test_grpc_services_take_calls_only_from_the_gateway_and_each_other(
    server: str, peer: str, name: str, rendered: dict[str, Rendered]
) -> None:
    r = rendered[name]
    assert may_connect(r, in_mesh("gateway"), server, "grpc")
    assert may_connect(r, in_mesh(peer), server, "grpc")
    for stranger in (in_mesh("notifier"), in_mesh("postgres"), in_mesh("debug-shell")):
        assert not may_connect(r, stranger, server, "grpc"), stranger
    for foreign in (
        outside("default", "gateway"),
        outside(MONITORING, "prometheus"),
        outside("ingress-nginx"),
    ):
        assert not may_connect(r, foreign, server, "grpc"), foreign


@pytest.mark.parametrize("name", RENDERINGS)
@pytest.mark.parametrize("app", ["auth-svc", "ocr-svc", "notifier"])
def test_metrics_ports_are_open_to_the_monitoring_namespace_only(
    app: str, name: str, rendered: dict[str, Rendered]
) -> None:
    r = rendered[name]
    assert may_connect(r, outside(MONITORING, "prometheus"), app, "metrics")
    assert not may_connect(r, outside("default", "prometheus"), app, "metrics")
    assert not may_connect(r, in_mesh("gateway"), app, "metrics")


# What each piece of dev infrastructure serves, and to whom.
DEV_INFRASTRUCTURE = {
    ("postgres", "postgres"): {"auth-svc", "notifier"},
    ("rabbitmq", "amqp"): {"auth-svc", "ocr-svc", "notifier"},
    ("mailpit", "smtp"): {"notifier"},
}
MESH_APPS = ("gateway", "auth-svc", "ocr-svc", "notifier", "postgres", "rabbitmq", "mailpit")


@pytest.mark.parametrize(
    ("target", "clients"), DEV_INFRASTRUCTURE.items(), ids=[t for t, _ in DEV_INFRASTRUCTURE]
)
def test_dev_infrastructure_takes_connections_only_from_its_clients(
    target: tuple[str, str], clients: set[str], rendered: dict[str, Rendered]
) -> None:
    app, port = target
    for source in MESH_APPS:
        expected = source in clients
        assert may_connect(rendered["dev"], in_mesh(source), app, port) is expected, source
    assert not may_connect(rendered["dev"], outside("default"), app, port)
    # The web UIs are for kubectl port-forward only, which no policy governs.
    for ui_app, ui_port in (("rabbitmq", "management"), ("mailpit", "http")):
        assert not may_connect(rendered["dev"], in_mesh("gateway"), ui_app, ui_port)


def test_policies_select_pods_that_exist(rendered: dict[str, Rendered]) -> None:
    for name in RENDERINGS:
        labels = [pod_labels(w) for w in rendered[name].workloads()]
        for policy in rendered[name].of_kind("NetworkPolicy"):
            selector = label_selector(policy["spec"]["podSelector"])
            assert any(selects(selector, pod) for pod in labels), policy["metadata"]["name"]
            for rule in policy["spec"].get("ingress") or []:
                for peer in rule.get("from") or []:
                    if "podSelector" in peer and "namespaceSelector" not in peer:
                        wanted = label_selector(peer["podSelector"])
                        assert any(selects(wanted, pod) for pod in labels), (
                            f"{policy['metadata']['name']}: {wanted}"
                        )
