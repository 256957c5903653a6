"""Test helpers for the notification path: a real SMTP sink (aiosmtpd), a broker inspector on a
real RabbitMQ connection, an in-process notifier, and polling."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from email import message_from_bytes
from email.message import Message
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pika
from aiosmtpd.controller import Controller
from sqlalchemy import Engine, text

from harness.ports import free_port
from notifier.consumer import NotifierConsumer
from notifier.delivery import MailDelivery
from notifier.ledger import DeliveryLedger
from notifier.transports import MailTransport
from ocrmesh.notify.v1 import email_pb2
from ocrmesh.rules.email_events import EmailPublisher, EmailTopology, new_email_event

REPO = Path(__file__).resolve().parents[3]


def wait_until(predicate: Callable[[], bool], timeout: float, message: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


class SinkHandler:
    """Collects every mail; can answer the next N DATA commands with a failure, or slowly."""

    def __init__(self) -> None:
        self.mails: list[Message] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.fail_next = 0
        self.fail_reply = "451 4.3.0 try again later"
        self.delay = 0.0
        self.lock = threading.Lock()
        self.data_started = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.data_started += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        with self.lock:
            if self.fail_next > 0:
                self.fail_next -= 1
                return self.fail_reply
            self.mails.append(message_from_bytes(envelope.content, policy=default_policy))
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"

    def message_ids(self) -> list[str]:
        with self.lock:
            return [str(m["Message-ID"]) for m in self.mails]

    def count(self) -> int:
        with self.lock:
            return len(self.mails)


class SmtpSink:
    """A real SMTP server on 127.0.0.1 that can be stopped and started on the same port."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.handler = SinkHandler()
        self._controller: Controller | None = None

    def start(self) -> SmtpSink:
        self._controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


class Broker:
    """Inspects queues over its own real connection."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.connection = pika.BlockingConnection(pika.URLParameters(url))
        self.channel = self.connection.channel()

    def depth(self, queue: str) -> int:
        return int(self.channel.queue_declare(queue, passive=True).method.message_count)

    def drain(self, queue: str) -> list[tuple[pika.BasicProperties, bytes]]:
        """Take (and ack) every message in `queue`."""
        taken = []
        while True:
            method, props, body = self.channel.basic_get(queue, auto_ack=True)
            if method is None:
                return taken
            assert props is not None
            assert body is not None
            taken.append((props, body))

    def publish_raw(self, queue: str, body: bytes, properties: pika.BasicProperties | None = None) -> None:
        self.channel.basic_publish("", queue, body, properties or pika.BasicProperties(delivery_mode=2))

    def delete_topology(self, topology: EmailTopology) -> None:
        topology.delete(self.channel)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.connection.close()


class RunningNotifier:
    """A `NotifierConsumer` running in a thread of the test process."""

    def __init__(
        self,
        url: str,
        topology: EmailTopology,
        transport: MailTransport,
        *,
        max_attempts: int = 5,
        prefetch: int = 10,
        heartbeat: int = 30,
        name: str = "test-notifier",
        ledger: DeliveryLedger | None = None,
    ) -> None:
        self.delivery = MailDelivery(
            transport,
            mail_from="ocrmesh <no-reply@ocrmesh.test>",
            retry_delays=topology.retry_delays,
            max_attempts=max_attempts,
            ledger=ledger,
        )
        # A grace longer than stop()'s join: a stop waiting for a settlement that can never
        # run (it was queued on a connection that died) fails the test instead of hiding.
        self.consumer = NotifierConsumer(
            url,
            topology,
            self.delivery,
            prefetch=prefetch,
            heartbeat=heartbeat,
            connection_name=name,
            shutdown_grace=60,
        )
        self.thread = threading.Thread(target=self.consumer.run, name=name, daemon=True)

    def start(self) -> RunningNotifier:
        self.thread.start()
        assert self.consumer.consuming.wait(15), "notifier did not start consuming"
        return self

    def stop(self) -> None:
        self.consumer.stop()
        self.thread.join(30)
        assert not self.thread.is_alive(), "notifier did not stop"


def process_env(
    rabbitmq_url: str,
    database_url: str,
    topology: EmailTopology,
    sink: SmtpSink,
    tmp_path: Path,
    *,
    prefetch: int = 20,
) -> dict[str, str]:
    """The environment of a `python -m notifier` process on `topology` mailing into `sink`."""
    return {
        "RABBITMQ_URL": rabbitmq_url,
        "DATABASE_URL": database_url,
        "EMAIL_QUEUE": topology.queue,
        "EMAIL_RETRY_DELAYS": ",".join(str(d) for d in topology.retry_delays),
        "EMAIL_QUEUE_MAX_LENGTH": str(topology.max_length),
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(sink.port),
        "MAIL_FROM": "ocrmesh <no-reply@ocrmesh.test>",
        "NOTIFIER_PREFETCH": str(prefetch),
        # A killed notifier's claims are taken over after this (production: 15 s).
        "NOTIFIER_CLAIM_LEASE_SECONDS": "3",
        "NOTIFIER_HEALTH_FILE": str(tmp_path / "notifier.health"),
        "SHUTDOWN_GRACE_SECONDS": "15",
        "LOG_LEVEL": "WARNING",
    }


@contextlib.contextmanager
def notifier_process(env: dict[str, str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`python -m notifier` as a real subprocess with `env` added to ours; killed at the end."""
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "notifier"],
            cwd=REPO,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield process
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(10)


def close_named_connections(connection_name: str) -> int:
    """Force-close, from the broker side, OUR connections called `connection_name`
    (never anyone else's: other suites share the broker). Returns how many were closed."""
    listing = subprocess.run(
        ["rabbitmqctl", "list_connections", "-q", "pid", "client_properties"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    marker = f'{{"connection_name","{connection_name}"}}'
    closed = 0
    for line in listing.splitlines():
        if marker in line:
            pid = line.split("\t", 1)[0]
            subprocess.run(
                ["rabbitmqctl", "close_connection", pid, "test: broker-side close"],
                capture_output=True,
                timeout=60,
                check=True,
            )
            closed += 1
    return closed


def publish_many(url: str, topology: EmailTopology, n: int) -> list[email_pb2.EmailRequested]:
    """Publish `n` distinct events, confirmed."""
    events = [
        new_email_event(
            to=f"u{i}@example.com", subject=f"#{i}", body="b", kind=email_pb2.EMAIL_KIND_OCR_COMPLETED
        )
        for i in range(n)
    ]
    with EmailPublisher(url, topology) as publisher:
        for future in [publisher.submit(e) for e in events]:
            future.result(60)
    return events


def in_flight_claims(engine: Engine, pid: int) -> tuple[set[str], set[str]]:
    """(event ids claimed but not marked sent, event ids marked sent) by the process `pid`."""
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT event_id, sent_at IS NOT NULL FROM notifier_deliveries WHERE claimed_by LIKE :me"),
            {"me": f"%:{pid}:%"},
        ).all()
    return {r[0] for r in rows if not r[1]}, {r[0] for r in rows if r[1]}
