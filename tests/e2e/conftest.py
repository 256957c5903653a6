"""One running mesh (all four services as processes) shared by every e2e test: starting it
costs most of the suite's time. Tests that stop a service start it again before they end."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from harness.mesh import Mesh, running_mesh
from notifier.mailbox import VERIFICATION_CODE, wait_for_mail


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


@dataclass(frozen=True)
class SignedUpUser:
    name: str
    email: str
    password: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def random_email() -> str:
    return f"user-{uuid.uuid4().hex[:10]}@example.com"


def sign_up(client: httpx.Client, mail_dir: Path, *, name: str = "Ada Lovelace") -> SignedUpUser:
    """Register, read the code from the delivered mail, verify, log in."""
    email, password = random_email(), "correct horse battery"
    registered = client.post("/auth/register", json={"name": name, "email": email, "password": password})
    assert registered.status_code == 202, registered.text
    code = wait_for_mail(mail_dir, email, kind=VERIFICATION_CODE).code
    assert code is not None
    verified = client.post("/auth/verify_otp", json={"email": email, "otp": code})
    assert verified.status_code == 200, verified.text
    login = client.post("/auth/login", json={"username": email, "password": password})
    assert login.status_code == 200, login.text
    return SignedUpUser(name=name, email=email, password=password, token=login.json()["access_token"])


@pytest.fixture(scope="session")
def user(mesh: Mesh) -> SignedUpUser:
    with httpx.Client(base_url=mesh.gateway_url, timeout=60) as http:
        return sign_up(http, mesh.mail_dir)
