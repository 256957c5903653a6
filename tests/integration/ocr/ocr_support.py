"""Helpers for ocr_svc integration tests: a running service on port 0 with a real token
issuer, a real RabbitMQ queue per test, and a client."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import grpc
import pika
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from harness.tokens import TokenIssuerForTests
from ocr_svc.app import OcrApp
from ocr_svc.engines.base import OcrEngine, RecognizedLine, RgbImage, TextRegion
from ocrmesh.notify.v1 import email_pb2
from ocrmesh.ocr.v1 import ocr_pb2, ocr_pb2_grpc
from ocrmesh.platform.grpc_client import bearer_metadata, create_channel
from ocrmesh.rules.email_events import EmailTopology


@dataclass
class RunningOcr:
    """A started service and a way to call it as a signed-in user."""

    app: OcrApp
    issuer: TokenIssuerForTests
    channel: aio.Channel
    starting: asyncio.Task[None] | None = None

    @property
    def stub(self) -> ocr_pb2_grpc.OcrServiceAsyncStub:
        return ocr_pb2_grpc.OcrServiceStub(self.channel)  # type: ignore[return-value]

    def token(self, email: str = "ada@example.com") -> str:
        return self.issuer.mint(email=email, name="Ada Lovelace")

    def recognize(
        self,
        image: bytes,
        *,
        token: str | None = None,
        metadata: Sequence[tuple[str, str]] = (),
        filename: str = "",
        languages: Sequence[str] = (),
    ) -> grpc.aio.UnaryStreamCall[ocr_pb2.RecognizeRequest, ocr_pb2.RecognizeResponse]:
        auth = bearer_metadata(token if token is not None else self.token())
        return self.stub.Recognize(
            ocr_pb2.RecognizeRequest(image=image, filename=filename, languages=languages),
            metadata=(*auth, *metadata),
            timeout=60,
        )

    async def events(self, image: bytes, **kwargs: object) -> list[ocr_pb2.RecognizeResponse]:
        return [event async for event in self.recognize(image, **kwargs)]  # type: ignore[arg-type]

    async def events_without_token(self, image: bytes) -> list[ocr_pb2.RecognizeResponse]:
        call = self.stub.Recognize(ocr_pb2.RecognizeRequest(image=image), timeout=60)
        return [event async for event in call]

    async def health(self, service: str = "") -> int:
        reply = await health_pb2_grpc.HealthStub(self.channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=3
        )
        return int(reply.status)


def lines_of(events: Sequence[ocr_pb2.RecognizeResponse]) -> list[str]:
    return [event.line.text for event in events if event.WhichOneof("event") == "line"]


def completed_of(events: Sequence[ocr_pb2.RecognizeResponse]) -> ocr_pb2.Completed:
    last = events[-1]
    assert last.WhichOneof("event") == "completed", last
    return last.completed


async def client_channel(port: int) -> AsyncIterator[aio.Channel]:
    channel = create_channel(f"127.0.0.1:{port}", max_message_bytes=64 * 1024 * 1024)
    try:
        yield channel
    finally:
        await channel.close()


class Broker:
    """A blocking pika connection for reading what ocr_svc published and cleaning up."""

    def __init__(self, url: str, topology: EmailTopology) -> None:
        self.topology = topology
        self.connection = pika.BlockingConnection(pika.URLParameters(url))
        self.channel = self.connection.channel()
        # Declared up front (identically to the service) so reads work before any publish.
        topology.declare(self.channel)

    def take_all(self) -> list[email_pb2.EmailRequested]:
        events = []
        while True:
            method, _, body = self.channel.basic_get(self.topology.queue, auto_ack=True)
            if method is None:
                return events
            event = email_pb2.EmailRequested()
            event.ParseFromString(body)
            events.append(event)

    def delete_queues(self) -> None:
        self.topology.delete(self.channel)

    def close(self) -> None:
        if self.connection.is_open:
            self.connection.close()


class GatedLastLine:
    """Wraps a real engine; the last region of a multi-line image is read only once `gate`
    is set, and `last_read_done` tells when that read finished. (Single-line images, like
    the warm-up's, pass straight through.)"""

    def __init__(self, engine: OcrEngine) -> None:
        self.engine = engine
        self.gate = threading.Event()
        self.last_read_done = threading.Event()
        self._last: TextRegion | None = None
        self.regions = 0

    @property
    def name(self) -> str:
        return self.engine.name

    def load(self) -> None:
        self.engine.load()

    def detect(self, image: RgbImage) -> list[TextRegion]:
        regions = self.engine.detect(image)
        self._last = regions[-1] if regions else None
        self.regions = len(regions)
        return regions

    def read(self, image: RgbImage, region: TextRegion) -> RecognizedLine | None:
        is_last = region is self._last and self.regions > 1
        if is_last and not self.gate.wait(30):
            raise TimeoutError("the test never opened the gate")
        try:
            return self.engine.read(image, region)
        finally:
            if is_last:
                self.last_read_done.set()
