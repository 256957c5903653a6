"""Broker hygiene, against the real RabbitMQ, SMTP servers and notifier processes: bounded
quorum queues whose overload reaches producers as nacks, classic queues of an older version
migrated without losing a message (and no restart loop meanwhile), event ids checked whole,
and no SMTP password over plaintext unless allowed."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pika
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from notifier.delivery import PARK_REASON_HEADER
from notifier.health import check
from notifier.transports import SmtpTransport
from ocrmesh.notify.v1 import email_pb2
from ocrmesh.rules.email_events import EmailPublisher, EmailTopology, PublishRejected, new_email_event
from ocrmesh.rules.email_events.messages import event_properties
from tests.integration.notifier.notifier_support import (
    REPO,
    Broker,
    RunningNotifier,
    SinkHandler,
    SmtpSink,
    free_port,
    notifier_process,
    process_env,
    wait_until,
)

pytestmark = pytest.mark.integration


def event(i: int) -> email_pb2.EmailRequested:
    return new_email_event(
        to=f"u{i}@example.com", subject=f"#{i}", body="b", kind=email_pb2.EMAIL_KIND_OCR_COMPLETED
    )


def message_id(e: email_pb2.EmailRequested) -> str:
    return f"<{e.event_id}@ocrmesh.test>"


@pytest.fixture
def small_topology(unique_name: str, broker: Broker) -> Iterator[EmailTopology]:
    topo = EmailTopology.from_prefix(unique_name, retry_delays=(0.3,), max_length=5)
    yield topo
    broker.delete_topology(topo)


def queue_type(queue: str) -> str:
    listing = subprocess.run(
        ["rabbitmqctl", "list_queues", "-q", "--no-table-headers", "name", "type"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    types = dict(line.split("\t", 1) for line in listing.splitlines() if "\t" in line)
    return types[queue].strip()


def fill(
    publisher: EmailPublisher, limit: int = 20
) -> tuple[list[email_pb2.EmailRequested], PublishRejected]:
    """Publish until the broker nacks; (the accepted events, the rejection)."""
    accepted = []
    for i in range(limit):
        e = event(i)
        try:
            publisher.publish(e, timeout=5)
        except PublishRejected as exc:
            return accepted, exc
        accepted.append(e)
    raise AssertionError(f"{limit} events accepted by a queue limited to fewer")


def test_a_full_work_queue_nacks_publishes_and_the_event_goes_out_when_published_again(
    rabbitmq_url: str, small_topology: EmailTopology, smtp_sink: SmtpSink, broker: Broker
) -> None:
    assert queue_type_after_declare(rabbitmq_url, small_topology) == "quorum"
    with EmailPublisher(rabbitmq_url, small_topology) as publisher:
        accepted, rejection = fill(publisher)
        # A quorum queue lets the publish that crosses the limit in, then refuses.
        assert 5 <= len(accepted) <= 6
        assert "full" in str(rejection)
        refused = event(99)
        with pytest.raises(PublishRejected, match="publish it again later"):
            publisher.publish(refused, timeout=5)
        assert broker.depth(small_topology.queue) == len(accepted)

        notifier = RunningNotifier(
            rabbitmq_url, small_topology, SmtpTransport("127.0.0.1", smtp_sink.port)
        ).start()
        try:
            wait_until(lambda: smtp_sink.handler.count() == len(accepted), 30, "the queued mails")
            publisher.publish(refused, timeout=5)  # what a producer does with a rejected event
            wait_until(lambda: smtp_sink.handler.count() == len(accepted) + 1, 30, "the refused one")
        finally:
            notifier.stop()
    assert set(smtp_sink.handler.message_ids()) == {message_id(e) for e in [*accepted, refused]}


def queue_type_after_declare(url: str, topology: EmailTopology) -> str:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        topology.declare(connection.channel())
    finally:
        connection.close()
    return queue_type(topology.queue)


def test_a_retry_that_expires_into_a_full_work_queue_is_held_instead_of_vanishing(
    rabbitmq_url: str, small_topology: EmailTopology, broker: Broker
) -> None:
    with EmailPublisher(rabbitmq_url, small_topology) as publisher:
        accepted, _ = fill(publisher)
    # A mail the notifier put back for a retry, as it does after a transient SMTP failure.
    retried = event(42)
    broker.channel.confirm_delivery()
    retry_queue = small_topology.retry_queue(0.3)
    broker.channel.basic_publish("", retry_queue, retried.SerializeToString(), event_properties(retried))
    # Several TTLs: with at-most-once dead-lettering (classic queues) the full work queue
    # would have refused it and it would be gone. Here the broker holds it in the retry queue
    # (not ready, so only the broker's own count shows it) and dead-letters it again later.
    time.sleep(2.0)
    assert broker.depth(small_topology.queue) == len(accepted)
    # The broker's counts lag a few seconds behind.
    wait_until(lambda: stored_messages(retry_queue) == 1, 20, "the retry held by the broker")
    assert broker.depth(small_topology.queue) == len(accepted)


def stored_messages(queue: str) -> int:
    """Every message the broker holds for `queue`, those waiting to be dead-lettered included."""
    listing = subprocess.run(
        ["rabbitmqctl", "list_queues", "-q", "--no-table-headers", "name", "messages"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    counts = dict(line.split("\t", 1) for line in listing.splitlines() if "\t" in line)
    return int(counts[queue])


# The queues as ocrmesh declared them before it used quorum queues.
def classic_arguments(topology: EmailTopology) -> dict[str, dict[str, Any]]:
    classic = {"x-queue-type": "classic"}
    queues: dict[str, dict[str, Any]] = {topology.dead: dict(classic)}
    for delay in topology.retry_delays:
        queues[topology.retry_queue(delay)] = {
            **classic,
            "x-message-ttl": round(delay * 1000),
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": topology.queue,
        }
    queues[topology.queue] = {
        **classic,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": topology.dead,
    }
    return queues


def test_classic_queues_of_an_older_version_are_migrated_without_losing_a_message(
    rabbitmq_url: str,
    notifier_database_url: str,
    topology: EmailTopology,
    smtp_sink: SmtpSink,
    broker: Broker,
    tmp_path: Path,
) -> None:
    for name, arguments in classic_arguments(topology).items():
        broker.channel.queue_declare(name, durable=True, arguments=arguments)
    waiting = [event(i) for i in range(3)]
    for e in waiting:
        broker.channel.basic_publish("", topology.queue, e.SerializeToString(), event_properties(e))
    parked = event(7)
    broker.channel.basic_publish("", topology.dead, parked.SerializeToString(), event_properties(parked))

    env = {
        **process_env(rabbitmq_url, notifier_database_url, topology, smtp_sink, tmp_path),
        "NOTIFIER_TOPOLOGY_RECHECK_SECONDS": "0.5",
    }
    health = Path(env["NOTIFIER_HEALTH_FILE"])
    with notifier_process(env, tmp_path / "notifier.log") as process:
        # Not a crash (and so no restart loop): alive, not ready, saying what to do.
        wait_until(
            lambda: "not consuming" in check(health, max_age=30, require_connected=False)[1], 30, "health"
        )
        healthy, why = check(health, max_age=30, require_connected=True)
        assert not healthy
        assert "Migrating from classic queues" in why
        time.sleep(1.5)
        assert process.poll() is None
        assert smtp_sink.handler.count() == 0

        migration = subprocess.run(
            [sys.executable, "-m", "notifier", "migrate-queues"],
            cwd=REPO,
            env={**env, "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert migration.returncode == 0, migration.stderr
        assert f"migrated {topology.queue} (3 message(s) kept)" in migration.stdout
        assert f"migrated {topology.dead} (1 message(s) kept)" in migration.stdout

        # The notifier notices by itself and delivers what waited.
        wait_until(lambda: smtp_sink.handler.count() == 3, 30, "the waiting mails")
        assert check(health, max_age=30, require_connected=True)[0]
    assert set(smtp_sink.handler.message_ids()) == {message_id(e) for e in waiting}
    assert all(queue_type(name) == "quorum" for name in topology.queue_arguments())
    assert broker.depth(topology.dead) == 1  # still parked, now in the quorum queue
    again = subprocess.run(
        [sys.executable, "-m", "notifier", "migrate-queues"],
        cwd=REPO,
        env={**env, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "nothing to migrate" in again.stdout


def test_an_event_id_with_a_trailing_newline_is_parked_and_never_mailed(
    rabbitmq_url: str, topology: EmailTopology, smtp_sink: SmtpSink, broker: Broker
) -> None:
    bad = event(1)
    bad.event_id = "0b6c1b6e-1f0e-4b8e-9f4e-3c1d2a6b7e10\n"  # `re.match` with `$` let this through
    good = event(2)
    notifier = RunningNotifier(rabbitmq_url, topology, SmtpTransport("127.0.0.1", smtp_sink.port)).start()
    try:
        broker.publish_raw(topology.queue, bad.SerializeToString())
        broker.publish_raw(topology.queue, good.SerializeToString())
        wait_until(lambda: broker.depth(topology.dead) == 1, 30, "the bad event parked")
        wait_until(lambda: smtp_sink.handler.count() == 1, 30, "the good mail")
    finally:
        notifier.stop()
    assert smtp_sink.handler.message_ids() == [message_id(good)]
    (props, _), *_ = broker.drain(topology.dead)
    assert "event_id" in str((props.headers or {})[PARK_REASON_HEADER])


class LoginRecorder:
    def __init__(self) -> None:
        self.logins: list[tuple[bytes, bytes]] = []

    def __call__(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        self.logins.append((auth_data.login, auth_data.password))
        return AuthResult(success=True)


@pytest.fixture
def plaintext_auth_server() -> Iterator[tuple[SinkHandler, LoginRecorder, int]]:
    """A real SMTP server that would accept a login without TLS (as a careless relay does)."""
    handler, recorder, port = SinkHandler(), LoginRecorder(), free_port()
    controller = Controller(
        handler, hostname="127.0.0.1", port=port, authenticator=recorder, auth_require_tls=False
    )
    controller.start()
    yield handler, recorder, port
    controller.stop()


def test_an_smtp_login_over_plaintext_is_refused_at_start_unless_allowed(
    rabbitmq_url: str,
    notifier_database_url: str,
    topology: EmailTopology,
    plaintext_auth_server: tuple[SinkHandler, LoginRecorder, int],
    tmp_path: Path,
) -> None:
    handler, recorder, port = plaintext_auth_server
    sink = SmtpSink(port)  # only its port: the server above is already listening on it
    env = {
        **process_env(rabbitmq_url, notifier_database_url, topology, sink, tmp_path),
        "SMTP_USERNAME": "mailer",
        "SMTP_PASSWORD": "s3cret",
    }
    refused = subprocess.run(
        [sys.executable, "-m", "notifier"],
        cwd=REPO,
        env={**env, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2  # fail fast: bad configuration, no stack trace
    assert "clear text" in refused.stderr
    assert "SMTP_STARTTLS" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert recorder.logins == []

    env["SMTP_ALLOW_PLAINTEXT_AUTH"] = "true"  # the operator's explicit choice
    with notifier_process(env, tmp_path / "notifier.log"):
        with EmailPublisher(rabbitmq_url, topology) as publisher:
            publisher.publish(event(1))
        wait_until(lambda: handler.count() == 1, 30, "the mail after a plaintext login")
    assert recorder.logins == [(b"mailer", b"s3cret")]
