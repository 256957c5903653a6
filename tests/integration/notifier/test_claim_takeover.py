"""Claims on a short lease, renewed while their send is in progress, against the real PostgreSQL
and real notifier processes: a killed notifier's claims are taken over within seconds and each
mailed once, and a live notifier's slow send keeps its claim past the lease (never a duplicate)."""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from harness.tcp_proxy import TcpProxy
from notifier.db import make_engine
from notifier.ledger import ClaimState, DeliveryLedger, LedgerUnavailable
from notifier.settings import NotifierSettings
from ocrmesh.notify.v1 import email_pb2
from ocrmesh.rules.email_events import EmailPublisher, EmailTopology, new_email_event
from tests.integration.notifier.notifier_support import (
    Broker,
    SmtpSink,
    in_flight_claims,
    notifier_process,
    process_env,
    publish_many,
    wait_until,
)

pytestmark = pytest.mark.integration

# The target: every mail out within 30 s of a replacement notifier starting.
TAKEOVER_TARGET_SECONDS = 30.0


def a_fresh_event_id() -> str:
    return new_email_event(
        to="a@example.com", subject="s", body="b", kind=email_pb2.EMAIL_KIND_OCR_COMPLETED
    ).event_id


def test_a_claim_is_kept_while_renewed_and_free_a_lease_after_the_renewals_stop(
    make_ledger: Callable[..., DeliveryLedger],
) -> None:
    holder = make_ledger(lease=1.0, retention=60)
    other = make_ledger(lease=1.0, retention=60)
    event_id = a_fresh_event_id()
    assert holder.claim(event_id).state is ClaimState.CLAIMED
    with holder.renewing():
        # A send three leases long: the claim stays its holder's throughout.
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            assert other.claim(event_id).state is ClaimState.BUSY
            time.sleep(0.1)
    # The holder stops renewing without marking or releasing (as a killed process does).
    stopped = time.monotonic()
    while other.claim(event_id).state is not ClaimState.CLAIMED:
        assert time.monotonic() - stopped < 1.0 + 2.0, "not taken over a lease after the last renewal"
        time.sleep(0.05)
    assert holder.held() == frozenset({event_id})  # the holder never knew: it was "dead"


def test_claims_marked_sent_or_released_are_no_longer_held(
    make_ledger: Callable[..., DeliveryLedger],
) -> None:
    ledger = make_ledger(lease=5.0, retention=60)
    sent, failed = a_fresh_event_id(), a_fresh_event_id()
    ledger.claim(sent)
    ledger.claim(failed)
    assert ledger.held() == {sent, failed}
    ledger.mark_sent(sent)
    ledger.release(failed)
    assert ledger.held() == frozenset()


def test_a_mark_that_failed_is_made_by_the_renewal_and_the_claim_kept_until_then(
    make_ledger: Callable[..., DeliveryLedger], notifier_engine: Engine
) -> None:
    # The holder reaches PostgreSQL through a proxy the test cuts: a real outage, not a stub.
    url = notifier_engine.url
    with TcpProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        engine = make_engine(url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False))
        ledger = DeliveryLedger(engine, lease=0.5, retention=60)
        try:
            other = make_ledger(lease=0.5, retention=60)
            event_id = a_fresh_event_id()
            ledger.claim(event_id)
            proxy.block()
            with pytest.raises(LedgerUnavailable):
                ledger.mark_sent(event_id)
            proxy.unblock()
            with ledger.renewing():
                time.sleep(1.0)  # two leases: without the renewal the claim would be free by now
                assert other.claim(event_id).state is ClaimState.SENT
            assert ledger.held() == frozenset()
        finally:
            ledger.close()
            engine.dispose()


def test_a_claim_taken_over_while_held_is_reported_and_given_up(
    make_ledger: Callable[..., DeliveryLedger], caplog: pytest.LogCaptureFixture
) -> None:
    frozen = make_ledger(lease=0.3, retention=60)
    other = make_ledger(lease=0.3, retention=60)
    event_id = a_fresh_event_id()
    frozen.claim(event_id)
    time.sleep(0.5)  # not renewed for a whole lease (a process frozen, PostgreSQL out of its reach)
    assert other.claim(event_id).state is ClaimState.CLAIMED
    with caplog.at_level(logging.ERROR, logger="notifier.ledger"):
        frozen.renew_claims()
    assert frozen.held() == frozenset()
    lost = [r for r in caplog.records if "taken over" in r.getMessage()]
    assert [getattr(r, "event_id", None) for r in lost] == [event_id]
    other.mark_sent(event_id)


@pytest.fixture
def default_delays_topology(unique_name: str, broker: Broker) -> Iterator[EmailTopology]:
    """The production delay queues (5 s, 30 s): what a deferred copy really waits."""
    topo = EmailTopology.from_prefix(unique_name, retry_delays=(5.0, 30.0))
    yield topo
    broker.delete_topology(topo)


