"""`python -m notifier` as a real process: killed with SIGKILL it loses nothing, stopped with
SIGTERM it finishes the mail in hand, and its liveness is visible through `healthcheck`."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine

from ocrmesh.rules.email_events import EmailTopology
from tests.integration.notifier.notifier_support import (
    REPO,
    Broker,
    SmtpSink,
    in_flight_claims,
    notifier_process,
    process_env,
    publish_many,
    wait_until,
)

pytestmark = pytest.mark.integration

PREFETCH = 20


@pytest.fixture
def notifier_env(
    rabbitmq_url: str,
    notifier_database_url: str,
    topology: EmailTopology,
    smtp_sink: SmtpSink,
    tmp_path: Path,
) -> dict[str, str]:
    return process_env(rabbitmq_url, notifier_database_url, topology, smtp_sink, tmp_path, prefetch=PREFETCH)


def healthcheck(env: dict[str, str], *args: str) -> int:
    return subprocess.run(
        [sys.executable, "-m", "notifier", "healthcheck", *args],
        cwd=REPO,
        env={**env, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        timeout=30,
    ).returncode


def test_two_notifiers_one_killed_mid_run_and_restarted_send_every_event_once(
    rabbitmq_url: str,
    notifier_env: dict[str, str],
    notifier_engine: Engine,
    topology: EmailTopology,
    smtp_sink: SmtpSink,
    broker: Broker,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    n = 1000
    events = publish_many(rabbitmq_url, topology, n)
    expected = {f"<{e.event_id}@ocrmesh.test>" for e in events}
    env = dict(notifier_env)
    smtp_sink.handler.delay = 0.002  # keeps the run long enough to kill one in the middle

    with (
        notifier_process(env, tmp_path / "notifier-a.log") as first,
        notifier_process(env, tmp_path / "notifier-b.log"),
    ):
        wait_until(lambda: smtp_sink.handler.count() >= 300, 60, "300 mails before the kill")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        # Its claims stay put for the lease (seconds): what it was sending at the kill, and
        # what it had sent and marked but not acked yet (the broker redelivers those).
        in_flight, sent_unacked_or_acked = in_flight_claims(notifier_engine, first.pid)
        delivered_before_kill = smtp_sink.handler.count()
        assert delivered_before_kill < n, "the run was over before the kill"
        with notifier_process(env, tmp_path / "notifier-a-restarted.log"):
            wait_until(lambda: set(smtp_sink.handler.message_ids()) >= expected, 60, "every mail")
            wait_until(lambda: broker.depth(topology.queue) == 0, 15, "an empty queue")

    ids = smtp_sink.handler.message_ids()
    duplicates = len(ids) - len(set(ids))
    with capsys.disabled():  # the counts belong in the test output, not only with -s
        print(
            f"\nSIGKILL of one of two notifiers after {delivered_before_kill} mails: {len(ids)} mails for "
            f"{n} events, {duplicates} duplicates, {len(in_flight)} sends in flight in the killed process"
        )
    assert set(ids) == expected
    # Only a mail being handed to SMTP at the kill (claimed, not yet marked sent) may come twice.
    assert duplicates <= len(in_flight)
    duplicated = {i for i in ids if ids.count(i) > 1}
    assert duplicated <= {f"<{e}@ocrmesh.test>" for e in in_flight}
    # What the killed one had sent (redelivered to the other notifier if not acked) went out once.
    assert all(ids.count(f"<{e}@ocrmesh.test>") == 1 for e in sent_unacked_or_acked)
    assert broker.depth(topology.dead) == 0


def test_sigterm_finishes_the_mail_in_hand_and_returns_the_rest(
    rabbitmq_url: str,
    notifier_env: dict[str, str],
    topology: EmailTopology,
    smtp_sink: SmtpSink,
    broker: Broker,
    tmp_path: Path,
) -> None:
    publish_many(rabbitmq_url, topology, 3)
    env = dict(notifier_env)
    smtp_sink.handler.delay = 2.0
    env["NOTIFIER_SENDERS"] = "1"  # one mail in hand at a time

    with notifier_process(env, tmp_path / "notifier.log") as process:
        wait_until(lambda: smtp_sink.handler.data_started == 1, 30, "a mail in hand")
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0

    assert smtp_sink.handler.count() == 1
    assert smtp_sink.handler.data_started == 1
    assert broker.depth(topology.queue) == 2  # the other two were given back, not lost
    assert not (tmp_path / "notifier.health").exists()


def test_healthcheck_reports_a_live_notifier_and_a_dead_one(
    rabbitmq_url: str,
    notifier_env: dict[str, str],
    topology: EmailTopology,
    smtp_sink: SmtpSink,
    tmp_path: Path,
) -> None:
    env = dict(notifier_env)
    assert healthcheck(env) == 1  # not started yet
    with notifier_process(env, tmp_path / "notifier.log") as process:
        wait_until(lambda: (tmp_path / "notifier.health").exists(), 30, "the health file")
        assert healthcheck(env, "--require-connected") == 0
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    time.sleep(1.2)
    assert healthcheck(env, "--max-age", "1") == 1  # a stale beat means a dead or stuck notifier


def parked_command(env: dict[str, str], *args: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", "notifier", "parked", *args],
        cwd=REPO,
        env={**env, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout


def test_parked_messages_can_be_listed_and_sent_back_after_the_cause_is_fixed(
    rabbitmq_url: str,
    notifier_env: dict[str, str],
    topology: EmailTopology,
    smtp_sink: SmtpSink,
    broker: Broker,
    tmp_path: Path,
) -> None:
    env = dict(notifier_env)
    env["NOTIFIER_MAX_ATTEMPTS"] = "1"
    smtp_sink.handler.fail_next = 2  # both first attempts fail; with one attempt allowed, both park
    events = publish_many(rabbitmq_url, topology, 2)
    with notifier_process(env, tmp_path / "notifier.log"):
        wait_until(lambda: broker.depth(topology.dead) == 2, 30, "two parked mails")

        listed = [json.loads(line) for line in parked_command(env).splitlines()]
        # Several senders: parked in any order.
        assert sorted(m["message_id"] for m in listed) == sorted(e.event_id for e in events)
        assert all(m["reason"].startswith("gave up after 1 attempts: SMTP failed: (451") for m in listed)
        assert broker.depth(topology.dead) == 2  # listing leaves them parked

        assert "moved 2" in parked_command(env, "--requeue")
        wait_until(lambda: smtp_sink.handler.count() == 2, 30, "the requeued mails")
    assert broker.depth(topology.dead) == 0
