"""Issue 27: the gateway's `/readyz` is 503 while auth_svc's PostgreSQL is gone and 200 again
after, and `/auth/me` and a login answer within 10 s of the database being back, with nothing
restarted. The real auth_svc in-process (its own scratch database, reached through a TCP
proxy the test cuts and restores), the test OcrService, the gateway app in-process."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pika
import pytest

from auth_svc.keys import generate_key_file
from auth_svc.settings import AuthSettings
from gateway.settings import GatewaySettings
from harness.scratch import create_scratch_database, delete_queues, drop_database
from harness.tcp_proxy import TcpProxy
from ocrmesh.ocr.v1 import ocr_pb2_grpc
from ocrmesh.platform.grpc_server import HostedService, MeshServer, create_server
from ocrmesh.rules.email_events import EmailTopology
from tests.integration.auth.auth_support import RunningAuth
from tests.integration.auth.database_outage import (
    RECOVERED_WITHIN,
    SEEN_WITHIN,
    proxied_database,
    seconds_until,
)
from tests.integration.gateway.fakes import OCR_SERVICE, FakeOcr, gateway_client

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

log = logging.getLogger(__name__)
CODE = "246810"  # every verification code this auth_svc makes
PASSWORD = "correct horse battery"
EMAIL = "ada-readiness@example.com"


@pytest.fixture
def database_url(postgres_admin_url: str, unique_name: str) -> Iterator[str]:
    url = create_scratch_database(postgres_admin_url, f"ocrmesh_{unique_name}")
    yield url
    drop_database(url)


@pytest.fixture
def topology(rabbitmq_url: str, unique_name: str) -> Iterator[EmailTopology]:
    found = EmailTopology.from_prefix(unique_name)
    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq_url))
    try:
        found.declare(connection.channel())
    finally:
        connection.close()
    yield found
    delete_queues(rabbitmq_url, found)


@pytest.fixture
def proxy_and_url(database_url: str) -> Iterator[tuple[TcpProxy, str]]:
    with proxied_database(database_url) as found:
        yield found


@pytest.fixture
async def auth(
    proxy_and_url: tuple[TcpProxy, str], rabbitmq_url: str, topology: EmailTopology, tmp_path: Path
) -> AsyncIterator[RunningAuth]:
    key = tmp_path / "signing.pem"
    generate_key_file(key)
    settings = AuthSettings(
        database_url=proxy_and_url[1],
        rabbitmq_url=rabbitmq_url,
        email_queue=topology.queue,
        auth_host="127.0.0.1",
        auth_port=0,
        environment="test",
        auth_signing_key_file=key,
        auth_key_dir=tmp_path / "keys",
        outbox_poll_seconds=0.2,
        outbox_publish_timeout_seconds=2.0,
    )
    running = await RunningAuth.start(settings, new_code=lambda: CODE)
    yield running
    await running.stop()


@pytest.fixture
async def ocr_server() -> AsyncIterator[tuple[MeshServer, int]]:
    server, port = create_server(
        [HostedService.of(FakeOcr(), ocr_pb2_grpc.add_OcrServiceServicer_to_server, OCR_SERVICE)]
    )
    await server.start()
    yield server, port
    await server.stop(0)


@pytest.fixture
async def client(auth: RunningAuth, ocr_server: tuple[MeshServer, int]) -> AsyncIterator[httpx.AsyncClient]:
    settings = GatewaySettings(
        auth_addr=f"127.0.0.1:{auth.port}",
        ocr_addr=f"127.0.0.1:{ocr_server[1]}",
        grpc_timeout_seconds=10.0,
    )
    async with gateway_client(settings) as found:
        yield found


async def test_readyz_follows_auth_svcs_database_and_calls_answer_again_without_a_restart(
    client: httpx.AsyncClient,
    proxy_and_url: tuple[TcpProxy, str],
) -> None:
    proxy = proxy_and_url[0]
    credentials = {"username": EMAIL, "password": PASSWORD}
    registered = await client.post(
        "/auth/register", json={"name": "Ada", "email": EMAIL, "password": PASSWORD}
    )
    assert registered.status_code == 202
    assert (await client.post("/auth/verify_otp", json={"email": EMAIL, "otp": CODE})).status_code == 200
    login = await client.post("/auth/login", json=credentials)
    assert login.status_code == 200
    bearer = {"Authorization": f"Bearer {login.json()['access_token']}"}
    assert (await client.get("/auth/me", headers=bearer)).status_code == 200
    assert (await client.get("/readyz")).status_code == 200

    proxy.block()
    cut = time.monotonic()

    async def not_ready() -> bool:
        response = await client.get("/readyz")
        return response.status_code == 503

    seen_down = await seconds_until(not_ready, SEEN_WITHIN, "/readyz 503 after the cut", since=cut, every=0.2)
    response = await client.get("/readyz")
    assert response.json() == {"status": "not ready", "checks": {"auth": "NOT_SERVING", "ocr": "SERVING"}}
    assert (await client.get("/healthz")).status_code == 200  # the gateway itself is alive
    assert (await client.post("/auth/login", json=credentials)).status_code == 503
    assert (await client.get("/auth/me", headers=bearer)).status_code == 503

    proxy.unblock()
    restored = time.monotonic()

    async def ready() -> bool:
        return (await client.get("/readyz")).status_code == 200

    seen_up = await seconds_until(
        ready, RECOVERED_WITHIN, "/readyz 200 after the restore", since=restored, every=0.2
    )
    # Ready again: the first calls succeed (auth_svc renewed its pools before saying so).
    me = await client.get("/auth/me", headers=bearer)
    assert me.status_code == 200
    assert me.json()["email"] == EMAIL
    me_answered = time.monotonic() - restored
    assert (await client.post("/auth/login", json=credentials)).status_code == 200
    login_answered = time.monotonic() - restored
    assert login_answered < RECOVERED_WITHIN
    measured = {
        "readyz_503_after_cut_s": round(seen_down, 2),
        "readyz_200_after_restore_s": round(seen_up, 2),
        "me_after_restore_s": round(me_answered, 2),
        "login_after_restore_s": round(login_answered, 2),
    }
    log.info("gateway readiness through a database outage: %s", measured, extra=measured)