def test_a_killed_notifiers_claims_are_taken_over_within_seconds_and_each_mailed_once(
    rabbitmq_url: str,
    notifier_database_url: str,
    notifier_engine: Engine,
    default_delays_topology: EmailTopology,
    smtp_sink: SmtpSink,
    broker: Broker,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    topology = default_delays_topology
    env = process_env(rabbitmq_url, notifier_database_url, topology, smtp_sink, tmp_path)
    del env["NOTIFIER_CLAIM_LEASE_SECONDS"]  # the production lease
    lease = NotifierSettings.model_fields["notifier_claim_lease_seconds"].default
    env["NOTIFIER_SENDERS"] = "4"
    events = publish_many(rabbitmq_url, topology, 12)
    expected = {f"<{e.event_id}@ocrmesh.test>" for e in events}
    smtp_sink.handler.delay = 5.0  # every send in progress at the kill

    with notifier_process(env, tmp_path / "victim.log") as victim:
        wait_until(lambda: smtp_sink.handler.data_started == 4, 60, "four sends in progress")
        victim.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        victim.wait(10)
    held_at_kill, marked = in_flight_claims(notifier_engine, victim.pid)
    assert len(held_at_kill) == 4
    assert not marked
    # The crash came before the SMTP server accepted those mails (it drops a message whose
    # client is gone), so they must come from the replacement, once each.
    time.sleep(smtp_sink.handler.delay + 0.5)
    assert smtp_sink.handler.count() == 0
    smtp_sink.handler.delay = 0.0

    replacement_started = time.monotonic()
    with notifier_process(env, tmp_path / "replacement.log"):
        wait_until(
            lambda: set(smtp_sink.handler.message_ids()) >= expected,
            120,
            "every mail from the replacement",
        )
        all_out = time.monotonic()
        wait_until(lambda: broker.depth(topology.queue) == 0, 30, "an empty queue")

    ids = smtp_sink.handler.message_ids()
    with capsys.disabled():
        print(
            f"\nclaims of a SIGKILLed notifier (lease {lease:g} s, delays {topology.retry_delays}): "
            f"{len(held_at_kill)} taken over; every mail out {all_out - replacement_started:.1f} s after "
            f"the replacement started ({all_out - killed:.1f} s after the kill)"
        )
    assert sorted(ids) == sorted(expected), "each event mailed exactly once"
    assert all_out - replacement_started <= TAKEOVER_TARGET_SECONDS
    assert broker.depth(topology.dead) == 0
    with notifier_engine.connect() as connection:
        unsent = connection.execute(
            text("SELECT count(*) FROM notifier_deliveries WHERE event_id = ANY(:ids) AND sent_at IS NULL"),
            {"ids": [e.event_id for e in events]},
        ).scalar()
    assert unsent == 0


def test_a_slow_send_keeps_its_claim_past_the_lease_and_its_copy_is_never_sent(
    rabbitmq_url: str,
    notifier_database_url: str,
    notifier_engine: Engine,
    topology: EmailTopology,
    smtp_sink: SmtpSink,
    tmp_path: Path,
) -> None:
    env = process_env(rabbitmq_url, notifier_database_url, topology, smtp_sink, tmp_path)
    lease = 2.0
    env["NOTIFIER_CLAIM_LEASE_SECONDS"] = str(lease)
    env["LOG_LEVEL"] = "INFO"  # the decisions, read back from the logs
    smtp_sink.handler.delay = 4 * lease  # SMTP takes four leases to accept the mail
    event = new_email_event(
        to="slow@example.com", subject="s", body="b", kind=email_pb2.EMAIL_KIND_VERIFICATION_CODE
    )
    logs = [tmp_path / "first.log", tmp_path / "second.log"]
    health = [tmp_path / "first.health", tmp_path / "second.health"]

    def logged(phrase: str) -> int:
        return sum(path.read_text().count(phrase) for path in logs if path.exists())

    with (
        notifier_process({**env, "NOTIFIER_HEALTH_FILE": str(health[0])}, logs[0]),
        notifier_process({**env, "NOTIFIER_HEALTH_FILE": str(health[1])}, logs[1]),
    ):
        wait_until(lambda: all(h.exists() for h in health), 60, "both notifiers consuming")
        with EmailPublisher(rabbitmq_url, topology) as publisher:
            publisher.publish(event)
            wait_until(lambda: smtp_sink.handler.data_started == 1, 30, "the slow send started")
            sending_since = time.monotonic()
            publisher.publish(event)  # a producer's second publish, while the send is slow
        # The copy is looked at, again and again, long after an unrenewed lease would have ended.
        wait_until(lambda: smtp_sink.handler.count() == 1, 60, "the slow mail")
        assert time.monotonic() - sending_since > 3 * lease
        wait_until(
            lambda: logged("mail duplicate dropped") == 1 or smtp_sink.handler.data_started > 1,
            30,
            "the copy acked as a duplicate",
        )

    assert smtp_sink.handler.data_started == 1, "the copy was sent while its claim's holder was sending"
    assert smtp_sink.handler.count() == 1
    assert logged("mail deferred") >= 1  # found busy during the slow send, not only after it
    with notifier_engine.connect() as connection:
        sent = connection.execute(
            text("SELECT sent_at IS NOT NULL FROM notifier_deliveries WHERE event_id = :e"),
            {"e": event.event_id},
        ).scalar_one()
    assert sent
