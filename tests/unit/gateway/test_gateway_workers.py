"""The listening socket the gateway hands to its uvicorn workers (GATEWAY_WORKERS > 1)."""

from __future__ import annotations

import asyncio
import socket

import uvicorn

from gateway.__main__ import _tcp_listener


async def test_connections_accepted_by_worker_sockets_send_without_delay() -> None:
    # Without TCP_NODELAY on accepted sockets every keep-alive response waits ~40 ms for the
    # client's delayed ACK (Nagle): asyncio sets it only when the listener says IPPROTO_TCP.
    listener = _tcp_listener(uvicorn.Config("gateway.app:create_app", host="127.0.0.1", port=0))
    accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    class Report(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            sock = transport.get_extra_info("socket")
            accepted.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            transport.close()

    server = await asyncio.get_running_loop().create_server(Report, sock=listener)
    try:
        host, port = listener.getsockname()[:2]
        _, writer = await asyncio.open_connection(host, port)
        assert await asyncio.wait_for(accepted, 10) != 0
        writer.close()
    finally:
        server.close()
        await server.wait_closed()
