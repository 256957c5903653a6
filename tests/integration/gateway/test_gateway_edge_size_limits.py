"""The edge bounds what a client may send before a byte of it is read (issue 14, item 1):
bodies refused from their declared length or as soon as a chunked one passes the limit,
multipart forms kept off the auth routes, headers bounded, and a refusal the client reads
whole, without a reset. Against `python -m gateway` over raw sockets (edge_gateway.py)."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.integration.gateway.edge_gateway import (
    BODY_LIMIT,
    PROMPT,
    UPLOAD_LIMIT,
    EdgeGateway,
    closed_by_server,
    connect,
    headers_of,
    read_response,
    timed_response,
)


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/auth/login", "application/json"),
        ("/auth/register", "application/json"),
        ("/auth/token", "application/x-www-form-urlencoded"),
        ("/ocr", "multipart/form-data; boundary=x"),
        ("/ocr/stream", "multipart/form-data; boundary=x"),
        ("/no/such/route", "application/json"),
    ],
)
def test_a_declared_oversized_body_is_refused_right_after_the_headers(
    edge_gateway: EdgeGateway, path: str, content_type: str
) -> None:
    with connect(edge_gateway) as sock:
        # 64 MiB declared, not a byte of it sent: the answer cannot wait for the body.
        sock.sendall(headers_of("POST", path, f"Content-Type: {content_type}", f"Content-Length: {64 << 20}"))
        status, headers, elapsed = timed_response(sock)
        assert status == 413
        assert elapsed < PROMPT
        assert headers["connection"] == "close"
        assert closed_by_server(sock)


@pytest.mark.parametrize(
    ("path", "content_type", "limit"),
    [
        ("/auth/login", "application/json", BODY_LIMIT),
        ("/auth/token", "application/x-www-form-urlencoded", BODY_LIMIT),
        ("/ocr", "multipart/form-data; boundary=x", UPLOAD_LIMIT),
    ],
)
def test_a_chunked_body_is_refused_as_soon_as_it_passes_the_limit(
    edge_gateway: EdgeGateway, path: str, content_type: str, limit: int
) -> None:
    chunk = b"a" * 4096
    with connect(edge_gateway) as sock:
        headers = [f"Content-Type: {content_type}", "Transfer-Encoding: chunked"]
        if path == "/ocr":
            headers.append("Authorization: Bearer not-checked-before-the-body")
        sock.sendall(headers_of("POST", path, *headers))
        sent = 0
        status = None
        # Keep sending well past the limit, as a hostile client would; the 413 must come
        # while it still sends, not after it gives up.
        while sent < limit * 4:
            try:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        status, _, _ = read_response(sock)
        assert status in (413, 401)  # /ocr may check the token first: never a 200, never a hang
        if path != "/ocr":
            assert status == 413


def test_an_upload_over_the_limit_is_refused_from_content_length_with_a_token(
    edge_gateway: EdgeGateway,
) -> None:
    with connect(edge_gateway) as sock:
        sock.sendall(
            headers_of(
                "POST",
                "/ocr",
                "Authorization: Bearer x",
                "Content-Type: multipart/form-data; boundary=x",
                f"Content-Length: {UPLOAD_LIMIT + 65 * 1024 + 1}",
            )
        )
        status, _, elapsed = timed_response(sock)
    assert status == 413
    assert elapsed < PROMPT


def test_multipart_forms_are_refused_on_the_auth_routes(edge_gateway: EdgeGateway) -> None:
    # A file part would be spooled to a temporary file by the form parser: never parsed.
    files = {"username": (None, "a@example.com"), "password": (None, "pw"), "f": ("x.bin", b"x" * 1000)}
    response = httpx.post(f"{edge_gateway.url}/auth/token", files=files, timeout=5)
    assert response.status_code == 415
    assert "multipart" in response.json()["detail"]


def test_a_small_urlencoded_login_form_still_reaches_the_route(edge_gateway: EdgeGateway) -> None:
    form = {"username": "a@example.com", "password": "correct horse battery"}
    response = httpx.post(f"{edge_gateway.url}/auth/token", data=form, timeout=10)
    # auth_svc is not running: the route was reached and called it.
    assert response.status_code == 503, response.text


def test_a_form_with_too_many_fields_is_refused(edge_gateway: EdgeGateway) -> None:
    form = "&".join(f"f{i}=1" for i in range(100))
    response = httpx.post(
        f"{edge_gateway.url}/auth/token",
        content=form,
        headers={"content-type": "application/x-www-form-urlencoded"},
        timeout=10,
    )
    assert response.status_code == 400, response.text


def test_oversized_headers_are_refused_431(edge_gateway: EdgeGateway) -> None:
    with connect(edge_gateway) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\n")
        try:
            for _ in range(1000):  # 8 MB of headers, if nobody stops it
                sock.sendall(b"X-Big: " + b"a" * 8000 + b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            status: int | None = read_response(sock, timeout=PROMPT)[0]
        except ConnectionResetError:
            status = None  # the answer was sent, but the reset (unread data) can overtake it
    assert status in (431, None)
    time.sleep(0.2)
    assert "request headers too large" in edge_gateway.log.read_text()


def test_a_client_still_sending_a_refused_body_reads_the_413_without_a_reset(
    edge_gateway: EdgeGateway,
) -> None:
    # Closing a socket with unread bytes sends a reset, which can destroy the answer on its
    # way: the gateway half-closes (FIN after the answer) and drains a while first (lingering
    # close, as nginx does), so the client sees the 413 and then a clean end of stream.
    with connect(edge_gateway) as sock:
        sock.sendall(
            headers_of("POST", "/auth/login", "Content-Type: application/json", "Content-Length: 8000000")
        )
        sock.sendall(b"a" * 65536)  # unread by the server when it answers
        status, headers, _ = read_response(sock)
        assert status == 413
        assert headers["connection"] == "close"
        sock.settimeout(5)
        assert sock.recv(65536) == b""  # FIN, not a reset
        started = time.monotonic()
        while time.monotonic() - started < 0.5:  # the client had not noticed and goes on sending
            sock.sendall(b"a" * 65536)
            time.sleep(0.05)
