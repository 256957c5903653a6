"""The "OCR completed" mail through the real RabbitMQ: once per successful call, with the
broker up and after an outage (a TCP proxy cuts ocr_svc off the real broker)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator

import pytest

from harness.images import render_text_image
from harness.tcp_proxy import TcpProxy
from ocr_svc.engines.rapid import RapidOcrEngine
from ocrmesh.notify.v1 import email_pb2
from tests.integration.ocr.conftest import StartOcr
from tests.integration.ocr.ocr_support import Broker, completed_of
from tests.unit.ocr.scripted_engine import ScriptedEngine

pytestmark = pytest.mark.integration

IMAGE = render_text_image(["Mail me the text"], size=28)


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    with TcpProxy("127.0.0.1", 5672) as running:
        yield running


def via_proxy(url: str, proxy: TcpProxy) -> str:
    return url.replace("127.0.0.1:5672", f"127.0.0.1:{proxy.port}")


async def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.05)


async def take_messages(broker: Broker, count: int, timeout: float = 30.0) -> list[email_pb2.EmailRequested]:
    taken: list[email_pb2.EmailRequested] = []
    deadline = time.monotonic() + timeout
    while len(taken) < count and time.monotonic() < deadline:
        taken.extend(await asyncio.to_thread(broker.take_all))
        await asyncio.sleep(0.05)
    # Anything more than expected would be a duplicate: give it a moment to show up.
    await asyncio.sleep(0.3)
    taken.extend(await asyncio.to_thread(broker.take_all))
    return taken


async def test_each_successful_call_publishes_one_mail_to_the_caller(
    start_ocr: StartOcr, rapid_engine: RapidOcrEngine, broker: Broker
) -> None:
    ocr = await start_ocr(rapid_engine)
    texts = []
    for n in range(3):
        events = await ocr.events(
            IMAGE,
            token=ocr.token(email=f"user{n}@example.com"),
            metadata=(("x-request-id", f"mail-test-{n}"),),
            filename=f"scan-{n}.png",
        )
        texts.append(completed_of(events).full_text)
    messages = await take_messages(broker, 3)
    assert len(messages) == 3
    by_recipient = {m.to: m for m in messages}
    assert set(by_recipient) == {"user0@example.com", "user1@example.com", "user2@example.com"}
    for n in range(3):
        mail = by_recipient[f"user{n}@example.com"]
        assert mail.kind == email_pb2.EMAIL_KIND_OCR_COMPLETED
        assert mail.correlation_id == f"mail-test-{n}"
        assert texts[n] in mail.body
        assert f"scan-{n}.png" in mail.body
    # The broker confirms just after it queues: the count follows shortly.
    await wait_until(lambda: ocr.app.mailer.published == 3)


async def test_a_failed_call_sends_no_mail(
    start_ocr: StartOcr, rapid_engine: RapidOcrEngine, broker: Broker
) -> None:
    ocr = await start_ocr(rapid_engine)
    with pytest.raises(Exception, match="INVALID_ARGUMENT"):
        await ocr.events(b"not an image")
    await ocr.events(IMAGE)
    messages = await take_messages(broker, 1)
    assert len(messages) == 1


async def test_a_broker_outage_neither_fails_nor_holds_the_call_and_the_mail_follows(
    start_ocr: StartOcr, rabbitmq_url: str, proxy: TcpProxy, broker: Broker
) -> None:
    engine = ScriptedEngine(["during the outage"])
    ocr = await start_ocr(engine, rabbitmq_url=via_proxy(rabbitmq_url, proxy))
    await ocr.events(IMAGE)  # connects the publisher through the proxy
    assert len(await take_messages(broker, 1)) == 1

    proxy.block()
    events = await asyncio.wait_for(ocr.events(IMAGE), timeout=10)
    assert completed_of(events).full_text == "during the outage"
    # The call is over while its mail still waits: the RPC did not wait for the broker.
    assert ocr.app.mailer.pending == 1
    await asyncio.sleep(1.0)
    assert await asyncio.to_thread(broker.take_all) == []

    proxy.unblock()
    messages = await take_messages(broker, 1, timeout=60)
    assert len(messages) == 1
    assert messages[0].body.count("during the outage") == 1
    await wait_until(lambda: ocr.app.mailer.pending == 0)
    assert ocr.app.mailer.published == 2
    assert ocr.app.mailer.dropped == 0

    # After the outage, new calls publish as before.
    await ocr.events(IMAGE)
    assert len(await take_messages(broker, 1)) == 1


async def test_mails_still_unsent_when_the_service_stops_are_counted_as_dropped(
    start_ocr: StartOcr, rabbitmq_url: str, proxy: TcpProxy, broker: Broker
) -> None:
    ocr = await start_ocr(ScriptedEngine(["never mailed"]), rabbitmq_url=via_proxy(rabbitmq_url, proxy))
    proxy.block()
    await ocr.events(IMAGE)
    await ocr.app.stop(0.5)
    assert ocr.app.mailer.dropped == 1
    assert ocr.app.mailer.published == 0
    proxy.unblock()
    await asyncio.sleep(0.5)
    assert await asyncio.to_thread(broker.take_all) == []
