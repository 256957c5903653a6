"""A TCP proxy between a client under test and a real server (RabbitMQ, PostgreSQL, a gRPC
service), to cause real network faults: drop live connections, or refuse new ones for a
while (an outage as the client sees it). The server itself keeps running, so other tests
that share it are not disturbed.

    with TcpProxy("127.0.0.1", 5672) as proxy:
        url = f"amqp://guest:guest@127.0.0.1:{proxy.port}/%2F"
        ...
        proxy.block()      # every connection closed, new ones refused
        proxy.unblock()    # back to normal
        proxy.drop_connections()  # live connections closed once
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import Any


class TcpProxy:
    def __init__(self, target_host: str, target_port: int, *, listen_host: str = "127.0.0.1") -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.listen_host = listen_host
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcp-proxy", daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._blocked = False
        self.connections_made = 0

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> TcpProxy:
        self._thread.start()
        self._call(self._start())
        return self

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        self._call(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- faults --------------------------------------------------------------------------
    def drop_connections(self) -> None:
        """Close every live connection (both sides); new connections are still accepted."""
        self._call(self._drop())

    def block(self) -> None:
        """Close every live connection and refuse new ones until `unblock()`."""
        self._blocked = True
        self._call(self._drop())

    def unblock(self) -> None:
        self._blocked = False

    @property
    def live_connections(self) -> int:
        return len(self._writers) // 2

    # -- internals -----------------------------------------------------------------------
    def _call(self, coro: Coroutine[Any, Any, object]) -> None:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        future.result(timeout=10)

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.listen_host, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._drop()

    async def _drop(self) -> None:
        writers = list(self._writers)
        self._writers.clear()
        for writer in writers:
            with contextlib.suppress(Exception):
                writer.transport.abort()

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        if self._blocked:
            client_writer.transport.abort()
            return
        try:
            server_reader, server_writer = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            client_writer.transport.abort()
            return
        self.connections_made += 1
        self._writers.update((client_writer, server_writer))

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except (OSError, ConnectionError):
                pass
            finally:
                with contextlib.suppress(Exception):
                    writer.close()

        await asyncio.gather(pipe(client_reader, server_writer), pipe(server_reader, client_writer))
        self._writers.discard(client_writer)
        self._writers.discard(server_writer)
