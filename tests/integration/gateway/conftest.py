"""The gateway against the test servicers of `fakes.py` on real in-process gRPC servers
(port 0): through an in-process client, or a real uvicorn for what only a socket shows."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest
import uvicorn

from gateway.app import create_app
from gateway.settings import GatewaySettings
from harness.tokens import TokenIssuerForTests
from ocrmesh.auth.v1 import auth_pb2_grpc
from ocrmesh.ocr.v1 import ocr_pb2_grpc
from ocrmesh.platform.grpc_server import HostedService, create_server
from tests.integration.gateway.edge_gateway import EdgeGateway, running_edge_gateway
from tests.integration.gateway.fakes import AUTH_SERVICE, OCR_SERVICE, FakeAuth, FakeOcr, Mesh, gateway_client


@pytest.fixture
async def mesh() -> AsyncIterator[Mesh]:
    issuer = TokenIssuerForTests()
    auth = FakeAuth(issuer)
    ocr = FakeOcr()
    auth_server, auth_port = create_server(
        [HostedService.of(auth, auth_pb2_grpc.add_AuthServiceServicer_to_server, AUTH_SERVICE)],
        host="127.0.0.1",
    )
    ocr_server, ocr_port = create_server(
        [HostedService.of(ocr, ocr_pb2_grpc.add_OcrServiceServicer_to_server, OCR_SERVICE)], host="127.0.0.1"
    )
    await auth_server.start()
    await ocr_server.start()
    the_mesh = Mesh(issuer, auth, ocr, auth_server, ocr_server, auth_port, ocr_port)
    yield the_mesh
    await the_mesh.auth_server.stop(0)
    await the_mesh.ocr_server.stop(0)


@pytest.fixture
def gateway_settings(mesh: Mesh) -> GatewaySettings:
    return mesh.settings()


@pytest.fixture
async def client(gateway_settings: GatewaySettings) -> AsyncIterator[httpx.AsyncClient]:
    async with gateway_client(gateway_settings) as c:
        yield c


@pytest.fixture(scope="module")
def edge_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeGateway]:
    """`python -m gateway` as a process with small limits (edge_gateway.py), one per test
    module: what the edge tests drive over raw sockets."""
    with running_edge_gateway(tmp_path_factory.mktemp("edge") / "gateway.log") as gateway:
        yield gateway


@dataclass
class LiveGateway:
    url: str
    server: uvicorn.Server


@pytest.fixture
async def live_gateway() -> AsyncIterator[Callable[..., Awaitable[LiveGateway]]]:
    """Starts the gateway under a real uvicorn, in this event loop, on a free port, so
    responses travel over a socket exactly as a client sees them (flushes included).
    `config`: uvicorn's configuration to serve with (e.g. `gateway.__main__.server_config`,
    what `python -m gateway` runs); by default the app alone with uvicorn's defaults."""
    servers: list[tuple[uvicorn.Server, asyncio.Task[None]]] = []

    async def start(settings: GatewaySettings, *, config: uvicorn.Config | None = None) -> LiveGateway:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        if config is None:
            config = uvicorn.Config(create_app(settings), log_config=None, access_log=False, lifespan="on")
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        servers.append((server, task))
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("uvicorn stopped during start-up")
            await asyncio.sleep(0.01)
        return LiveGateway(url=f"http://127.0.0.1:{port}", server=server)

    yield start
    for server, task in servers:
        server.should_exit = True
        await asyncio.wait_for(task, 15)
