"""docker-compose.mtls.yml (mutual TLS between the gRPC services) held against the code:
it names settings the services read, the certificates `make certs` writes, and every gRPC
party, so that a service left out would be refused by the others."""

from __future__ import annotations

import importlib.util
from pathlib import PurePosixPath
from typing import Any

import pytest
import yaml

from harness.deployment import APP_SERVICES, ROOT, AppService, environment, settings_from

OVERLAY = ROOT / "docker-compose.mtls.yml"
GRPC_PARTIES = ("auth", "ocr", "gateway")
TLS_VARIABLES = {"GRPC_TLS_CERT_FILE", "GRPC_TLS_KEY_FILE", "GRPC_TLS_CA_FILE"}


def _make_certs_names() -> tuple[str, ...]:
    spec = importlib.util.spec_from_file_location("make_certs", ROOT / "scripts" / "make_certs.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return tuple(module.DEFAULT_NAMES)


@pytest.fixture(scope="module")
def overlay() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = yaml.safe_load(OVERLAY.read_text())["services"]
    return services


def test_every_grpc_party_and_nothing_else_gets_tls(overlay: dict[str, dict[str, Any]]) -> None:
    assert set(overlay) == set(GRPC_PARTIES)  # the notifier speaks no gRPC


@pytest.mark.parametrize("app", [a for a in APP_SERVICES if a.name in GRPC_PARTIES], ids=GRPC_PARTIES)
def test_each_party_reads_its_own_certificate_from_the_mounted_directory(
    app: AppService, overlay: dict[str, dict[str, Any]]
) -> None:
    env = environment(overlay[app.name])
    assert set(env) == TLS_VARIABLES
    assert {name.upper() for name in app.settings.model_fields} >= TLS_VARIABLES
    mounts = [volume.split(":") for volume in overlay[app.name]["volumes"]]
    assert mounts == [["./var/certs", "/certs", "ro"]]
    names = {PurePosixPath(value).name for value in env.values()}
    assert names == {f"{app.name}.pem", f"{app.name}.key", "ca.pem"}
    assert all(PurePosixPath(value).parent == PurePosixPath("/certs") for value in env.values())
    assert app.name in _make_certs_names()


def test_the_services_accept_the_tls_settings(
    overlay: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    # With files where the variables point (the container's /certs, here a temporary copy).
    for app in APP_SERVICES:
        if app.name not in GRPC_PARTIES:
            continue
        env = {}
        for name, value in environment(overlay[app.name]).items():
            path = tmp_path / PurePosixPath(value).name
            path.write_text("pem")
            env[name] = str(path)
        settings = settings_from(app, env, monkeypatch)
        assert settings.grpc_tls.enabled  # type: ignore[attr-defined]
