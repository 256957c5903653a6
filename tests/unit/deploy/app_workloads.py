"""The four services' workloads in each rendering of deploy/k8s, and the settings each one
builds from what its pod is given: what the k8s test modules hold against the code."""

from __future__ import annotations

from typing import Any

import pytest

from harness.deployment import APP_SERVICES, AppService, settings_from
from harness.k8s import BASE, OVERLAYS, Rendered, only_container
from ocrmesh.auth.v1 import auth_pb2
from ocrmesh.ocr.v1 import ocr_pb2

RENDERINGS = (BASE, *OVERLAYS)
APP_IDS = [app.name for app in APP_SERVICES]
APP = {app.name: app for app in APP_SERVICES}

# The gRPC servers and their settings field for the port, with the service they host.
GRPC_SERVERS = {
    "auth": ("auth_port", auth_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name),
    "ocr": ("ocr_port", ocr_pb2.DESCRIPTOR.services_by_name["OcrService"].full_name),
}


def container_of(rendered: Rendered, app: AppService) -> dict[str, Any]:
    return only_container(rendered.deployment(app))


def settings_of(rendered: Rendered, app: AppService, monkeypatch: pytest.MonkeyPatch) -> Any:
    return settings_from(app, rendered.environment(container_of(rendered, app)), monkeypatch)
