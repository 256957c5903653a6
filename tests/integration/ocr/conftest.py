"""Fixtures for ocr_svc integration tests: the real default engine (loaded once), a real
token issuer, a real RabbitMQ queue per test, and a factory for running services."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

from harness.tokens import TokenIssuerForTests
from ocr_svc.app import create_app
from ocr_svc.engines import warm_up
from ocr_svc.engines.base import OcrEngine
from ocr_svc.engines.rapid import RapidOcrEngine
from ocr_svc.settings import OcrSettings
from ocrmesh.platform.grpc_client import create_channel
from ocrmesh.rules.email_events import EmailTopology
from tests.integration.ocr.ocr_support import Broker, RunningOcr
from tests.unit.ocr.scripted_engine import ScriptedEngine

StartOcr = Callable[..., Awaitable[RunningOcr]]


@pytest.fixture(scope="session")
def rapid_engine() -> RapidOcrEngine:
    """The default engine, loaded and warmed once for the whole run (it is thread-safe)."""
    engine = RapidOcrEngine(threads=2)
    warm_up(engine)
    return engine


@pytest.fixture
def topology(run_id: str) -> EmailTopology:
    return EmailTopology.from_prefix(f"ocr_{run_id}_{uuid.uuid4().hex[:6]}", retry_delays=(1.0,))


@pytest.fixture
def broker(rabbitmq_url: str, topology: EmailTopology) -> Iterator[Broker]:
    broker = Broker(rabbitmq_url, topology)
    yield broker
    broker.delete_queues()
    broker.close()


@pytest.fixture
async def token_issuer() -> AsyncIterator[TokenIssuerForTests]:
    async with TokenIssuerForTests() as issuer:
        yield issuer


@pytest.fixture
async def start_ocr(
    token_issuer: TokenIssuerForTests, rabbitmq_url: str, topology: EmailTopology, broker: Broker
) -> AsyncIterator[StartOcr]:
    """`await start_ocr(engine, **settings)`: a running ocr_svc on a free port that verifies
    tokens with `token_issuer` and publishes mails to this test's queue."""
    started: list[RunningOcr] = []

    async def start(engine: OcrEngine, *, background: bool = False, **overrides: Any) -> RunningOcr:
        values: dict[str, Any] = {
            "ocr_port": 0,
            "ocr_host": "127.0.0.1",
            "ocr_workers": 2,
            "ocr_queue_size": 4,
            "auth_addr": token_issuer.target,
            "rabbitmq_url": rabbitmq_url,
            "email_queue": topology.queue,
            "email_retry_delays": topology.retry_delays,
            "shutdown_grace_seconds": 2.0,
            "ocr_email_publish_timeout": 1.0,
        }
        values.update(overrides)
        app = create_app(OcrSettings(**values), engine=engine)
        channel = create_channel(f"127.0.0.1:{app.port}", max_message_bytes=64 * 1024 * 1024)
        running = RunningOcr(app=app, issuer=token_issuer, channel=channel)
        started.append(running)
        # A scripted engine has nothing to warm, and warming would spend its script.
        warm = not isinstance(engine, ScriptedEngine)
        if background:
            # The caller watches health while the engine loads.
            running.starting = asyncio.create_task(app.start(warm=warm))
        else:
            await app.start(warm=warm)
        return running

    yield start
    for running in started:
        if running.starting is not None and not running.starting.done():
            running.starting.cancel()
        with contextlib.suppress(BaseException):
            if running.starting is not None:
                await running.starting
        await running.channel.close()
        await running.app.stop(2.0)
