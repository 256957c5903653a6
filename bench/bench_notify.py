"""Benchmark of the notification path: `.venv/bin/python -m bench.bench_notify [--quick] [--json PATH]`.

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
import os
import platform
import uuid
from urllib.parse import urlsplit

from bench.notify_phases import (
    bench_burst,
    bench_ocrmesh,
    bench_raw,
    bench_raw_confirm_latency,
    bench_smtp_alone,
)
from bench.report import (
    Row,
    add_json_argument,
    emit,
    median,
    percentile,
    ratio_higher_is_better,
    ratio_lower_is_better,
)
from harness.scratch import create_scratch_database, drop_database, postgres_admin_url
from ocrmesh.notify.v1 import email_pb2
from ocrmesh.rules.email_events import new_email_event
from ocrmesh.rules.endpoints import DEFAULT_RABBITMQ_URL


def main() -> int:
    parser = argparse.ArgumentParser(description="Benchmark the email notification path.")
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="300 events")
    parser.add_argument("--url", default=os.environ.get("RABBITMQ_URL", DEFAULT_RABBITMQ_URL))
    parser.add_argument(
        "--postgres",
        default=postgres_admin_url(),
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
    database_url = create_scratch_database(args.postgres, f"ocrmesh_bench_{uuid.uuid4().hex[:8]}")
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
