"""Every kind of bad input gets its status code from the running mesh, never a 500."""

from __future__ import annotations

import time
import uuid

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auth_svc.keys import GENERATED_KEY_NAME, key_id_for, load_private_key
from harness.images import sample_multiline_png
from harness.mesh import Mesh
from tests.e2e.conftest import SignedUpUser, random_email

pytestmark = pytest.mark.e2e


def mint(private: Ed25519PrivateKey, user: SignedUpUser, *, expires_in: float, mesh: Mesh) -> str:
    now = time.time()
    claims = {
        "sub": str(uuid.uuid4()),
        "email": user.email,
        "name": user.name,
        "iat": int(now) - 60,
        "exp": int(now + expires_in),
        "iss": mesh.env.get("TOKEN_ISSUER", "ocrmesh-auth"),
        "aud": mesh.env.get("TOKEN_AUDIENCE", "ocrmesh"),
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, private, algorithm="EdDSA", headers={"kid": key_id_for(private.public_key())})


def png() -> dict[str, tuple[str, bytes, str]]:
    return {"file": ("page.png", sample_multiline_png(), "image/png")}


def test_malformed_json_is_422(client: httpx.Client) -> None:
    response = client.post(
        "/auth/register", content=b'{"name": "x", "email":', headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert "detail" in response.json()


def test_wrong_types_are_422(client: httpx.Client) -> None:
    response = client.post("/auth/register", json={"name": ["x"], "email": 5, "password": True})
    assert response.status_code == 422


def test_invalid_email_is_400_from_auth_svc_and_short_password_422_from_the_schema(
    client: httpx.Client,
) -> None:
    bad_email = client.post(
        "/auth/register", json={"name": "x", "email": "not-an-email", "password": "long enough pass"}
    )
    short = client.post("/auth/register", json={"name": "x", "email": random_email(), "password": "short"})
    assert bad_email.status_code == 400, bad_email.text
    assert short.status_code == 422, short.text


def test_register_generate_and_verify_answer_alike_for_taken_and_unknown_addresses(
    client: httpx.Client, user: SignedUpUser
) -> None:
    # Issues 15 and 28: no account enumeration (status, body, and time within a loose
    # tolerance), even though the taken address's sign-up mailed a code moments ago.
    answers: dict[str, list[tuple[int, object]]] = {}
    times: dict[str, float] = {}
    for kind, address in (("taken", user.email.upper()), ("unknown", random_email())):
        started = time.perf_counter()
        register = client.post(
            "/auth/register", json={"name": "Again", "email": address, "password": "another password"}
        )
        times[kind] = time.perf_counter() - started
        verify = client.post("/auth/verify_otp", json={"email": address, "otp": "000000"})
        # Within the cooldown of the last code (or notice): answered alike, nothing mailed.
        generate = client.post("/auth/generate_otp", json={"email": address})
        answers[kind] = [(r.status_code, r.json()) for r in (register, verify, generate)]
    assert answers["taken"] == answers["unknown"]
    assert [status for status, _ in answers["taken"]] == [202, 400, 202]
    # Both paths hash the password: neither is an order of magnitude faster.
    assert 0.2 < times["taken"] / times["unknown"] < 5.0, times


def test_wrong_password_is_401_and_unverified_login_is_403(client: httpx.Client, user: SignedUpUser) -> None:
    wrong = client.post("/auth/login", json={"username": user.email, "password": "not the password"})
    assert wrong.status_code == 401
    email = random_email()
    assert (
        client.post(
            "/auth/register", json={"name": "U", "email": email, "password": "long enough pw"}
        ).status_code
        == 202
    )
    unverified = client.post("/auth/login", json={"username": email, "password": "long enough pw"})
    assert unverified.status_code == 403


def test_missing_expired_and_forged_tokens_are_401(
    client: httpx.Client, mesh: Mesh, user: SignedUpUser
) -> None:
    real_key = load_private_key(mesh.workdir / "keys" / GENERATED_KEY_NAME)
    expired = mint(real_key, user, expires_in=-10, mesh=mesh)
    forged = mint(Ed25519PrivateKey.generate(), user, expires_in=600, mesh=mesh)
    still_valid = mint(real_key, user, expires_in=600, mesh=mesh)
    for path in ("/auth/me", "/ocr"):
        method = client.get if path == "/auth/me" else client.post
        kwargs = {} if path == "/auth/me" else {"files": png()}
        assert method(path, **kwargs).status_code == 401, path
        for token in (expired, forged, "not.a.jwt"):
            response = method(path, headers={"Authorization": f"Bearer {token}"}, **kwargs)
            assert response.status_code == 401, (path, response.text)
    # A token signed by the real key is accepted, so the refusals above were about the tokens.
    assert (
        client.post("/ocr", headers={"Authorization": f"Bearer {still_valid}"}, files=png()).status_code
        == 200
    )


def test_uploads_that_are_too_big_not_images_or_empty(client: httpx.Client, user: SignedUpUser) -> None:
    huge = b"\x89PNG\r\n\x1a\n" + b"\0" * (11 * 1024 * 1024)
    too_big = client.post("/ocr", headers=user.auth, files={"file": ("big.png", huge, "image/png")})
    assert too_big.status_code == 413
    text = client.post("/ocr", headers=user.auth, files={"file": ("a.txt", b"hello there", "text/plain")})
    assert text.status_code == 415
    disguised = client.post("/ocr", headers=user.auth, files={"file": ("a.png", b"hello there", "image/png")})
    assert disguised.status_code in (400, 415)
    empty = client.post("/ocr", headers=user.auth, files={"file": ("a.png", b"", "image/png")})
    assert empty.status_code == 400
    corrupt = sample_multiline_png()[:200]
    broken = client.post("/ocr/stream", headers=user.auth, files={"file": ("a.png", corrupt, "image/png")})
    # ocr_svc refuses it as UNREADABLE (ocrmesh/rules/document_refusals.py): 422.
    assert broken.status_code == 422
    assert "detail" in broken.json()
