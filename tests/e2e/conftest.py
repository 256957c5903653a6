"""One running mesh (all four services as processes) shared by every e2e test: starting it
costs most of the suite's time. Tests that stop a service start it again before they end."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from harness.mesh import Mesh, running_mesh
from harness.users import SignedUpUser, sign_up
from harness.users import random_email as random_email  # the e2e tests import it from here


@pytest.fixture(scope="session")
def mesh(
    tmp_path_factory: pytest.TempPathFactory, postgres_admin_url: str, rabbitmq_url: str
) -> Iterator[Mesh]:
    workdir = tmp_path_factory.mktemp("mesh")
    with running_mesh(workdir, postgres_admin_url=postgres_admin_url, rabbitmq_url=rabbitmq_url) as running:
        yield running


@pytest.fixture
def client(mesh: Mesh) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=mesh.gateway_url, timeout=60) as http:
        yield http


@pytest.fixture(scope="session")
def user(mesh: Mesh) -> SignedUpUser:
    with httpx.Client(base_url=mesh.gateway_url, timeout=60) as http:
        return sign_up(http, mesh.mail_dir)
