"""/auth/* through the gateway to an AuthService over real gRPC: bodies, status codes,
metadata passed on, and errors without internals."""

from __future__ import annotations

import httpx
import pytest

from ocrmesh.platform import metadata

pytestmark = pytest.mark.timeout(60)

NEW_USER = {"name": "Grace Hopper", "email": "grace@example.com", "password": "a long passphrase"}


async def test_register_answers_202_check_your_email_and_no_secret(client: httpx.AsyncClient) -> None:
    response = await client.post("/auth/register", json=NEW_USER)
    assert response.status_code == 202
    assert response.json() == {"detail": "check your email to finish signing up"}
    assert "password" not in response.text


async def test_register_twice_answers_the_same(client: httpx.AsyncClient) -> None:
    # Issue 15: register does not tell whether the address has an account.
    first = await client.post("/auth/register", json=NEW_USER)
    second = await client.post("/auth/register", json=NEW_USER)
    assert (first.status_code, first.json()) == (second.status_code, second.json())


async def test_the_client_address_is_passed_to_auth_svc(client: httpx.AsyncClient, mesh) -> None:
    await client.post("/auth/register", json=NEW_USER)
    assert mesh.auth.seen_metadata[-1][metadata.CLIENT_ADDRESS] == "127.0.0.1"


async def test_a_rule_broken_in_auth_svc_is_400_with_its_message(client: httpx.AsyncClient) -> None:
    # The email syntax is auth_svc's to judge (the schema only says "format: email").
    response = await client.post("/auth/register", json={**NEW_USER, "email": "not-an-address"})
    assert response.status_code == 400
    assert response.json() == {"detail": "email: not a valid email address"}


