"""docker-compose.yml runs the mesh `make up` runs: the four services with their
infrastructure, the same commands as the Procfile, each image built for the module it runs."""

from __future__ import annotations

import shlex
from typing import Any

import pytest

from harness.deployment import APP_SERVICES, AppService, procfile
from tests.unit.compose.service_kinds import APP_IDS, INFRASTRUCTURE, OBSERVABILITY, ONE_SHOTS


def test_the_mesh_is_the_four_services_with_postgres_rabbitmq_and_a_mail_catcher(
    svc: dict[str, dict[str, Any]],
) -> None:
    assert set(svc) == {*APP_IDS, *INFRASTRUCTURE, *OBSERVABILITY, *ONE_SHOTS}
    assert svc["postgres"]["image"].startswith("postgres:")
    assert svc["rabbitmq"]["image"].startswith("rabbitmq:")
    assert svc["rabbitmq"]["image"].endswith("-management")
    assert svc["mailpit"]["image"].startswith("axllent/mailpit:")


@pytest.mark.parametrize("app", APP_SERVICES, ids=APP_IDS)
def test_each_service_runs_the_procfile_command(app: AppService, svc: dict[str, dict[str, Any]]) -> None:
    # honcho runs each line through a shell, where `exec` makes the service replace that
    # shell; compose runs the argv directly, so the service is the process that gets SIGTERM
    # either way. A list says the argv exactly (compose splits a string without a shell).
    argv = shlex.split(procfile()[app.name])
    if argv[0] == "exec":
        argv = argv[1:]
    assert svc[app.name]["command"] == argv
    assert svc[app.name]["command"] == ["python", "-m", app.module]


def test_procfile_and_compose_run_the_same_set_of_services() -> None:
    assert set(procfile()) == set(APP_IDS)


@pytest.mark.parametrize("app", APP_SERVICES, ids=APP_IDS)
def test_each_image_is_built_for_the_module_it_runs_with_its_extra(
    app: AppService, svc: dict[str, dict[str, Any]]
) -> None:
    args = svc[app.name]["build"]["args"]
    assert args["SERVICE"] == app.module
    assert app.extra in args["EXTRAS"].split()
    assert svc[app.name]["build"]["context"] == "."


def test_the_key_init_builds_the_same_image_as_auth_svc(svc: dict[str, dict[str, Any]]) -> None:
    # Same tag, same build: whichever compose builds first, both run the same code.
    assert svc["auth-keys"]["image"] == svc["auth"]["image"]
    assert svc["auth-keys"]["build"] == svc["auth"]["build"]
    images = [s["image"] for name, s in svc.items() if "build" in s and name not in ONE_SHOTS]
    assert len(images) == len(set(images)), "two services would overwrite each other's image"
