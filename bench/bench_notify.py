"""Benchmark of the notification path: `.venv/bin/python bench/bench_notify.py [--quick] [--json PATH]`.

Measures, in one run against the same broker:
  1. raw pika: publish (no confirms) -> consume (manual acks, same prefetch) on a plain queue;
  2. ocrmesh: `EmailPublisher` (confirmed, all events submitted at once) -> `python -m notifier`
     (a real process, its dedup ledger in PostgreSQL) -> SMTP -> a local aiosmtpd sink, from
     the first publish to the last mail; the same with two notifier processes on the queue;
  3. the notifier(s) alone draining a queue filled while they were stopped;
  4. publish latency with confirms, one publish at a time: `EmailPublisher.publish` against bare
     pika with confirms in the calling thread;
  5. a burst of confirmed publishes submitted at once (pipelined confirms) against bare pika
     confirming one publish at a time;
  6. SMTP alone: 4 smtplib threads on persistent connections to the same sink, the most any
     notifier can deliver on this machine (the sink is Python: ~300 mails/s per process);
and prints one table (ratio > 1 means ocrmesh is better than the baseline).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import platform
import shutil
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pika
from aiosmtpd.smtp import SMTP
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.report import (  # noqa: E402
    Row,
    add_json_argument,
    emit,
    median,
    percentile,
    ratio_higher_is_better,
    ratio_lower_is_better,
)
from notifier.db import ensure_database  # noqa: E402
from notifier.health import check  # noqa: E402
from ocrmesh.notify.v1 import email_pb2  # noqa: E402
from ocrmesh.platform.settings import DEFAULT_RABBITMQ_URL  # noqa: E402
from ocrmesh.rules.email_events import EmailPublisher, EmailTopology, new_email_event  # noqa: E402

PREFETCH = 50


class CountingSink:
    """A local SMTP server (aiosmtpd) that counts mails in shared memory: `processes` server
    processes on one port (SO_REUSEPORT; the kernel spreads connections over them), so that the
    mailbox, one Python event loop handling ~300 mails/s, is not what the benchmark measures.
    Its own processes keep it off the publisher's GIL. Times are `time.monotonic()`, the same
    clock in every process."""

    def __init__(self, port: int, processes: int = 2) -> None:
        self._count = multiprocessing.Value("q", 0)
        self._last_at = multiprocessing.Value("d", 0.0)
        self._first_at = multiprocessing.Value("d", 0.0)  # the first mail since `restart_clock`
        self._ready = [multiprocessing.Event() for _ in range(processes)]
        self._processes = [
            multiprocessing.Process(target=self._serve, args=(port, ready), daemon=True)
            for ready in self._ready
        ]

    @property
    def count(self) -> int:
        return int(self._count.value)

    @property
    def last_at(self) -> float:
        return float(self._last_at.value)

    @property
    def first_at(self) -> float:
        return float(self._first_at.value)

    def restart_clock(self) -> None:
        """From now on `first_at` is the time of the next mail."""
        with self._count.get_lock():
            self._first_at.value = 0.0

    def start(self) -> None:
        for process in self._processes:
            process.start()
        if not all(ready.wait(30) for ready in self._ready):
            raise SystemExit("the SMTP sink did not start")

    def stop(self) -> None:
        for process in self._processes:
            process.terminate()
        for process in self._processes:
            process.join(10)

    def _serve(self, port: int, ready: Any) -> None:
        count, last_at, first_at = self._count, self._last_at, self._first_at

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                with count.get_lock():
                    count.value += 1
                    last_at.value = time.monotonic()
                    if first_at.value == 0.0:
                        first_at.value = last_at.value
                return "250 OK"

        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        handler = Handler()
        loop.run_until_complete(
            loop.create_server(lambda: SMTP(handler), host="127.0.0.1", port=port, reuse_port=True)
        )
        ready.set()
        loop.run_forever()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.01)


def bench_raw(url: str, n: int, body: bytes) -> float:
    """Events/s of raw pika: publish without confirms, consume with manual acks."""
    queue = f"bench_raw_{uuid.uuid4().hex[:8]}"
    setup = pika.BlockingConnection(pika.URLParameters(url))
    setup.channel().queue_declare(queue, durable=True)
    received = threading.Event()
    ready = threading.Event()

    def consume() -> None:
        connection = pika.BlockingConnection(pika.URLParameters(url))
        channel = connection.channel()
        channel.basic_qos(prefetch_count=PREFETCH)
        seen = 0

        def on_message(ch: Any, method: Any, props: Any, data: bytes) -> None:
            nonlocal seen
            ch.basic_ack(method.delivery_tag)
            seen += 1
            if seen == n:
                received.set()
                ch.stop_consuming()

        channel.basic_consume(queue, on_message)
        ready.set()
        channel.start_consuming()
        connection.close()

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    ready.wait(10)
    publisher = pika.BlockingConnection(pika.URLParameters(url))
    channel = publisher.channel()
    props = pika.BasicProperties(delivery_mode=2, content_type="application/x-protobuf")
    started = time.perf_counter()
    for _ in range(n):
        channel.basic_publish("", queue, body, props)
    received.wait(120)
    elapsed = time.perf_counter() - started
    consumer.join(10)
    publisher.close()
    setup.channel().queue_delete(queue)
    setup.close()
    return n / elapsed


def bench_raw_confirm_latency(url: str, n: int, body: bytes) -> list[float]:
    """Seconds per publish of bare pika with confirms (same thread, no hand-off): the floor
    for `EmailPublisher.publish`."""
    queue = f"bench_raw_confirm_{uuid.uuid4().hex[:8]}"
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.queue_declare(queue, durable=True)
    channel.confirm_delivery()
    props = pika.BasicProperties(delivery_mode=2, content_type="application/x-protobuf")
    latencies = []
    for _ in range(n):
        t0 = time.perf_counter()
        channel.basic_publish("", queue, body, props, mandatory=True)
        latencies.append(time.perf_counter() - t0)
    channel.queue_delete(queue)
    connection.close()
    return latencies


def bench_burst(url: str, n: int) -> float:
    """Confirmed events/s when `n` events are submitted at once (concurrent producers):
    `EmailPublisher` keeps them all in flight and matches the confirms."""
    topology = EmailTopology.from_prefix(f"bench_burst_{uuid.uuid4().hex[:8]}", retry_delays=(1.0,))
    events = [
        new_email_event(
            to=f"u{i}@example.com", subject="b", body="x" * 200, kind=email_pb2.EMAIL_KIND_OCR_COMPLETED
        )
        for i in range(n)
    ]
    try:
        with EmailPublisher(url, topology, connection_name="bench-burst") as publisher:
            publisher.connect()
            started = time.perf_counter()
            futures = [publisher.submit(event) for event in events]
            for future in futures:
                future.result(120)
            return n / (time.perf_counter() - started)
    finally:
        connection = pika.BlockingConnection(pika.URLParameters(url))
        channel = connection.channel()
        for queue in topology.queue_arguments():
            channel.queue_delete(queue)
        connection.close()


def start_notifiers(env: dict[str, str], health_dir: Path, count: int) -> list[subprocess.Popen[bytes]]:
    """`count` notifier processes on one queue, each with its own health file, once all consume."""
    processes = []
    for i in range(count):
        health = health_dir / f"notifier-{i}.health"
        health.unlink(missing_ok=True)
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "notifier"], cwd=REPO, env={**env, "NOTIFIER_HEALTH_FILE": str(health)}
            )
        )
    for i in range(count):
        health = health_dir / f"notifier-{i}.health"
        wait_for(lambda h=health: check(h, max_age=30, require_connected=True)[0], 60, "the notifiers")
    return processes


def stop_notifiers(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        process.wait(30)


def create_database(admin_url: str) -> str:
    """A database of the benchmark's own for the notifiers' dedup ledger."""
    url = make_url(admin_url).set(database=f"ocrmesh_bench_{uuid.uuid4().hex[:8]}")
    rendered = url.render_as_string(hide_password=False)
    ensure_database(rendered)
    return rendered


def drop_database(database_url: str) -> None:
    url = make_url(database_url)
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))
    admin.dispose()


def bench_ocrmesh(
    url: str, database_url: str, n: int, notifiers: int, *, with_latency: bool
) -> tuple[float, float, list[float]]:
    """(events/s from confirmed publish to SMTP delivery through `notifiers` processes of
    `python -m notifier`, events/s of them draining a pre-filled queue, publish latencies in
    seconds when `with_latency`)."""
    topology = EmailTopology.from_prefix(f"bench_{uuid.uuid4().hex[:8]}", retry_delays=(1.0,))
    port = free_port()
    sink = CountingSink(port)
    sink.start()
    health_dir = Path(tempfile.mkdtemp(prefix="bench_notify_"))
    env = {
        **os.environ,
        "RABBITMQ_URL": url,
        "DATABASE_URL": database_url,
        "EMAIL_QUEUE": topology.queue,
        "EMAIL_RETRY_DELAYS": "1",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(port),
        "NOTIFIER_PREFETCH": str(PREFETCH),
        "LOG_LEVEL": "WARNING",
    }

    def events() -> list[email_pb2.EmailRequested]:
        return [
            new_email_event(
                to=f"user{i}@example.com",
                subject="bench",
                body="x" * 200,
                kind=email_pb2.EMAIL_KIND_OCR_COMPLETED,
            )
            for i in range(n)
        ]

    latencies: list[float] = []
    processes = start_notifiers(env, health_dir, notifiers)
    try:
        with EmailPublisher(url, topology, connection_name="bench-publisher") as publisher:
            warm_up = [
                new_email_event(
                    to="w@example.com", subject="w", body="w", kind=email_pb2.EMAIL_KIND_OCR_COMPLETED
                )
                for _ in range(20 * notifiers)
            ]
            for future in [publisher.submit(e) for e in warm_up]:
                future.result(30)
            wait_for(lambda: sink.count == len(warm_up), 30, "the warm-up mails")
            before = sink.count

            # 1. end to end: every event submitted at once (as a tight producer loop would),
            #    confirmed and delivered while the notifiers consume.
            started = time.monotonic()
            futures = [publisher.submit(event) for event in events()]
            for future in futures:
                future.result(120)
            wait_for(lambda: sink.count == before + n, 300, "every mail")
            end_to_end = n / (sink.last_at - started)

            # 2. the notifiers stopped: fill the queue (one publish at a time when measuring
            #    latency); then 3. the notifiers alone, draining it.
            stop_notifiers(processes)
            processes = []
            if with_latency:
                for event in events():
                    t0 = time.perf_counter()
                    publisher.publish(event)
                    latencies.append(time.perf_counter() - t0)
            else:
                for future in [publisher.submit(e) for e in events()]:
                    future.result(120)
        before = sink.count
        sink.restart_clock()
        processes = start_notifiers(env, health_dir, notifiers)
        wait_for(lambda: sink.count == before + n, 300, "the drained mails")
        # From the first drained mail to the last (not from the start-up of the processes).
        drain = (n - 1) / (sink.last_at - sink.first_at)
    finally:
        stop_notifiers(processes)
        sink.stop()
        shutil.rmtree(health_dir, ignore_errors=True)
        connection = pika.BlockingConnection(pika.URLParameters(url))
        channel = connection.channel()
        for queue in topology.queue_arguments():
            channel.queue_delete(queue)
        connection.close()
    return end_to_end, drain, latencies


def bench_smtp_alone(n: int, senders: int = 4) -> float:
    """Mails/s of `senders` threads sending `n` mails over persistent smtplib connections to
    the same kind of sink the notifier mails to: the most any notifier could deliver here."""
    port = free_port()
    sink = CountingSink(port)
    sink.start()
    try:

        def send(count: int) -> None:
            with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
                client.ehlo()
                for _ in range(count):
                    mail = EmailMessage()
                    mail["From"], mail["To"] = "bench@example.com", "user@example.com"
                    mail["Subject"] = "bench"
                    mail.set_content("x" * 200)
                    client.send_message(mail)

        started = time.monotonic()
        threads = [threading.Thread(target=send, args=(n // senders,)) for _ in range(senders)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return (n // senders * senders) / (sink.last_at - started)
    finally:
        sink.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description="Benchmark the email notification path.")
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="300 events")
    parser.add_argument("--url", default=os.environ.get("RABBITMQ_URL", DEFAULT_RABBITMQ_URL))
    parser.add_argument(
        "--postgres",
        default=os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"),
        help="server for the benchmark's own ledger database (created and dropped)",
    )
    add_json_argument(parser)
    args = parser.parse_args()
    n = 300 if args.quick else args.events

    sample = new_email_event(
        to="user@example.com", subject="bench", body="x" * 200, kind=email_pb2.EMAIL_KIND_OCR_COMPLETED
    ).SerializeToString()
    raw_rate = bench_raw(args.url, n, sample)
    raw_latencies = bench_raw_confirm_latency(args.url, n, sample)
    burst_rate = bench_burst(args.url, n)
    smtp_rate = bench_smtp_alone(n)
    database_url = create_database(args.postgres)
    try:
        ocrmesh_rate, drain_rate, latencies = bench_ocrmesh(args.url, database_url, n, 1, with_latency=True)
        two_rate, two_drain_rate, _ = bench_ocrmesh(args.url, database_url, n, 2, with_latency=False)
    finally:
        drop_database(database_url)

    broker = urlsplit(args.url)
    print(
        f"notification path, {n} events, {platform.node()}, {os.cpu_count()} cores, "
        f"broker {broker.hostname}:{broker.port or 5672}\n"
    )
    ms = 1000.0
    rows = [
        Row(
            "notify",
            "publish (confirmed) -> mail delivered, one notifier (baseline: raw pika publish -> consume)",
            ocrmesh_rate,
            raw_rate,
            "events/s",
            ratio_higher_is_better(ocrmesh_rate, raw_rate),
        ),
        Row(
            "notify",
            "publish -> mail delivered, one notifier (baseline: SMTP alone, 4 smtplib senders -> the sink)",
            ocrmesh_rate,
            smtp_rate,
            "events/s",
            ratio_higher_is_better(ocrmesh_rate, smtp_rate),
            "the sink's ceiling",
        ),
        Row(
            "notify",
            "publish -> mail delivered, two notifier processes (baseline: one)",
            two_rate,
            ocrmesh_rate,
            "events/s",
            ratio_higher_is_better(two_rate, ocrmesh_rate),
            "target 1.6x",
        ),
        Row(
            "notify",
            "two notifiers draining a full queue (baseline: one)",
            two_drain_rate,
            drain_rate,
            "events/s",
            ratio_higher_is_better(two_drain_rate, drain_rate),
        ),
        Row(
            "notify",
            "notifier draining a full queue into SMTP (baseline: raw pika publish -> consume)",
            drain_rate,
            raw_rate,
            "events/s",
            ratio_higher_is_better(drain_rate, raw_rate),
        ),
        Row(
            "notify",
            "publish latency with confirms, median (baseline: bare pika confirm, same thread)",
            median(latencies) * ms,
            median(raw_latencies) * ms,
            "ms",
            ratio_lower_is_better(median(latencies), median(raw_latencies)),
            "one publish at a time",
        ),
        Row(
            "notify",
            "publish latency with confirms, p99 (baseline: bare pika confirm, same thread)",
            percentile(latencies, 99) * ms,
            percentile(raw_latencies, 99) * ms,
            "ms",
            ratio_lower_is_better(percentile(latencies, 99), percentile(raw_latencies, 99)),
            "one publish at a time",
        ),
    ]
    rows.append(
        Row(
            "notify",
            "burst of confirmed publishes, all submitted at once (baseline: bare pika, confirm per publish)",
            burst_rate,
            1 / median(raw_latencies),
            "events/s",
            ratio_higher_is_better(burst_rate, 1 / median(raw_latencies)),
            "pipelined confirms",
        )
    )
    emit(rows, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
