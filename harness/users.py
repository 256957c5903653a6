"""Users signed up the way a person does it, through the gateway of a running mesh: register,
read the verification code from the mail the notifier wrote to MAIL_DIR, verify, log in.

    with httpx.Client(base_url=mesh.gateway_url, timeout=60) as client:
        user = sign_up(client, mesh.mail_dir)
        client.get("/auth/me", headers=user.auth)
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx

from notifier.mailbox import VERIFICATION_CODE, wait_for_mail

DEFAULT_PASSWORD = "correct horse battery"


@dataclass(frozen=True)
class SignedUpUser:
    name: str
    email: str
    password: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        """The Authorization header of the user's access token."""
        return {"Authorization": f"Bearer {self.token}"}


def random_email(prefix: str = "user") -> str:
    """An address no other user of the run has."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}@example.com"


def sign_up(
    client: httpx.Client,
    mail_dir: Path,
    *,
    name: str = "Ada Lovelace",
    email: str | None = None,
    password: str = DEFAULT_PASSWORD,
    mail_timeout: float = 30.0,
) -> SignedUpUser:
    """Register `email` (a random one by default) through the gateway `client` talks to, read
    the code from the delivered mail, verify, log in. AssertionError when a step is refused."""
    email = email or random_email()
    registered = client.post("/auth/register", json={"name": name, "email": email, "password": password})
    _expect(registered, 202)
    code = wait_for_mail(mail_dir, email, kind=VERIFICATION_CODE, timeout=mail_timeout).code
    if code is None:
        raise AssertionError(f"the verification mail to {email} holds no code")
    _expect(client.post("/auth/verify_otp", json={"email": email, "otp": code}), 200)
    login = client.post("/auth/login", json={"username": email, "password": password})
    _expect(login, 200)
    return SignedUpUser(name=name, email=email, password=password, token=str(login.json()["access_token"]))


def _expect(response: httpx.Response, status: int) -> None:
    if response.status_code != status:
        raise AssertionError(
            f"{response.request.method} {response.request.url.path}: {response.status_code} {response.text}"
        )
