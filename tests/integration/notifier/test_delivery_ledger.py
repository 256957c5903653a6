"""The dedup ledger every notifier instance shares, against the real PostgreSQL: claims, leases,
marks, releases, expiry, and its migrations living next to auth_svc's in one database."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from email.message import Message
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, inspect, text
from sqlalchemy.engine import make_url

from auth_svc.db import MIGRATIONS as AUTH_MIGRATIONS
from auth_svc.db import migrate as migrate_auth
from notifier.db import MIGRATIONS as NOTIFIER_MIGRATIONS
from notifier.db import VERSION_TABLE, ensure_database, make_engine, migrate
from notifier.delivery import Ack, Defer, MailDelivery, Retry
from notifier.ledger import ClaimState, DeliveryLedger
from notifier.transports import FileTransport, SmtpTransport, TransientDeliveryError
from ocrmesh.notify.v1 import email_pb2
from ocrmesh.platform.database import Migrations
from ocrmesh.rules.email_events import EmailPublisher, EmailTopology, new_email_event
from tests.integration.notifier.notifier_support import RunningNotifier, SmtpSink, wait_until

pytestmark = pytest.mark.integration


def head_of(migrations: Migrations) -> str | None:
    """The newest revision of a service's migrations (each service adds its own over time)."""
    return ScriptDirectory.from_config(migrations.config()).get_current_head()


def an_event() -> email_pb2.EmailRequested:
    return new_email_event(to="a@example.com", subject="s", body="b", kind=email_pb2.EMAIL_KIND_OCR_COMPLETED)


def test_a_claim_is_exclusive_until_sent_or_its_lease_runs_out(
    make_ledger: Callable[..., DeliveryLedger],
) -> None:
    first = make_ledger(lease=0.5, retention=60)
    second = make_ledger(lease=0.5, retention=60)
    event_id = str(uuid.uuid4())
    assert first.claim(event_id).state is ClaimState.CLAIMED
    busy = second.claim(event_id)
    assert busy.state is ClaimState.BUSY
    assert 0 < busy.lease_left <= 0.5
    time.sleep(0.7)  # the first instance died without marking: its claim runs out
    assert second.claim(event_id).state is ClaimState.CLAIMED
    second.mark_sent(event_id)
    time.sleep(0.7)
    assert first.claim(event_id).state is ClaimState.SENT  # sent is final, lease or not


def test_a_released_claim_can_be_claimed_at_once(make_ledger: Callable[..., DeliveryLedger]) -> None:
    first = make_ledger(lease=60, retention=120)
    second = make_ledger(lease=60, retention=120)
    event_id = str(uuid.uuid4())
    assert first.claim(event_id).state is ClaimState.CLAIMED
    second.release(event_id)  # not its claim: nothing happens
    assert second.claim(event_id).state is ClaimState.BUSY
    first.release(event_id)
    assert second.claim(event_id).state is ClaimState.CLAIMED


def test_expired_rows_are_purged(make_ledger: Callable[..., DeliveryLedger], notifier_engine: Engine) -> None:
    ledger = make_ledger(lease=0.1, retention=0.2)
    event_id = str(uuid.uuid4())
    ledger.claim(event_id)
    ledger.mark_sent(event_id)
    time.sleep(0.3)
    assert ledger.purge_expired() >= 1
    with notifier_engine.connect() as connection:
        left = connection.execute(
            text("SELECT count(*) FROM notifier_deliveries WHERE event_id = :e"), {"e": event_id}
        ).scalar()
    assert left == 0


class FailingTransport:
    def send(self, message: Message, event_id: str) -> None:
        raise TransientDeliveryError("451 try later")

    def close(self) -> None:
        return None

    def close_if_idle(self) -> None:
        return None


def delivery(transport: object, ledger: DeliveryLedger) -> MailDelivery:
    return MailDelivery(
        transport,  # type: ignore[arg-type]
        mail_from="no-reply@ocrmesh.test",
        retry_delays=(1.0, 5.0),
        max_attempts=3,
        ledger=ledger,
    )


def test_a_failed_send_gives_its_claim_back_and_a_busy_event_is_deferred_not_acked(
    make_ledger: Callable[..., DeliveryLedger],
) -> None:
    ledger = make_ledger(lease=4.0, retention=60)
    event = an_event()
    body = event.SerializeToString()
    failed = delivery(FailingTransport(), ledger).handle(body, message_type=None, attempt=1)
    assert isinstance(failed, Retry)
    # The retry (here: another instance) can claim it straight away.
    other = make_ledger(lease=4.0, retention=60)
    assert other.claim(event.event_id).state is ClaimState.CLAIMED
    # While that claim is live, a copy is neither sent nor acked: deferred, to look again
    # before the ~4 s left of the lease are over (a live holder renews it; a dead one's
    # claim is then taken over at most one delay late).
    decision = delivery(FailingTransport(), ledger).handle(body, message_type=None, attempt=2)
    assert isinstance(decision, Defer)
    assert decision.delay == 1.0
    assert decision.attempt == 2