async def test_a_rule_the_schema_states_is_refused_by_the_gateway_before_any_call(
    client: httpx.AsyncClient, mesh
) -> None:
    calls = len(mesh.auth.seen_metadata)
    response = await client.post("/auth/register", json={**NEW_USER, "password": "short"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "password"]
    assert len(mesh.auth.seen_metadata) == calls


@pytest.mark.parametrize(
    ("content", "headers"),
    [
        pytest.param(b'{"name": "x", "email": ', {"content-type": "application/json"}, id="malformed-json"),
        pytest.param(
            b'{"name": 1, "email": [], "password": null}', {"content-type": "application/json"}, id="types"
        ),
        pytest.param(b'{"name": "x"}', {"content-type": "application/json"}, id="missing-fields"),
        pytest.param(b"[1, 2]", {"content-type": "application/json"}, id="not-an-object"),
    ],
)
async def test_bodies_that_are_not_the_expected_json_are_422_with_field_errors(
    client: httpx.AsyncClient, mesh, content: bytes, headers: dict[str, str]
) -> None:
    response = await client.post("/auth/register", content=content, headers=headers)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert isinstance(detail, list)
    assert all("loc" in item and "msg" in item for item in detail)
    assert mesh.auth.seen_metadata == []  # refused at the edge


async def test_an_unknown_field_is_422_rather_than_silently_ignored(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/auth/login", json={"username": "a@example.com", "password": "x", "pasword": "y"}
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "pasword"]


async def test_login_returns_a_bearer_token(client: httpx.AsyncClient, mesh) -> None:
    mesh.auth.add_user(password="correct horse")
    response = await client.post(
        "/auth/login", json={"username": "ada@example.com", "password": "correct horse"}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600
    claims = await mesh.auth.verifier.verify(body["access_token"])
    assert claims.email == "ada@example.com"


async def test_wrong_password_is_401(client: httpx.AsyncClient, mesh) -> None:
    mesh.auth.add_user(password="correct horse")
    response = await client.post("/auth/login", json={"username": "ada@example.com", "password": "wrong"})
    assert response.status_code == 401
    assert response.json() == {"detail": "wrong email or password"}
    assert response.headers["www-authenticate"] == "Bearer"


async def test_login_before_verifying_the_email_is_403(client: httpx.AsyncClient, mesh) -> None:
    mesh.auth.add_user(verified=False, password="correct horse")
    response = await client.post(
        "/auth/login", json={"username": "ada@example.com", "password": "correct horse"}
    )
    assert response.status_code == 403
    assert response.json() == {"detail": "verify your email address first"}


async def test_the_oauth2_form_token_url_logs_in_like_the_json_login(client: httpx.AsyncClient, mesh) -> None:
    mesh.auth.add_user(password="correct horse")
    response = await client.post(
        "/auth/token",
        data={"grant_type": "password", "username": "ada@example.com", "password": "correct horse"},
    )
    assert response.status_code == 200
    assert response.json()["token_type"] == "bearer"
    unverified = mesh.auth.add_user(verified=False, email="new@example.com", password="pw pw pw pw")
    response = await client.post(
        "/auth/token", data={"username": unverified.email, "password": "pw pw pw pw"}
    )
    assert response.status_code == 403


async def test_generate_otp_within_the_cooldown_is_202_alike(client: httpx.AsyncClient, mesh) -> None:
    # Issue 28: a repeat inside the cooldown answers as the first did (and mails nothing).
    mesh.auth.add_user(verified=False)
    first = await client.post("/auth/generate_otp", json={"email": "ada@example.com"})
    second = await client.post("/auth/generate_otp", json={"email": "ada@example.com"})
    assert (first.status_code, first.json()) == (second.status_code, second.json())
    assert first.status_code == 202
    assert first.json() == {
        "detail": "if this address is waiting for verification, a code is on its way",
        "resend_after_seconds": 60,
        "expires_in_seconds": 600,
    }
    assert mesh.auth.codes_mailed == ["ada@example.com"]


async def test_a_spent_code_budget_is_429_with_retry_after(client: httpx.AsyncClient, mesh) -> None:
    mesh.auth.spent_budgets.add("ada@example.com")
    response = await client.post("/auth/generate_otp", json={"email": "ada@example.com"})
    assert response.status_code == 429
    assert response.json() == {"detail": "too many attempts; retry in 42 s"}
    assert response.headers["retry-after"] == "42"


async def test_generate_otp_for_an_unknown_email_is_202_like_any_other(client: httpx.AsyncClient) -> None:
    response = await client.post("/auth/generate_otp", json={"email": "nobody@example.com"})
    assert response.status_code == 202


@pytest.mark.parametrize("otp", ["012345", 12345, " 012345 "], ids=["string", "number", "padded-string"])
async def test_verify_otp_accepts_the_code_as_a_string_or_a_number(
    client: httpx.AsyncClient, mesh, otp
) -> None:
    mesh.auth.add_user(verified=False)
    response = await client.post("/auth/verify_otp", json={"email": "ada@example.com", "otp": otp})
    assert response.status_code == 200, response.text
    assert response.json()["user"]["is_verified"] is True
    assert mesh.auth.otp_requests[-1].otp == "012345"


@pytest.mark.parametrize("otp", [True, 12.5, -1, 1234567, "", None, [1]])
async def test_verify_otp_refuses_codes_of_other_shapes_with_422(
    client: httpx.AsyncClient, mesh, otp
) -> None:
    response = await client.post("/auth/verify_otp", json={"email": "ada@example.com", "otp": otp})
    assert response.status_code == 422
    assert mesh.auth.otp_requests == []


async def test_a_wrong_code_is_400(client: httpx.AsyncClient, mesh) -> None:
    mesh.auth.add_user(verified=False)
    response = await client.post("/auth/verify_otp", json={"email": "ada@example.com", "otp": "999999"})
    assert response.status_code == 400
    assert response.json() == {"detail": "wrong or expired code"}


async def test_me_passes_the_bearer_token_and_request_id_to_auth_svc(client: httpx.AsyncClient, mesh) -> None:
    mesh.auth.add_user()
    token = mesh.token()
    response = await client.get(
        "/auth/me", headers={"Authorization": f"Bearer {token}", "X-Request-ID": "req-me-1"}
    )
    assert response.status_code == 200
    assert response.json()["email"] == "ada@example.com"
    assert response.headers["x-request-id"] == "req-me-1"
    sent = mesh.auth.seen_metadata[-1]
    assert sent["authorization"] == f"Bearer {token}"
    assert sent["x-request-id"] == "req-me-1"


@pytest.mark.parametrize(
    "authorization",
    [None, "Basic YWRhOnB3", "Bearer", "Bearer not-a-jwt"],
    ids=["none", "basic", "empty", "garbage"],
)
async def test_me_without_a_usable_token_is_401_with_a_bearer_challenge(
    client: httpx.AsyncClient, mesh, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = await client.get("/auth/me", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_me_with_an_expired_token_is_401(client: httpx.AsyncClient, mesh) -> None:
    mesh.auth.add_user()
    response = await client.get("/auth/me", headers={"Authorization": f"Bearer {mesh.issuer.mint_expired()}"})
    assert response.status_code == 401
    assert response.json() == {"detail": "token expired"}


async def test_a_failure_inside_auth_svc_is_500_with_the_request_id_and_no_internals(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/auth/register", json={**NEW_USER, "name": "boom"}, headers={"X-Request-ID": "req-boom-7"}
    )
    assert response.status_code == 500
    assert response.json() == {"detail": "internal error (request id req-boom-7)"}
    assert "hunter2" not in response.text
    assert response.headers["x-request-id"] == "req-boom-7"


async def test_a_request_id_is_made_when_the_client_sends_none_or_an_unusable_one(
    client: httpx.AsyncClient,
) -> None:
    first = await client.get("/healthz")
    second = await client.get("/healthz", headers={"X-Request-ID": "has spaces and ; " + "x" * 300})
    for response in (first, second):
        request_id = response.headers["x-request-id"]
        assert len(request_id) == 32
        assert request_id.isalnum()
    assert first.headers["x-request-id"] != second.headers["x-request-id"]
