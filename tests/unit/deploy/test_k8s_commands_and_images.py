"""deploy/k8s runs the code compose runs: the Procfile's commands and the images compose
builds (dev) or a registry holds (prod)."""

from __future__ import annotations

import re
import shlex

import pytest

from harness.deployment import APP_SERVICES, AppService, compose_env, load_compose, procfile, services
from harness.k8s import BASE, Rendered
from tests.unit.deploy.app_workloads import APP_IDS, RENDERINGS, container_of


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
