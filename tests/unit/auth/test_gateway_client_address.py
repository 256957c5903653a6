"""The client address the gateway tells auth_svc (its throttles count per address):
X-Forwarded-For is believed only from GATEWAY_TRUSTED_PROXIES, and only its right-most
entry that is not a trusted proxy."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from starlette.requests import Request

from gateway.deps import get_client_address
from gateway.settings import GatewaySettings


def request(peer: str, forwarded: list[str], trusted: str) -> Request:
    settings = GatewaySettings(gateway_trusted_proxies=trusted)
    app = SimpleNamespace(state=SimpleNamespace(backends=SimpleNamespace(settings=settings)))
    headers = [(b"x-forwarded-for", value.encode()) for value in forwarded]
    return Request({"type": "http", "client": (peer, 40000), "headers": headers, "app": app})


@pytest.mark.parametrize(
    ("peer", "forwarded", "trusted", "expected"),
    [
        pytest.param("203.0.113.5", ["1.2.3.4"], "", "203.0.113.5", id="no-trusted-proxies"),
        pytest.param("203.0.113.5", ["1.2.3.4"], "10.0.0.0/8", "203.0.113.5", id="peer-not-trusted"),
        pytest.param("10.0.0.2", ["198.51.100.7"], "10.0.0.0/8", "198.51.100.7", id="one-proxy"),
        pytest.param(
            "10.0.0.2", ["6.6.6.6, 198.51.100.7, 10.0.0.3"], "10.0.0.0/8", "198.51.100.7", id="spoofed-left"
        ),
        pytest.param("10.0.0.2", ["6.6.6.6", "198.51.100.7"], "10.0.0.0/8", "198.51.100.7", id="two-headers"),
        pytest.param("10.0.0.2", ["not-an-ip"], "10.0.0.0/8", "10.0.0.2", id="garbage"),
        pytest.param("10.0.0.2", [], "10.0.0.0/8", "10.0.0.2", id="no-header"),
    ],
)
async def test_x_forwarded_for_is_believed_only_from_trusted_proxies(
    peer: str, forwarded: list[str], trusted: str, expected: str
) -> None:
    assert await get_client_address(request(peer, forwarded, trusted)) == expected
