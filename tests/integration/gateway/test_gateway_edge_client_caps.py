"""The edge under greedy clients (issue 14, item 2): requests in flight and connections
capped per client address, one address against another, and per forwarded client behind a
trusted proxy only. Against `python -m gateway` over raw sockets (edge_gateway.py)."""

from __future__ import annotations

import socket
import time

import httpx

from tests.integration.gateway.edge_gateway import (
    HEADER_TIMEOUT,
    PER_CLIENT_CONNECTIONS,
    PER_CLIENT_REQUESTS,
    PROXY,
    EdgeGateway,
    closed_by_server,
    connect,
    headers_of,
    read_response,
)


def test_requests_in_flight_are_capped_per_client_address(edge_gateway: EdgeGateway) -> None:
    holders = [connect(edge_gateway) for _ in range(PER_CLIENT_REQUESTS)]
    try:
        # Each holds a request in flight: headers in, the body still to come.
        for sock in holders:
            sock.sendall(
                headers_of("POST", "/auth/login", "Content-Type: application/json", "Content-Length: 50")
            )
        time.sleep(0.3)
        over = httpx.get(f"{edge_gateway.url}/healthz", timeout=5)
        assert over.status_code == 429
        assert over.headers["retry-after"] == "1"
        # Another address still gets through.
        with connect(edge_gateway, source="127.0.0.2") as other:
            other.sendall(headers_of("GET", "/healthz"))
            assert read_response(other)[0] == 200
    finally:
        for sock in holders:
            sock.close()
    deadline = time.monotonic() + 5
    while httpx.get(f"{edge_gateway.url}/healthz", timeout=5).status_code != 200:
        assert time.monotonic() < deadline, "the slots were not given back"
        time.sleep(0.1)


def test_connections_are_capped_per_client_address(edge_gateway: EdgeGateway) -> None:
    idle = [connect(edge_gateway) for _ in range(PER_CLIENT_CONNECTIONS)]
    try:
        time.sleep(0.2)
        with connect(edge_gateway) as extra:
            status, _, _ = read_response(extra, timeout=HEADER_TIMEOUT / 2)
            assert status == 429
            assert closed_by_server(extra)
        with connect(edge_gateway, source="127.0.0.2") as other:
            other.sendall(headers_of("GET", "/healthz"))
            assert read_response(other)[0] == 200
    finally:
        for sock in idle:
            sock.close()


def hold_requests(edge_gateway: EdgeGateway, source: str, count: int, *extra: str) -> list[socket.socket]:
    """`count` requests in flight from `source`: headers in, the body still to come."""
    holders = [connect(edge_gateway, source=source) for _ in range(count)]
    for sock in holders:
        sock.sendall(
            headers_of("POST", "/auth/login", "Content-Type: application/json", "Content-Length: 50", *extra)
        )
    time.sleep(0.3)
    return holders


def status_of_get(edge_gateway: EdgeGateway, source: str, *extra: str) -> int:
    with connect(edge_gateway, source=source) as sock:
        sock.sendall(headers_of("GET", "/healthz", *extra))
        return read_response(sock)[0]


def test_behind_a_trusted_proxy_requests_are_capped_per_forwarded_client(edge_gateway: EdgeGateway) -> None:
    holders = hold_requests(edge_gateway, PROXY, PER_CLIENT_REQUESTS, "X-Forwarded-For: 10.0.0.1")
    try:
        assert status_of_get(edge_gateway, PROXY, "X-Forwarded-For: 10.0.0.1") == 429
        # Another client behind the same proxy still gets through.
        assert status_of_get(edge_gateway, PROXY, "X-Forwarded-For: 10.0.0.2") == 200
        # What the client wrote left of the proxy's entry proves nothing.
        assert status_of_get(edge_gateway, PROXY, "X-Forwarded-For: 10.0.0.2, 10.0.0.1") == 429
    finally:
        for sock in holders:
            sock.close()


def test_x_forwarded_for_from_an_untrusted_peer_is_ignored(edge_gateway: EdgeGateway) -> None:
    holders = hold_requests(edge_gateway, "127.0.0.1", PER_CLIENT_REQUESTS)
    try:
        # 127.0.0.1 is no proxy of ours (uvicorn would have trusted it): no way around the cap.
        assert status_of_get(edge_gateway, "127.0.0.1", "X-Forwarded-For: 10.0.0.7") == 429
    finally:
        for sock in holders:
            sock.close()
