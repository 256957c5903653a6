"""The email outbox: a broker outage delays mail and loses none; concurrent relays never
publish the same row twice."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from auth_svc.db import make_session_factory
from auth_svc.orm import OutboxMessage
from auth_svc.outbox import OutboxRelay, enqueue_email
from auth_svc.settings import AuthSettings
from harness.tcp_proxy import TcpProxy
from ocrmesh.notify.v1 import email_pb2
from ocrmesh.rules.email_events import EmailPublisher, EmailTopology, new_email_event
from tests.integration.auth.auth_support import Mailbox, RunningAuth, eventually

pytestmark = pytest.mark.integration


def pending_rows(engine: Engine, event_ids: set[str]) -> int:
    with Session(engine) as session:
        ids = [uuid.UUID(e) for e in event_ids]
        return int(
            session.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.event_id.in_(ids), OutboxMessage.sent_at.is_(None))
            )
            or 0
        )


def queue_events(engine: Engine, count: int) -> dict[str, str]:
    """`count` mails written straight into the outbox; {event_id: recipient}."""
    events = {}
    with Session(engine) as session, session.begin():
        for i in range(count):
            event = new_email_event(
                to=f"outbox-{i}-{uuid.uuid4().hex[:8]}@example.com",
                subject="s",
                body="b",
                kind=email_pb2.EMAIL_KIND_VERIFICATION_CODE,
            )
            enqueue_email(session, event)
            events[event.event_id] = event.to
    return events


def delivered(mailbox: Mailbox, event_ids: set[str]) -> Counter[str]:
    mailbox.drain()
    return Counter(m.event_id for m in mailbox.received if m.event_id in event_ids)


async def test_broker_outage_delays_code_mails_and_loses_none(
    auth_settings: AuthSettings, mailbox: Mailbox, auth_engine: Engine, rabbitmq_url: str
) -> None:
    with TcpProxy("127.0.0.1", 5672) as proxy:
        via_proxy = rabbitmq_url.replace("127.0.0.1:5672", f"127.0.0.1:{proxy.port}")
        assert via_proxy != rabbitmq_url
        auth = await RunningAuth.start(auth_settings.model_copy(update={"rabbitmq_url": via_proxy}))
        try:
            # Connected and publishing before the outage.
            warmup = f"warmup-{uuid.uuid4().hex[:8]}@example.com"
            await auth.register(warmup)
            await mailbox.wait_for(warmup)

            proxy.block()
            addresses = [f"outage-{i}-{uuid.uuid4().hex[:8]}@example.com" for i in range(6)]
            for address in addresses:
                await auth.register(address)  # the service keeps working without the broker
            await asyncio.sleep(2.5)
            await asyncio.to_thread(mailbox.drain)
            assert all(not mailbox.mails_to(a) for a in addresses)

            proxy.unblock()
            for address in addresses:
                await mailbox.wait_for(address, timeout=30)
            # Let any would-be duplicate arrive before counting.
            await asyncio.sleep(1.0)
            await asyncio.to_thread(mailbox.drain)
        finally:
            await auth.stop()

    assert [len(mailbox.mails_to(a)) for a in addresses] == [1] * len(addresses)
    event_ids = {m.event_id for a in addresses for m in mailbox.mails_to(a)}
    assert pending_rows(auth_engine, event_ids) == 0


async def test_a_row_locked_by_another_relay_is_skipped_not_sent(
    auth_engine: Engine, mailbox: Mailbox, rabbitmq_url: str, email_topology: EmailTopology
) -> None:
    events = queue_events(auth_engine, 6)
    with EmailPublisher(rabbitmq_url, email_topology, connection_name="auth-test-relay") as publisher:
        relay = OutboxRelay(make_session_factory(auth_engine), publisher, batch_size=100)
        with Session(auth_engine) as other_instance, other_instance.begin():
            locked = other_instance.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.event_id.in_([uuid.UUID(e) for e in events]))
                .order_by(OutboxMessage.id)
                .limit(2)
                .with_for_update()
            ).all()
            locked_ids = {str(row.event_id) for row in locked}

            await asyncio.to_thread(relay.run_once)

            counts = await asyncio.to_thread(delivered, mailbox, set(events))
            assert set(counts) == set(events) - locked_ids
        # The other instance let go (without sending): now they go out, once.
        await asyncio.to_thread(relay.run_once)

    counts = await asyncio.to_thread(delivered, mailbox, set(events))
    assert counts == Counter(dict.fromkeys(events, 1))


async def test_two_relays_publish_every_row_exactly_once(
    auth_engine: Engine, mailbox: Mailbox, rabbitmq_url: str, email_topology: EmailTopology
) -> None:
    events = queue_events(auth_engine, 120)
    sessions = make_session_factory(auth_engine)
    with (
        EmailPublisher(rabbitmq_url, email_topology, connection_name="auth-test-relay-a") as pub_a,
        EmailPublisher(rabbitmq_url, email_topology, connection_name="auth-test-relay-b") as pub_b,
    ):
        relays = [
            OutboxRelay(sessions, pub_a, batch_size=5, poll_seconds=0.05),
            OutboxRelay(sessions, pub_b, batch_size=5, poll_seconds=0.05),
        ]
        for relay in relays:
            relay.start()
        try:
            await eventually(
                lambda: pending_rows(auth_engine, set(events)) == 0, timeout=60, what="outbox drained"
            )
        finally:
            for relay in relays:
                await asyncio.to_thread(relay.stop)

    counts = await asyncio.to_thread(delivered, mailbox, set(events))
    assert counts == Counter(dict.fromkeys(events, 1))
