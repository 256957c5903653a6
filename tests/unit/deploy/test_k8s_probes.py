"""deploy/k8s's probes ask what each service really answers: gRPC health of what a server
hosts, the gateway's liveness and readiness routes, the notifier's health file, and a startup
probe as patient as compose with the OCR engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.routes.health import router as health_router
from harness.deployment import settings_from
from harness.k8s import BASE, Rendered, only_container, pod_spec
from notifier.__main__ import main as notifier_main
from notifier.health import HealthFile
from tests.unit.deploy.app_workloads import APP, GRPC_SERVERS, RENDERINGS, container_of, settings_of


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
