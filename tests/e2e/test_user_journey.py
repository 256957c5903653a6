"""A new user's whole story, driven over REST and gRPC against the mesh as real processes."""

from __future__ import annotations

import json
import time

import grpc
import httpx
import pytest

from harness.images import SAMPLE_PARAGRAPH, character_error_rate, sample_multiline_png
from harness.mesh import Mesh
from notifier.mailbox import OCR_COMPLETED, mails_to, wait_for_mail
from ocrmesh.auth.v1 import auth_pb2, auth_pb2_grpc
from ocrmesh.platform.grpc_client import bearer_metadata
from tests.e2e.conftest import SignedUpUser, random_email, sign_up

pytestmark = pytest.mark.e2e

EXPECTED_LINES = list(SAMPLE_PARAGRAPH)


def test_register_verify_login_and_me(client: httpx.Client, mesh: Mesh) -> None:
    user = sign_up(client, mesh.mail_dir, name="Grace Hopper")
    me = client.get("/auth/me", headers=user.auth)
    assert me.status_code == 200, me.text
    body = me.json()
    assert body["email"] == user.email
    assert body["name"] == "Grace Hopper"
    assert body["is_verified"] is True
    assert "password" not in json.dumps(body).lower()
    assert me.headers["x-request-id"]


def test_internal_callers_get_the_same_user_over_grpc(mesh: Mesh, user: SignedUpUser) -> None:
    with grpc.insecure_channel(mesh.auth_addr) as channel:
        reply = auth_pb2_grpc.AuthServiceStub(channel).GetCurrentUser(
            auth_pb2.GetCurrentUserRequest(), metadata=bearer_metadata(user.token), timeout=5
        )
    assert reply.user.email == user.email


def read_ndjson(response: httpx.Response) -> list[dict[str, object]]:
    return [json.loads(line) for line in response.iter_lines() if line.strip()]


def read_sse(response: httpx.Response) -> list[tuple[str, dict[str, object]]]:
    events: list[tuple[str, dict[str, object]]] = []
    name = ""
    for line in response.iter_lines():
        if line.startswith("event:"):
            name = line.split(":", 1)[1].strip()
        elif line.startswith("data:"):
            events.append((name, json.loads(line.split(":", 1)[1])))
    return events


def assert_in_order(events: list[dict[str, object]]) -> None:
    kinds = [e["type"] for e in events]
    assert kinds[0] == "started"
    assert kinds[-1] == "completed"
    # An image is one page: its page event, then its lines.
    assert kinds[1] == "page"
    assert set(kinds[2:-1]) == {"line"}
    lines = events[2:-1]
    assert [e["index"] for e in lines] == list(range(len(lines)))
    completed = events[-1]
    assert completed["line_count"] == len(lines)
    recognised = "\n".join(str(e["text"]) for e in lines)
    assert completed["full_text"] == recognised
    assert character_error_rate("\n".join(EXPECTED_LINES), recognised) <= 0.05


def test_streamed_ocr_as_ndjson_arrives_in_order(client: httpx.Client, user: SignedUpUser) -> None:
    files = {"file": ("page.png", sample_multiline_png(), "image/png")}
    with client.stream("POST", "/ocr/stream", headers=user.auth, files=files) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/x-ndjson")
        events = read_ndjson(response)
    assert_in_order(events)
    assert len(events) - 3 == len(EXPECTED_LINES)  # started, page, lines, completed


def test_streamed_ocr_as_server_sent_events(client: httpx.Client, user: SignedUpUser) -> None:
    files = {"file": ("page.png", sample_multiline_png(), "image/png")}
    headers = {**user.auth, "Accept": "text/event-stream"}
    with client.stream("POST", "/ocr/stream", headers=headers, files=files) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = read_sse(response)
    assert [name for name, _ in events] == [str(data["type"]) for _, data in events]
    assert_in_order([data for _, data in events])


def test_one_shot_ocr_and_the_completion_mail(client: httpx.Client, mesh: Mesh) -> None:
    user = sign_up(client, mesh.mail_dir, name="Katherine Johnson")
    response = client.post(
        "/ocr", headers=user.auth, files={"file": ("page.png", sample_multiline_png(), "image/png")}
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["user_email"] == user.email
    assert result["user_name"] == "Katherine Johnson"
    assert result["user_id"]
    assert len(result["lines"]) == len(EXPECTED_LINES)
    assert character_error_rate("\n".join(EXPECTED_LINES), result["ocr_text"]) <= 0.05
    mail = wait_for_mail(mesh.mail_dir, user.email, kind=OCR_COMPLETED)
    assert user.email in mail.to
    assert EXPECTED_LINES[0] in mail.body
    # One verification mail and one completion mail: nothing sent twice.
    assert len(mails_to(mesh.mail_dir, user.email)) == 2


def test_asking_for_a_new_code_within_the_cooldown_is_answered_alike_and_mails_nothing(
    client: httpx.Client, mesh: Mesh
) -> None:
    email = random_email()
    created = client.post(
        "/auth/register", json={"name": "Lin", "email": email, "password": "long enough pw"}
    )
    assert created.status_code == 202
    wait_for_mail(mesh.mail_dir, email)
    too_soon = client.post("/auth/generate_otp", json={"email": email})
    # The same 202 an unknown address gets (issue 28: no enumeration through the cooldown).
    assert too_soon.status_code == 202
    assert too_soon.json()["resend_after_seconds"] == 60
    time.sleep(2)
    assert len(mails_to(mesh.mail_dir, email)) == 1, "a repeat within the cooldown must mail nothing"


def test_logout_password_change_and_log_out_everywhere_through_the_gateway(
    client: httpx.Client, mesh: Mesh
) -> None:
    user = sign_up(client, mesh.mail_dir, name="Lin")
    other = client.post("/auth/login", json={"username": user.email, "password": user.password}).json()
    other_auth = {"Authorization": f"Bearer {other['access_token']}"}

    assert client.post("/auth/logout", headers=user.auth).status_code == 204
    assert client.get("/auth/me", headers=user.auth).status_code == 401
    assert client.get("/auth/me", headers=other_auth).status_code == 200
    # The gateway verifies /ocr tokens itself: it hears of the revocation within ~2 s.
    time.sleep(2.5)
    image = {"file": ("page.png", sample_multiline_png(), "image/png")}
    assert client.post("/ocr", headers=user.auth, files=image).status_code == 401

    changed = client.post(
        "/auth/password/change",
        headers=other_auth,
        json={"current_password": user.password, "new_password": "a fresh long secret"},
    )
    assert changed.status_code == 200, changed.text
    assert client.get("/auth/me", headers=other_auth).status_code == 401
    fresh = {"Authorization": f"Bearer {changed.json()['access_token']}"}
    assert client.get("/auth/me", headers=fresh).status_code == 200

    assert client.post("/auth/logout_all", headers=fresh).status_code == 204
    assert client.get("/auth/me", headers=fresh).status_code == 401
    login = client.post("/auth/login", json={"username": user.email, "password": "a fresh long secret"})
    assert login.status_code == 200
