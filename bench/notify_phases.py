"""The load phases of `bench.bench_notify`, each against the same broker: raw pika, bare pika
with confirms, a burst through `EmailPublisher`, the real notifier processes from publish
to SMTP delivery and draining a full queue, and SMTP alone."""

from __future__ import annotations

import os
import shutil
import smtplib
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pika

from bench.notify_sink import CountingSink
from harness.ports import free_port
from harness.repo import ROOT
from harness.scratch import delete_queues
from notifier.health import check
from ocrmesh.notify.v1 import email_pb2
from ocrmesh.rules.email_events import EmailPublisher, EmailTopology, new_email_event

PREFETCH = 50


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
        delete_queues(url, topology)


def start_notifiers(env: dict[str, str], health_dir: Path, count: int) -> list[subprocess.Popen[bytes]]:
    """`count` notifier processes on one queue, each with its own health file, once all consume."""
    processes = []
    for i in range(count):
        health = health_dir / f"notifier-{i}.health"
        health.unlink(missing_ok=True)
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "notifier"], cwd=ROOT, env={**env, "NOTIFIER_HEALTH_FILE": str(health)}
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
        delete_queues(url, topology)
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
