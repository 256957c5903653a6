"""Connections to the broker drop (cut by a proxy, or closed from the broker side): the
publisher and the notifier reconnect by themselves and no confirmed event is lost."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pika
import pika.exceptions
import pytest

from harness.tcp_proxy import TcpProxy
from notifier.transports import SmtpTransport
from ocrmesh.notify.v1 import email_pb2
from ocrmesh.rules.email_events import (
    AsyncEmailPublisher,
    EmailPublisher,
    EmailTopology,
    PublishError,
    TopologyError,
    new_email_event,
)
from tests.integration.notifier.notifier_support import (
    Broker,
    RunningNotifier,
    SmtpSink,
    close_named_connections,
    wait_until,
)

pytestmark = pytest.mark.integration


def event(i: int = 0) -> email_pb2.EmailRequested:
    return new_email_event(
        to=f"u{i}@example.com", subject="s", body="b", kind=email_pb2.EMAIL_KIND_OCR_COMPLETED
    )


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    with TcpProxy("127.0.0.1", 5672) as p:
        yield p


def proxied(url: str, proxy: TcpProxy) -> str:
    return url.replace("127.0.0.1:5672", f"127.0.0.1:{proxy.port}")


def test_the_publisher_reconnects_after_its_connection_drops(
    rabbitmq_url: str, topology: EmailTopology, proxy: TcpProxy, broker: Broker
) -> None:
    with EmailPublisher(proxied(rabbitmq_url, proxy), topology) as publisher:
        publisher.publish(event(1))
        proxy.drop_connections()
        publisher.publish(event(2))
        assert publisher.connections_opened == 2
    assert broker.depth(topology.queue) == 2


def test_the_publisher_raises_when_the_broker_is_unreachable_and_recovers_after(
    rabbitmq_url: str, topology: EmailTopology, proxy: TcpProxy, broker: Broker
) -> None:
    with EmailPublisher(proxied(rabbitmq_url, proxy), topology, confirm_timeout=5) as publisher:
        publisher.publish(event(1))
        proxy.block()
        with pytest.raises(PublishError, match="unreachable"):
            publisher.publish(event(2), timeout=1.0)

        # An outage shorter than the timeout is invisible to the caller.
        threading.Timer(1.0, proxy.unblock).start()
        publisher.publish(event(3), timeout=10.0)
    assert broker.depth(topology.queue) == 2


def test_an_unroutable_event_is_an_error_not_a_silent_confirm(
    rabbitmq_url: str, topology: EmailTopology, broker: Broker
) -> None:
    with EmailPublisher(rabbitmq_url, topology) as publisher:
        publisher.publish(event(1))
        broker.channel.queue_delete(topology.queue)  # the queue vanished behind our back
        with pytest.raises(PublishError, match="unroutable"):
            publisher.publish(event(2))


def test_the_publisher_is_reconnected_after_a_broker_side_close(
    rabbitmq_url: str, topology: EmailTopology, broker: Broker, unique_name: str
) -> None:
    with EmailPublisher(rabbitmq_url, topology, connection_name=unique_name) as publisher:
        publisher.publish(event(1))
        assert close_named_connections(unique_name) == 1
        publisher.publish(event(2))
        assert publisher.connections_opened == 2
    assert broker.depth(topology.queue) == 2


async def test_the_async_publisher_does_not_block_the_event_loop(
    rabbitmq_url: str, topology: EmailTopology, proxy: TcpProxy, broker: Broker
) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.05)
            ticks += 1

    async with AsyncEmailPublisher(proxied(rabbitmq_url, proxy), topology) as publisher:
        await asyncio.gather(*(publisher.publish(event(i)) for i in range(20)))
        task = asyncio.create_task(ticker())
        proxy.block()
        asyncio.get_running_loop().call_later(1.0, proxy.unblock)
        started = time.monotonic()
        await publisher.publish(event(99), timeout=10)  # waits out the outage
        waited = time.monotonic() - started
        task.cancel()
    assert waited >= 0.9
    assert ticks >= 5  # the loop kept running while the publish waited
    assert broker.depth(topology.queue) == 21


def test_the_notifier_recovers_from_dropped_connections_without_losing_events(
    rabbitmq_url: str,
    topology: EmailTopology,
    proxy: TcpProxy,
    smtp_sink: SmtpSink,
    broker: Broker,
    capsys: pytest.CaptureFixture[str],
) -> None:
    events = [event(i) for i in range(300)]
    notifier = RunningNotifier(
        proxied(rabbitmq_url, proxy), topology, SmtpTransport("127.0.0.1", smtp_sink.port), prefetch=20
    ).start()
    try:
        with EmailPublisher(rabbitmq_url, topology) as publisher:
            for i, e in enumerate(events):
                publisher.publish(e)
                if i in (100, 200):
                    proxy.drop_connections()
        expected = {f"<{e.event_id}@ocrmesh.test>" for e in events}
        wait_until(lambda: set(smtp_sink.handler.message_ids()) >= expected, 60, "every mail")
        wait_until(lambda: broker.depth(topology.queue) == 0, 15, "an empty queue")
    finally:
        notifier.stop()
    ids = smtp_sink.handler.message_ids()
    stats = notifier.consumer.stats
    with capsys.disabled():  # the counts belong in the test output, not only with -s
        print(
            f"\nmails={len(ids)} unique={len(set(ids))} "
            f"reconnects={stats.reconnects} dedup-acked={stats.duplicates}"
        )
    assert stats.reconnects >= 1
    # The in-process dedup set catches redeliveries of mails already sent.
    assert len(ids) == len(set(ids)) == 300


def test_the_notifier_recovers_from_a_broker_side_close(
    rabbitmq_url: str, topology: EmailTopology, smtp_sink: SmtpSink, unique_name: str
) -> None:
    notifier = RunningNotifier(
        rabbitmq_url, topology, SmtpTransport("127.0.0.1", smtp_sink.port), name=unique_name
    ).start()
    try:
        with EmailPublisher(rabbitmq_url, topology) as publisher:
            publisher.publish(event(1))
            wait_until(lambda: smtp_sink.handler.count() == 1, 15, "the first mail")
            assert close_named_connections(unique_name) == 1
            publisher.publish(event(2))
            wait_until(lambda: smtp_sink.handler.count() == 2, 30, "the mail after the close")
    finally:
        notifier.stop()
    assert notifier.consumer.stats.reconnects == 1


def test_an_idle_publisher_keeps_its_connection_alive_with_heartbeats(
    rabbitmq_url: str, topology: EmailTopology, broker: Broker
) -> None:
    with EmailPublisher(rabbitmq_url, topology, heartbeat=1) as publisher:
        publisher.publish(event(1))
        time.sleep(4)  # the broker drops a connection silent for ~2-3 heartbeats
        publisher.publish(event(2))
        assert publisher.connections_opened == 1
    assert broker.depth(topology.queue) == 2


def test_connect_fails_fast_on_a_queue_declared_with_other_arguments(
    rabbitmq_url: str, topology: EmailTopology, broker: Broker
) -> None:
    broker.channel.queue_declare(topology.queue, durable=False)  # e.g. left by the old system
    with (
        EmailPublisher(rabbitmq_url, topology) as publisher,
        pytest.raises(TopologyError, match="other arguments"),
    ):
        publisher.connect(timeout=5)


def test_connect_raises_when_the_broker_is_unreachable_and_succeeds_when_it_is_back(
    rabbitmq_url: str, topology: EmailTopology, proxy: TcpProxy
) -> None:
    with EmailPublisher(proxied(rabbitmq_url, proxy), topology) as publisher:
        proxy.block()
        with pytest.raises(PublishError, match="unreachable"):
            publisher.connect(timeout=1)
        proxy.unblock()
        publisher.connect(timeout=5)
        assert publisher.connections_opened == 1


def test_publishing_after_close_is_an_error(rabbitmq_url: str, topology: EmailTopology) -> None:
    publisher = EmailPublisher(rabbitmq_url, topology)
    publisher.publish(event(1))
    publisher.close()
    with pytest.raises(PublishError, match="closed"):
        publisher.publish(event(2))


async def test_the_async_publisher_raises_when_the_broker_stays_unreachable(
    rabbitmq_url: str, topology: EmailTopology, proxy: TcpProxy
) -> None:
    async with AsyncEmailPublisher(proxied(rabbitmq_url, proxy), topology) as publisher:
        proxy.block()
        with pytest.raises(PublishError):
            await publisher.publish(event(1), timeout=0.5)


def test_a_notifier_started_while_the_broker_is_down_consumes_once_it_is_up(
    rabbitmq_url: str, topology: EmailTopology, proxy: TcpProxy, smtp_sink: SmtpSink
) -> None:
    proxy.block()
    notifier = RunningNotifier(
        proxied(rabbitmq_url, proxy), topology, SmtpTransport("127.0.0.1", smtp_sink.port)
    )
    notifier.thread.start()
    try:
        wait_until(lambda: notifier.consumer.stats.reconnects >= 2, 15, "failed connection attempts")
        assert not notifier.consumer.consuming.is_set()
        proxy.unblock()
        assert notifier.consumer.consuming.wait(20)
        with EmailPublisher(rabbitmq_url, topology) as publisher:
            publisher.publish(event(1))
        wait_until(lambda: smtp_sink.handler.count() == 1, 15, "the mail")
    finally:
        notifier.stop()


def test_a_burst_of_submits_is_confirmed_even_across_a_dropped_connection(
    rabbitmq_url: str, topology: EmailTopology, proxy: TcpProxy, broker: Broker
) -> None:
    events = [event(i) for i in range(500)]
    with EmailPublisher(proxied(rabbitmq_url, proxy), topology) as publisher:
        publisher.connect()
        futures = [publisher.submit(e, timeout=30) for e in events]
        proxy.drop_connections()  # while most of them are in flight
        for future in futures:
            future.result(35)
        reconnected = publisher.connections_opened == 2
    received = {props.message_id for props, _ in broker.drain(topology.queue)}
    # Unconfirmed events were sent again: all arrived, some perhaps twice (dropped by the notifier).
    assert received == {e.event_id for e in events}
    assert reconnected, "the drop came after every confirm: the test proved nothing"


def test_an_event_that_timed_out_before_it_was_sent_is_never_sent_later(
    rabbitmq_url: str, topology: EmailTopology, proxy: TcpProxy, broker: Broker
) -> None:
    with EmailPublisher(proxied(rabbitmq_url, proxy), topology) as publisher:
        publisher.connect()
        proxy.block()
        given_up = event(1)
        with pytest.raises(PublishError):
            publisher.publish(given_up, timeout=0.5)
        proxy.unblock()
        sent = event(2)
        publisher.publish(sent, timeout=10)
    assert [props.message_id for props, _ in broker.drain(topology.queue)] == [sent.event_id]


def test_a_publisher_closed_while_the_broker_is_unreachable_never_declares_its_queues_again(
    rabbitmq_url: str, topology: EmailTopology, proxy: TcpProxy, broker: Broker
) -> None:
    publisher = EmailPublisher(proxied(rabbitmq_url, proxy), topology)
    publisher.connect()
    proxy.block()
    waiting = publisher.submit(event(1), timeout=30)
    time.sleep(0.5)  # it is between reconnect attempts now
    # What a test's teardown does: the queues go, then the publisher is closed.
    broker.delete_topology(topology)
    started = time.monotonic()
    publisher.close()
    assert time.monotonic() - started < 5, "close() waited for a broker that is gone"
    with pytest.raises(PublishError, match="closed"):
        waiting.result(0)
    connections = proxy.connections_made
    proxy.unblock()
    time.sleep(3.0)  # longer than the longest reconnect backoff
    assert proxy.connections_made == connections
    assert [name for name in topology.queue_arguments() if queue_exists(rabbitmq_url, name)] == []


def queue_exists(url: str, name: str) -> bool:
    with pika.BlockingConnection(pika.URLParameters(url)) as connection:
        try:
            connection.channel().queue_declare(name, passive=True)
        except pika.exceptions.ChannelClosedByBroker:
            return False
        return True
