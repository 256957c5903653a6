"""docker-compose.yml's ports agree: each gRPC server listens, is probed, published and
dialled on one port, and only the gateway is published beyond this machine."""

from __future__ import annotations

from typing import Any

import pytest

from harness.deployment import APP_SERVICES, environment, healthcheck_argv, published_ports, settings_from
from tests.unit.compose.service_kinds import OBSERVABILITY


def test_grpc_ports_agree_between_servers_clients_healthchecks_and_publishing(
    svc: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    servers = {"auth": "auth_port", "ocr": "ocr_port"}
    for app in APP_SERVICES:
        if app.name not in servers:
            continue
        port = getattr(settings_from(app, environment(svc[app.name]), monkeypatch), servers[app.name])
        assert [p.container_port for p in published_ports(svc[app.name])] == [port]
        assert healthcheck_argv(svc[app.name])[-1] == f"127.0.0.1:{port}"
        # Every client of this server dials the same port.
        addr_var = f"{app.name.upper()}_ADDR"
        clients = [name for name, s in svc.items() if addr_var in environment(s)]
        assert clients, f"nobody calls {app.name}?"
        for client in clients:
            assert environment(svc[client])[addr_var] == f"{app.name}:{port}", client


def test_gateway_port_agrees_with_publishing_and_its_healthcheck(
    svc: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway = next(app for app in APP_SERVICES if app.name == "gateway")
    settings = settings_from(gateway, environment(svc["gateway"]), monkeypatch)
    port = settings.gateway_port  # type: ignore[attr-defined]
    assert [p.container_port for p in published_ports(svc["gateway"])] == [port]
    assert f"http://127.0.0.1:{port}/healthz" in " ".join(healthcheck_argv(svc["gateway"]))


def test_only_the_gateway_the_web_uis_and_the_grpc_ports_are_published(
    svc: dict[str, dict[str, Any]],
) -> None:
    published = {name: sorted(p.container_port for p in published_ports(s)) for name, s in svc.items()}
    assert {name: ports for name, ports in published.items() if ports} == {
        "gateway": [8000],
        "mailpit": [8025],  # web UI; SMTP 1025 stays inside the network
        "rabbitmq": [15672],  # management UI; AMQP 5672 stays inside
        "auth": [50051],
        "ocr": [50052],
        "prometheus": [9090],
        "grafana": [3000],
    }
    # Debugging ports listen on this machine only; the API is the one public entry.
    for name in ("mailpit", "rabbitmq", "auth", "ocr", *OBSERVABILITY):
        assert all(p.host_ip == "127.0.0.1" for p in published_ports(svc[name])), name
