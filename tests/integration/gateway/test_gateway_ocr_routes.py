"""/ocr and /ocr/stream status codes and bodies (in-process client), uploads refused before
they are read whole, and the local token check before any OCR call."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from gateway.app import create_app
from tests.integration.gateway.fakes import PNG_BYTES, gateway_client

pytestmark = pytest.mark.timeout(60)


def png(
    name: str = "page.png", content: bytes = PNG_BYTES, content_type: str = "image/png"
) -> dict[str, Any]:
    return {"file": (name, content, content_type)}


def bearer(mesh) -> dict[str, str]:
    return {"Authorization": f"Bearer {mesh.token()}"}


async def test_ocr_answers_the_original_fields_plus_the_lines(client: httpx.AsyncClient, mesh) -> None:
    response = await client.post("/ocr", files=png(), headers=bearer(mesh))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["user_id"] == "00000000-0000-4000-8000-00000000a0a0"
    assert body["user_name"] == "Ada Lovelace"
    assert body["user_email"] == "ada@example.com"
    assert body["ocr_text"] == "Hello\nworld"
    assert [line["text"] for line in body["lines"]] == ["Hello", "world"]
    # A line of the result is the stream's line event without its `type`.
    assert body["lines"][0] == {
        "index": 0,
        "block": 0,
        "text": "Hello",
        "confidence": 0.9375,
        "box": [[0, 0], [100, 0], [100, 20], [0, 20]],
        "page": 1,
        "words": [],
    }
    # An image is one page (this fake ocr_svc sends no page event: the started event's size).
    assert body["pages"] == [
        {"page": 1, "width": 640, "height": 480, "rotation": 0, "skew": 0.0, "source": "ocr", "dpi": 0.0}
    ]
    assert body["engine"] == "fake"
    assert (body["image_width"], body["image_height"]) == (640, 480)
    assert body["timings"] == {"decode_ms": 1, "detect_ms": 2, "recognize_ms": 3, "total_ms": 6}


async def test_the_image_bytes_token_and_request_id_reach_ocr_svc(client: httpx.AsyncClient, mesh) -> None:
    token = mesh.token()
    image = PNG_BYTES + b"distinctive tail"
    response = await client.post(
        "/ocr",
        files=png("scan 1.png", image),
        headers={"Authorization": f"Bearer {token}", "X-Request-ID": "req-ocr-1"},
    )
    assert response.status_code == 200
    request = mesh.ocr.requests[-1]
    assert request.image == image
    assert request.filename == "scan 1.png"
    metadata = mesh.ocr.seen_metadata[-1]
    assert metadata["authorization"] == f"Bearer {token}"
    assert metadata["x-request-id"] == "req-ocr-1"


@pytest.mark.parametrize(
    ("make_token", "detail"),
    [
        (lambda mesh: mesh.issuer.mint_expired(), "token expired"),
        (lambda mesh: mesh.issuer.mint_forged(), "token signature invalid"),
        (lambda mesh: mesh.issuer.mint_alg_none(), "token algorithm not accepted"),
        (lambda mesh: mesh.issuer.mint(aud="someone-else"), "token audience not accepted"),
    ],
    ids=["expired", "forged", "alg-none", "other-audience"],
)
@pytest.mark.parametrize("path", ["/ocr", "/ocr/stream"])
async def test_bad_tokens_are_401_before_any_ocr_call(
    client: httpx.AsyncClient, mesh, make_token, detail: str, path: str
) -> None:
    response = await client.post(path, files=png(), headers={"Authorization": f"Bearer {make_token(mesh)}"})
    assert response.status_code == 401
    assert response.json() == {"detail": detail}
    assert response.headers["www-authenticate"] == "Bearer"
    assert mesh.ocr.requests == []


@pytest.mark.parametrize("path", ["/ocr", "/ocr/stream"])
async def test_a_missing_token_is_401(client: httpx.AsyncClient, mesh, path: str) -> None:
    response = await client.post(path, files=png())
    assert response.status_code == 401
    assert mesh.ocr.requests == []


async def test_when_auth_svc_cannot_give_its_keys_ocr_is_503_not_401(client: httpx.AsyncClient, mesh) -> None:
    token = mesh.token()
    await mesh.auth_server.stop(0)
    response = await client.post("/ocr", files=png(), headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 503
    assert mesh.ocr.requests == []


@pytest.mark.parametrize(
    ("files", "status", "detail_part"),
    [
        pytest.param(png(content=b""), 400, "empty", id="empty-file"),
        pytest.param(
            png("notes.txt", b"just some text\n", "text/plain"), 415, "text/plain", id="declared-text"
        ),
        pytest.param(png("fake.png", b"GIF89a not ours", "image/png"), 415, "not an image", id="wrong-magic"),
        pytest.param({"other": ("a.png", PNG_BYTES, "image/png")}, 422, "Field required", id="no-file-field"),
    ],
)
@pytest.mark.parametrize("path", ["/ocr", "/ocr/stream"])
async def test_uploads_that_are_not_one_image_are_refused_at_the_edge(
    client: httpx.AsyncClient, mesh, files, status: int, detail_part: str, path: str
) -> None:
    response = await client.post(path, files=files, headers=bearer(mesh))
    assert response.status_code == status, response.text
    assert detail_part in json.dumps(response.json()["detail"])
    assert mesh.ocr.requests == []


async def test_a_body_that_is_not_multipart_is_415(client: httpx.AsyncClient, mesh) -> None:
    response = await client.post(
        "/ocr", content=PNG_BYTES, headers={**bearer(mesh), "Content-Type": "image/png"}
    )
    assert response.status_code == 415
    assert "multipart/form-data" in response.json()["detail"]


async def test_a_malformed_multipart_body_is_400(client: httpx.AsyncClient, mesh) -> None:
    response = await client.post(
        "/ocr",
        content=b"--xyz\r\nthis is not a header line at all\r\n\r\n",
        headers={**bearer(mesh), "Content-Type": "multipart/form-data; boundary=xyz"},
    )
    assert response.status_code == 400
    assert response.json() == {"detail": "malformed multipart body"}
    assert mesh.ocr.requests == []


async def test_a_declared_oversize_body_is_413_before_it_is_read(mesh) -> None:
    app = create_app(mesh.settings(gateway_max_upload_bytes=1024 * 1024))
    received: list[bytes] = []
    scope_sent: dict[str, Any] = {}

    # Drive the ASGI app directly: the body would be 1 GiB, and not one byte of it is asked for.
    async def receive() -> dict[str, Any]:
        received.append(b"chunk")
        return {"type": "http.request", "body": b"x" * 65536, "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            scope_sent["status"] = message["status"]

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/ocr",
        "raw_path": b"/ocr",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"gateway"),
            (b"authorization", f"Bearer {mesh.token()}".encode()),
            (b"content-type", b"multipart/form-data; boundary=xyz"),
            (b"content-length", str(1024**3).encode()),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("gateway", 80),
    }
    async with app.router.lifespan_context(app):
        await app(scope, receive, send)
    assert scope_sent["status"] == 413
    assert received == []
    assert mesh.ocr.requests == []


async def test_a_chunked_body_is_cut_off_with_413_once_it_passes_the_limit(mesh) -> None:
    limit = 256 * 1024
    chunks_sent = 0

    async def endless_upload() -> AsyncIterator[bytes]:
        nonlocal chunks_sent
        yield b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
        yield b"Content-Type: image/png\r\n\r\n" + PNG_BYTES
        for _ in range(10_000):  # 640 MiB if it were all read
            chunks_sent += 1
            yield b"\x00" * 65536

    # ASGITransport hands the app one chunk per receive(), as a server would.
    async with gateway_client(mesh.settings(gateway_max_upload_bytes=limit)) as client:
        response = await client.post(
            "/ocr",
            content=endless_upload(),
            headers={**bearer(mesh), "Content-Type": "multipart/form-data; boundary=xyz"},
        )
    assert response.status_code == 413
    assert str(limit) in response.json()["detail"]
    # Read a little past the limit, never the whole body.
    assert chunks_sent * 65536 < limit + 2 * 65536 + 64 * 1024
    assert mesh.ocr.requests == []


async def test_an_upload_at_the_limit_is_accepted(mesh) -> None:
    limit = 128 * 1024
    image = PNG_BYTES + b"\x00" * (limit - len(PNG_BYTES))
    async with gateway_client(mesh.settings(gateway_max_upload_bytes=limit)) as client:
        ok = await client.post("/ocr", files=png(content=image), headers=bearer(mesh))
        too_big = await client.post("/ocr", files=png(content=image + b"\x00"), headers=bearer(mesh))
    assert ok.status_code == 200
    assert len(mesh.ocr.requests[-1].image) == limit
    assert too_big.status_code == 413


@pytest.mark.parametrize(
    ("mode", "status", "detail"),
    [
        ("invalid", 400, "image: cannot decode this file"),
        ("busy", 429, "the OCR queue is full, retry later"),
    ],
)
@pytest.mark.parametrize("path", ["/ocr", "/ocr/stream"])
async def test_errors_before_the_first_event_are_plain_http_errors(
    client: httpx.AsyncClient, mesh, mode: str, status: int, detail: str, path: str
) -> None:
    mesh.ocr.mode = mode
    response = await client.post(path, files=png(), headers=bearer(mesh))
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"detail": detail}


async def test_a_failure_inside_ocr_svc_is_500_without_internals(client: httpx.AsyncClient, mesh) -> None:
    mesh.ocr.mode = "fail_mid"
    response = await client.post(
        "/ocr", files=png(), headers={**bearer(mesh), "X-Request-ID": "req-ocr-boom"}
    )
    assert response.status_code == 500
    assert response.json() == {"detail": "internal error (request id req-ocr-boom)"}
    assert "onnx" not in response.text


async def test_a_stream_without_a_completion_is_502(client: httpx.AsyncClient, mesh) -> None:
    mesh.ocr.mode = "no_completion"
    response = await client.post("/ocr", files=png(), headers=bearer(mesh))
    assert response.status_code == 502


async def test_ocr_past_its_deadline_is_504(mesh) -> None:
    mesh.ocr.mode = "hang_after_start"
    async with gateway_client(mesh.settings(ocr_timeout_seconds=0.5)) as client:
        response = await client.post("/ocr", files=png(), headers=bearer(mesh))
    assert response.status_code == 504
    assert response.json() == {"detail": "the ocr service did not answer in time"}


async def test_stream_events_are_ndjson_by_default(client: httpx.AsyncClient, mesh) -> None:
    response = await client.post("/ocr/stream", files=png(), headers=bearer(mesh))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-ndjson"
    events = [json.loads(line) for line in response.text.splitlines()]
    assert [e["type"] for e in events] == ["started", "line", "line", "completed"]
    assert events[0] == {
        "type": "started",
        "engine": "fake",
        "image_width": 640,
        "image_height": 480,
        "page_count": 1,
        "document_format": "",
    }
    assert events[1] == {
        "type": "line",
        "index": 0,
        "block": 0,
        "text": "Hello",
        "confidence": 0.9375,
        "box": [[0, 0], [100, 0], [100, 20], [0, 20]],
        "page": 1,
        "words": [],
    }
    assert events[3]["full_text"] == "Hello\nworld"
    assert events[3]["line_count"] == 2
    assert events[3]["timings"] == {"decode_ms": 1, "detect_ms": 2, "recognize_ms": 3, "total_ms": 6}


async def test_stream_events_are_sse_when_the_client_accepts_event_stream(
    client: httpx.AsyncClient, mesh
) -> None:
    response = await client.post(
        "/ocr/stream", files=png(), headers={**bearer(mesh), "Accept": "text/event-stream"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    blocks = [block for block in response.text.split("\n\n") if block]
    names = [block.splitlines()[0] for block in blocks]
    assert names == ["event: started", "event: line", "event: line", "event: completed"]
    data = [json.loads(block.splitlines()[1].removeprefix("data: ")) for block in blocks]
    assert data[2]["text"] == "world"


async def test_a_failure_mid_stream_ends_with_an_error_event(client: httpx.AsyncClient, mesh) -> None:
    mesh.ocr.mode = "fail_mid"
    response = await client.post(
        "/ocr/stream", files=png(), headers={**bearer(mesh), "X-Request-ID": "req-mid"}
    )
    assert response.status_code == 200
    events = [json.loads(line) for line in response.text.splitlines()]
    assert [e["type"] for e in events] == ["started", "line", "error"]
    assert events[-1] == {"type": "error", "status": 500, "detail": "internal error (request id req-mid)"}


async def test_a_stream_that_ends_without_completion_ends_with_an_error_event(
    client: httpx.AsyncClient, mesh
) -> None:
    mesh.ocr.mode = "no_completion"
    response = await client.post("/ocr/stream", files=png(), headers=bearer(mesh))
    events = [json.loads(line) for line in response.text.splitlines()]
    assert [e["type"] for e in events] == ["started", "error"]
    assert events[-1]["status"] == 502
