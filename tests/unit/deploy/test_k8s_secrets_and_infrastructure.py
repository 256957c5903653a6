"""deploy/k8s's secrets and infrastructure: auth_svc reads its signing key where the Secret
is mounted, dev points every URL at the infrastructure it runs, prod runs none and reads every
URL from its Secret, and every overlay sends mail to a server."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from harness.deployment import APP_SERVICES
from harness.k8s import DEPLOYMENTS, OVERLAYS, Rendered, only_container, pod_spec
from tests.unit.deploy.app_workloads import APP, RENDERINGS, container_of, settings_of


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
