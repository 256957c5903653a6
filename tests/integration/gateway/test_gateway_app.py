"""The app as a whole: OpenAPI with a working Authorize button, and the last-resort 500."""

from __future__ import annotations

import logging

import httpx
import pytest

from tests.integration.gateway.fakes import PNG_BYTES, gateway_client

pytestmark = pytest.mark.timeout(60)


async def test_openapi_offers_the_password_flow_and_documents_every_route(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["OAuth2PasswordBearer"]["flows"]["password"]["tokenUrl"] == "/auth/token"
    assert set(spec["paths"]) >= {
        "/auth/register",
        "/auth/generate_otp",
        "/auth/verify_otp",
        "/auth/login",
        "/auth/token",
        "/auth/me",
        "/ocr",
        "/ocr/stream",
        "/healthz",
        "/readyz",
    }
    upload = spec["paths"]["/ocr"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert upload["properties"]["file"]["format"] == "binary"
    assert {"security"} <= set(spec["paths"]["/ocr/stream"]["post"])
    docs = await client.get("/docs")
    assert docs.status_code == 200
    assert "swagger-ui" in docs.text


async def test_the_docs_authorize_flow_yields_a_token_the_api_accepts(
    client: httpx.AsyncClient, mesh
) -> None:
    mesh.auth.add_user(password="correct horse")
    # What Swagger UI sends for "Authorize": a form POST to the token URL.
    token = await client.post(
        "/auth/token",
        data={
            "grant_type": "password",
            "username": "ada@example.com",
            "password": "correct horse",
            "scope": "",
        },
    )
    assert token.status_code == 200
    headers = {"Authorization": f"{token.json()['token_type']} {token.json()['access_token']}"}
    assert (await client.get("/auth/me", headers=headers)).status_code == 200
    ocr = await client.post("/ocr", files={"file": ("a.png", PNG_BYTES, "image/png")}, headers=headers)
    assert ocr.status_code == 200


class BrokenVerifier:
    async def verify(self, token: str) -> object:
        raise RuntimeError("key file /etc/ocrmesh/secret.pem unreadable")


async def test_an_unexpected_error_is_500_with_the_request_id_and_no_internals(
    mesh, caplog: pytest.LogCaptureFixture
) -> None:
    async with gateway_client(
        mesh.settings(), verifier_factory=lambda settings, channel: BrokenVerifier()
    ) as client:
        with caplog.at_level(logging.ERROR):
            response = await client.post(
                "/ocr",
                files={"file": ("a.png", PNG_BYTES, "image/png")},
                headers={"Authorization": f"Bearer {mesh.token()}", "X-Request-ID": "req-crash"},
            )
    assert response.status_code == 500
    assert response.json() == {"detail": "internal error (request id req-crash)"}
    assert response.headers["x-request-id"] == "req-crash"
    assert "secret" not in response.text
    # The operator gets the traceback in the log.
    assert any("secret.pem" in (record.exc_text or str(record.exc_info)) for record in caplog.records)


async def test_browsers_from_configured_origins_may_call_and_read_the_request_id(mesh) -> None:
    settings = mesh.settings(gateway_cors_origins=("http://localhost:3000",))
    async with gateway_client(settings) as client:
        preflight = await client.options(
            "/ocr/stream",
            headers={
                "Origin": "http://localhost:3000",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization",
            },
        )
        stranger = await client.options(
            "/ocr/stream",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        )
        simple = await client.get("/healthz", headers={"Origin": "http://localhost:3000"})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert stranger.status_code == 400
    assert "x-request-id" in simple.headers["access-control-expose-headers"].lower()


async def test_no_cross_origin_access_unless_configured(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz", headers={"Origin": "http://localhost:3000"})
    assert "access-control-allow-origin" not in response.headers
