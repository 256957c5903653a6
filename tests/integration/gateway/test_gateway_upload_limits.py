"""Uploads in flight per client address (issue 14, item 2): each authenticated upload holds
its image in memory while it is read, so one address may hold only a few at a time; another
address still gets through. A real uvicorn, the fake services of fakes.py and real tokens."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx
import pytest

from tests.integration.gateway.fakes import PNG_BYTES

pytestmark = pytest.mark.timeout(60)

BOUNDARY = "edgeboundary"
BODY = (
    (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    + PNG_BYTES
    + f"\r\n--{BOUNDARY}--\r\n".encode()
)


@dataclass
class Upload:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    async def finish(self) -> None:
        self.writer.write(BODY[-10:])
        await self.writer.drain()

    async def status(self) -> int:
        line = await asyncio.wait_for(self.reader.readline(), 10)
        return int(line.split()[1])


async def slow_upload(port: int, token: str, source: str) -> Upload:
    """An authenticated upload whose body has begun but not ended: it stays in flight."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    head = (
        f"POST /ocr HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {len(BODY)}\r\n\r\n"
    )
    writer.write(head.encode() + BODY[:-10])
    await writer.drain()
    return Upload(reader, writer)


async def test_uploads_in_flight_are_capped_per_client_address(mesh, live_gateway) -> None:
    settings = mesh.settings(gateway_max_uploads_per_client=2, gateway_body_idle_timeout_seconds=10)
    gateway = await live_gateway(settings)
    port = int(gateway.url.rsplit(":", 1)[1])
    token = mesh.token()
    held = [await slow_upload(port, token, "127.0.0.1") for _ in range(2)]
    try:
        await asyncio.sleep(0.3)  # both past the token check, reading their bodies
        third = await slow_upload(port, token, "127.0.0.1")
        assert await third.status() == 429
        third.writer.close()
        async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as client:
            # Other requests from the same address are not uploads: still served.
            assert (await client.get("/healthz")).status_code == 200
        # Another address uploads all the same.
        other = await slow_upload(port, token, "127.0.0.2")
        await other.finish()
        assert await other.status() == 200
        other.writer.close()
        # A held upload that ends gives its slot back.
        await held[0].finish()
        assert await held[0].status() == 200
        again = await slow_upload(port, token, "127.0.0.1")
        await again.finish()
        assert await again.status() == 200
        again.writer.close()
    finally:
        for upload in held:
            upload.writer.close()
