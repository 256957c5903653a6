"""Slow and greedy clients: what one client address may hold of a gateway process.

- `ClientRequestLimitMiddleware` (ASGI): requests in flight per client address; the next
  one is answered 429 with `Retry-After` at once. The address is the TCP peer, or, when the
  peer is one of GATEWAY_TRUSTED_PROXIES, the client that proxy names in `X-Forwarded-For`
  (`forwarded_client`), so this works behind nginx too. (uvicorn's own X-Forwarded-For
  handling is off: it would trust 127.0.0.1 whatever GATEWAY_TRUSTED_PROXIES says.)
- `GuardedHttpProtocol` (uvicorn's httptools protocol, subclassed; `GuardedServerConfig`): a deadline for the
  request line and headers (a client that trickles headers, or connects and says nothing,
  gets 408 and is closed), and a cap on open connections per peer address (beyond it 429
  and closed). uvicorn itself brings the idle keep-alive timeout and `limit_concurrency`
  (503 past GATEWAY_MAX_CONNECTIONS).

Every limit is per process: with GATEWAY_WORKERS=N a client may hold N times as much.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from collections.abc import Iterable
from ipaddress import IPv4Network, IPv6Network, ip_address
from typing import Any, ClassVar

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger(__name__)

# Request line and headers together; httptools itself has no limit (20 MiB of headers were
# taken in whole). Browsers and curl send well under 8 KiB; nginx's default buffers hold 8 KiB.
MAX_HEADER_BYTES = 64 * 1024
# A connection closed while the client still sends (a refused body) is half-closed first and
# drained this long, as nginx's lingering close does: closing at once with unread bytes
# sends a reset, which can destroy the 413 before the client reads it.
LINGER_SECONDS = 2.0


def _raw_response(status: int, reason: str, detail: str) -> bytes:
    body = json.dumps({"detail": detail}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode() + body


TrustedProxies = tuple[IPv4Network | IPv6Network, ...]


def _within(address: str, networks: TrustedProxies) -> bool:
    try:
        ip = ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def forwarded_client(peer: str, forwarded_for: Iterable[str], trusted: TrustedProxies) -> str:
    """The client's address: `peer` (the TCP peer), or, when the peer is a trusted proxy,
    the right-most `X-Forwarded-For` entry that is not a trusted proxy (entries further left
    were written by the client and prove nothing)."""
    if not trusted or not _within(peer, trusted):
        return peer
    hops = [hop.strip() for value in forwarded_for for hop in value.split(",")]
    for hop in reversed(hops):
        if not _within(hop, trusted):
            try:
                return str(ip_address(hop))
            except ValueError:
                return peer
    return peer


class ClientRequestLimitMiddleware:
    """At most `max_requests` requests in flight per client address, of which at most
    `max_uploads` to `upload_paths` (each holds an image of up to GATEWAY_MAX_UPLOAD_BYTES
    in memory while it is read and recognised); 0: no limit. Beyond it: 429, Retry-After."""

    def __init__(
        self,
        app: ASGIApp,
        max_requests: int,
        max_uploads: int = 0,
        upload_paths: Iterable[str] = (),
        trusted_proxies: TrustedProxies = (),
        retry_after_seconds: int = 1,
    ) -> None:
        self.app = app
        self.max_requests = max_requests
        self.max_uploads = max_uploads
        self.upload_paths = frozenset(upload_paths)
        self.trusted_proxies = trusted_proxies
        self.retry_after = str(retry_after_seconds).encode()
        self.in_flight: Counter[str] = Counter()
        self.uploads: Counter[str] = Counter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        if scope["type"] != "http" or not client or not (self.max_requests or self.max_uploads):
            await self.app(scope, receive, send)
            return
        address = str(client[0])
        if self.trusted_proxies:
            forwarded = [
                value.decode("latin-1") for name, value in scope["headers"] if name == b"x-forwarded-for"
            ]
            address = forwarded_client(address, forwarded, self.trusted_proxies)
        upload = scope["path"] in self.upload_paths
        if self.max_requests and self.in_flight[address] >= self.max_requests:
            await self._refuse(
                send, address, f"too many requests in flight from this address (limit {self.max_requests})"
            )
            return
        if upload and self.max_uploads and self.uploads[address] >= self.max_uploads:
            await self._refuse(
                send, address, f"too many uploads in flight from this address (limit {self.max_uploads})"
            )
            return
        self.in_flight[address] += 1
        if upload:
            self.uploads[address] += 1
        try:
            await self.app(scope, receive, send)
        finally:
            _release(self.in_flight, address)
            if upload:
                _release(self.uploads, address)

    async def _refuse(self, send: Send, address: str, detail: str) -> None:
        log.info("client over its limit", extra={"client_address": address, "detail": detail})
        body = json.dumps({"detail": detail}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 429,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", self.retry_after),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _release(counter: Counter[str], address: str) -> None:
    counter[address] -= 1
    if counter[address] <= 0:
        del counter[address]


class GuardedServerConfig(uvicorn.Config):
    """uvicorn's Config plus the limits `GuardedHttpProtocol` reads. (Attributes of the
    config, not of the class: worker processes get the config pickled, not class state.)"""

    def __init__(
        self, *args: Any, header_timeout: float = 10.0, max_connections_per_client: int = 0, **kwargs: Any
    ) -> None:
        super().__init__(*args, **{**kwargs, "http": GuardedHttpProtocol})
        self.header_timeout = header_timeout
        self.max_connections_per_client = max_connections_per_client


class _LingeringTransport:
    """The connection's transport as uvicorn sees it: `close()` lingers (see
    `GuardedHttpProtocol.close_lingering`); everything else is the real transport's."""

    def __init__(self, transport: asyncio.Transport, protocol: GuardedHttpProtocol) -> None:
        self._transport = transport
        self._protocol = protocol

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def close(self) -> None:
        self._protocol.close_lingering()

    def is_closing(self) -> bool:
        return self._protocol.lingering or self._transport.is_closing()


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol with a header deadline and connections capped per peer,
    as `GuardedServerConfig` sets them."""

    # Open connections per peer address in this process (one event loop: no lock needed).
    open_connections: ClassVar[Counter[str]] = Counter()

    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self.header_timeout: float = getattr(config, "header_timeout", 10.0)
        self.max_connections_per_client: int = getattr(config, "max_connections_per_client", 0)
        self._header_timer: asyncio.TimerHandle | None = None
        self._peer: str | None = None
        self._header_bytes = 0
        self._refused = False
        self._raw_transport: asyncio.Transport | None = None
        self._message_pending = False
        self.lingering = False
        self._linger_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._raw_transport = transport
        super().connection_made(_LingeringTransport(transport, self))  # type: ignore[arg-type]
        if self.client:
            self._peer = str(self.client[0])
            self.open_connections[self._peer] += 1
            cap = self.max_connections_per_client
            if cap and self.open_connections[self._peer] > cap:
                log.info("client over its connections", extra={"client_address": self._peer})
                self._refuse(
                    429, "Too Many Requests", f"too many connections from this address (limit {cap})"
                )
                return
        self._arm_header_timer()

    def close_lingering(self) -> None:
        """Close the connection; if the client is still sending a request, send the answer
        and a FIN first and discard what still comes for up to LINGER_SECONDS."""
        raw = self._raw_transport
        if raw is None or raw.is_closing() or self.lingering:
            return
        if not self._message_pending or not raw.can_write_eof():
            raw.close()
            return
        self.lingering = True
        self._disarm_header_timer()
        raw.write_eof()  # after what is buffered: the answer goes out first
        raw.resume_reading()
        self._linger_timer = self.loop.call_later(LINGER_SECONDS, raw.close)

    def eof_received(self) -> None:
        if self.lingering and self._raw_transport is not None:
            self._raw_transport.close()  # the client is done sending: no reset now

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        if self._linger_timer is not None:
            self._linger_timer.cancel()
            self._linger_timer = None
        if self._peer is not None:
            self.open_connections[self._peer] -= 1
            if self.open_connections[self._peer] <= 0:
                del self.open_connections[self._peer]
            self._peer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused or self.lingering:
            return  # answered and closing: parse nothing more
        super().data_received(data)

    def on_url(self, url: bytes) -> None:
        self._count_header_bytes(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_header_bytes(len(name) + len(value) + 4)
        if not self._refused:
            super().on_header(name, value)

    def _count_header_bytes(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > MAX_HEADER_BYTES and not self._refused:
            log.info("request headers too large", extra={"client_address": self._peer})
            self._refuse(431, "Request Header Fields Too Large", "the request headers are too large")

    def _refuse(self, status: int, reason: str, detail: str) -> None:
        self._refused = True
        self._disarm_header_timer()
        self.transport.write(_raw_response(status, reason, detail))
        self.transport.close()

    def on_message_begin(self) -> None:
        self._header_bytes = 0
        self._message_pending = True
        super().on_message_begin()
        # The first byte of a request (the next one, on a kept-alive connection).
        if self._header_timer is None:
            self._arm_header_timer()

    def on_message_complete(self) -> None:
        self._message_pending = False
        super().on_message_complete()

    def on_headers_complete(self) -> None:
        self._disarm_header_timer()
        if not self._refused:
            super().on_headers_complete()

    def _arm_header_timer(self) -> None:
        self._disarm_header_timer()
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a request is being answered; its body has its own deadlines
        log.info("request headers too slow", extra={"client_address": self._peer})
        self._refuse(408, "Request Timeout", "the request headers did not arrive in time")
