"""The edge under slow clients (issue 14, item 2): a stalled or trickled body and trickled
or missing headers are answered 408 at their deadlines. Against `python -m gateway` over raw
sockets (edge_gateway.py)."""

from __future__ import annotations

import socket
import time

from tests.integration.gateway.edge_gateway import (
    BODY_IDLE_TIMEOUT,
    BODY_TIMEOUT,
    HEADER_TIMEOUT,
    PROMPT,
    EdgeGateway,
    connect,
    headers_of,
    read_response,
    timed_response,
)


def test_a_stalled_body_is_answered_408(edge_gateway: EdgeGateway) -> None:
    with connect(edge_gateway) as sock:
        sock.sendall(
            headers_of("POST", "/auth/login", "Content-Type: application/json", "Content-Length: 100")
        )
        sock.sendall(b'{"username": ')
        status, headers, elapsed = timed_response(sock)
    assert status == 408
    assert elapsed < BODY_IDLE_TIMEOUT + PROMPT
    assert headers["connection"] == "close"


def test_a_trickled_body_is_answered_408_at_the_body_deadline(edge_gateway: EdgeGateway) -> None:
    with connect(edge_gateway) as sock:
        sock.sendall(
            headers_of("POST", "/auth/login", "Content-Type: application/json", "Content-Length: 1000")
        )
        started = time.monotonic()
        sock.settimeout(0.3)
        status = None
        while time.monotonic() - started < BODY_TIMEOUT + 3:
            try:
                sock.sendall(b" ")  # one byte, well within the idle timeout, again and again
                data = sock.recv(65536, socket.MSG_PEEK)
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
            if data:
                status, _, _ = read_response(sock)
                break
        elapsed = time.monotonic() - started
    assert status == 408
    assert BODY_TIMEOUT - 0.5 < elapsed < BODY_TIMEOUT + PROMPT


def test_trickled_headers_are_answered_408(edge_gateway: EdgeGateway) -> None:
    with connect(edge_gateway) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\n")
        sock.settimeout(0.2)
        status = None
        for index in range(100):
            try:
                sock.sendall(f"X-Slow-{index}: 1\r\n".encode())
                if sock.recv(65536, socket.MSG_PEEK):
                    status, _, _ = read_response(sock)
                    break
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
        elapsed = time.monotonic() - started
    assert status == 408
    assert elapsed < HEADER_TIMEOUT + PROMPT


def test_a_connection_that_says_nothing_is_closed(edge_gateway: EdgeGateway) -> None:
    with connect(edge_gateway) as sock:
        started = time.monotonic()
        status, _, _ = read_response(sock)
        assert status == 408
        assert time.monotonic() - started < HEADER_TIMEOUT + PROMPT