def test_a_second_publish_of_an_event_sends_one_mail_across_two_notifiers(
    rabbitmq_url: str, topology: EmailTopology, smtp_sink: SmtpSink, ledger: DeliveryLedger
) -> None:
    event = an_event()
    notifiers = [
        RunningNotifier(
            rabbitmq_url, topology, SmtpTransport("127.0.0.1", smtp_sink.port), ledger=ledger, name=f"n{i}"
        ).start()
        for i in range(2)
    ]
    try:
        with EmailPublisher(rabbitmq_url, topology) as publisher:
            publisher.publish(event)
            wait_until(lambda: smtp_sink.handler.count() == 1, 15, "the mail")
            publisher.publish(event)  # a producer retrying after a lost confirm
            publisher.publish(event)
        wait_until(
            lambda: sum(n.consumer.stats.duplicates for n in notifiers) == 2, 15, "both copies dropped"
        )
    finally:
        for n in notifiers:
            n.stop()
    assert smtp_sink.handler.count() == 1
    decisions = [n.consumer.stats for n in notifiers]
    assert sum(s.delivered for s in decisions) == 1


@pytest.fixture
def shared_database(postgres_admin_url: str, run_id: str) -> Iterator[str]:
    url = make_url(postgres_admin_url).set(database=f"ocrmesh_test_{run_id}_shared_{uuid.uuid4().hex[:6]}")
    rendered = url.render_as_string(hide_password=False)
    ensure_database(rendered)
    yield rendered
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))
    admin.dispose()


def test_the_notifier_migrates_next_to_auth_svc_in_one_database(shared_database: str) -> None:
    engine = make_engine(shared_database)
    try:
        migrate_auth(engine)
        migrate(engine)
        migrate(engine)  # idempotent
        migrate_auth(engine)  # and auth_svc's migrations do not see ours as theirs
        tables = set(inspect(engine).get_table_names())
        assert {"users", "outbox", "notifier_deliveries", "alembic_version", VERSION_TABLE} <= tables
        with engine.connect() as connection:
            assert connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar() == head_of(
                NOTIFIER_MIGRATIONS
            )
            assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == head_of(
                AUTH_MIGRATIONS
            )
    finally:
        engine.dispose()


def test_without_a_ledger_the_use_case_still_dedups_in_memory(tmp_path: Path) -> None:
    mail_dir = tmp_path / "mail"
    use_case = MailDelivery(
        FileTransport(mail_dir), mail_from="no-reply@ocrmesh.test", retry_delays=(1.0,), max_attempts=2
    )
    event = an_event()
    body = event.SerializeToString()
    assert use_case.handle(body, message_type=None, attempt=1) == Ack(event.event_id)
    assert use_case.handle(body, message_type=None, attempt=1) == Ack(event.event_id, duplicate=True)
    assert len(list(mail_dir.glob("*.eml"))) == 1


def test_an_unreachable_ledger_means_retry_later_and_no_mail(tmp_path: Path) -> None:
    engine = make_engine("postgresql+psycopg2://postgres@127.0.0.1:1/nowhere")
    try:
        unreachable = DeliveryLedger(engine, lease=5, retention=60)
        mail_dir = tmp_path / "mail"
        decision = delivery(FileTransport(mail_dir), unreachable).handle(
            an_event().SerializeToString(), message_type=None, attempt=1
        )
    finally:
        engine.dispose()
    assert isinstance(decision, Retry)
    assert "dedup ledger unavailable" in decision.reason
    assert not mail_dir.exists()  # not sent without a claim: it could be a duplicate


def test_instances_starting_together_on_a_missing_database_all_start(
    postgres_admin_url: str, run_id: str
) -> None:
    url = make_url(postgres_admin_url).set(database=f"ocrmesh_test_{run_id}_race_{uuid.uuid4().hex[:6]}")
    rendered = url.render_as_string(hide_password=False)
    results: list[bool | BaseException] = []

    def start() -> None:
        try:
            results.append(ensure_database(rendered))
        except BaseException as exc:  # collected and asserted below
            results.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))
        admin.dispose()
    assert sorted(results, key=str) == [False, False, False, True]
