"""`python -m notifier`: deliver email events from RabbitMQ.

Commands:
    python -m notifier                      consume until SIGTERM/SIGINT
    python -m notifier healthcheck          exit 0 while the notifier's health file is fresh
    python -m notifier parked [--limit N]   print parked messages and why (they stay parked)
    python -m notifier parked --requeue     move parked messages back to the work queue
    python -m notifier migrate-queues       redeclare queues of an older version (classic -> quorum)
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import signal
import ssl
import sys
import threading
from dataclasses import asdict
from types import FrameType

import pika
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from notifier.consumer import NotifierConsumer
from notifier.db import make_engine, prepare_database
from notifier.delivery import MailDelivery
from notifier.health import HealthFile, check
from notifier.ledger import DeliveryLedger
from notifier.metrics import TimedTransport
from notifier.migration import MigrationError, migrate_topology
from notifier.parking import list_parked, requeue_parked
from notifier.settings import NotifierSettings
from notifier.transports import FileTransport, MailTransport, SmtpTransport
from ocrmesh.platform.amqp import connection_parameters
from ocrmesh.platform.logs import configure_logging
from ocrmesh.platform.metrics import metrics_served
from ocrmesh.platform.settings import load_settings
from ocrmesh.platform.telemetry import configure_tracing, instrument_engines, shutdown_tracing
from ocrmesh.rules.email_events.errors import TopologyError

log = logging.getLogger(__name__)

# Seconds between purges of expired dedup rows (randomised +-50% so instances spread out).
_PURGE_EVERY = 600.0


def build_transport(settings: NotifierSettings) -> MailTransport:
    """SMTP when SMTP_HOST is set, otherwise `.eml` files under MAIL_DIR."""
    if settings.smtp_host is None:
        return FileTransport(settings.mail_dir)
    return SmtpTransport(
        settings.smtp_host,
        settings.resolved_smtp_port,
        username=settings.smtp_username,
        password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
        starttls=settings.smtp_starttls,
        implicit_tls=settings.smtp_tls,
        timeout=settings.smtp_timeout,
        allow_plaintext_auth=settings.smtp_allow_plaintext_auth,
        max_messages=settings.smtp_max_messages_per_connection,
        idle_timeout=settings.smtp_idle_seconds,
        ssl_context=ssl.create_default_context(cafile=settings.smtp_ca_file)
        if settings.smtp_ca_file
        else None,
    )


def build_consumer(settings: NotifierSettings, ledger: DeliveryLedger | None) -> NotifierConsumer:
    """Wire the real adapters (the one place that does): one MailDelivery per sender thread,
    each with its own transport, all sharing the ledger."""
    first = MailDelivery(
        TimedTransport(build_transport(settings)),
        mail_from=settings.mail_from,
        retry_delays=settings.email_retry_delays,
        max_attempts=settings.notifier_max_attempts,
        dedup_size=settings.notifier_dedup_size,
        ledger=ledger,
    )
    deliveries = [
        first,
        *(
            first.sibling(TimedTransport(build_transport(settings)))
            for _ in range(settings.notifier_senders - 1)
        ),
    ]
    return NotifierConsumer(
        settings.rabbitmq_url,
        settings.topology,
        deliveries,
        prefetch=settings.notifier_prefetch,
        heartbeat=settings.rabbitmq_heartbeat,
        health=HealthFile(settings.notifier_health_file),
        shutdown_grace=settings.shutdown_grace_seconds,
        topology_recheck=settings.notifier_topology_recheck_seconds,
    )


def open_ledger(settings: NotifierSettings) -> tuple[Engine, DeliveryLedger]:
    """The shared dedup ledger, its table migrated; waits a while for a starting PostgreSQL."""
    engine = make_engine(settings.database_url, pool_size=settings.notifier_senders + 1)
    prepare_database(settings.database_url, engine, create=settings.notifier_create_database)
    ledger = DeliveryLedger(
        engine,
        lease=settings.notifier_claim_lease_seconds,
        retention=settings.notifier_dedup_retention_seconds,
    )
    return engine, ledger


def purge_periodically(ledger: DeliveryLedger, stop: threading.Event, every: float = _PURGE_EVERY) -> None:
    """Delete expired ledger rows now and then (any instance may; they only delete expired rows)."""
    while not stop.wait(every * (0.5 + random.random())):
        try:
            purged = ledger.purge_expired()
        except SQLAlchemyError as exc:
            log.warning("could not purge the dedup ledger", extra={"error": str(exc)[:200]})
            continue
        if purged:
            log.info("dedup ledger purged", extra={"rows": purged})


def serve(settings: NotifierSettings) -> int:
    configure_logging("notifier", settings.log_level)
    # First: a tracing configuration this build cannot serve stops us before any work.
    configure_tracing("notifier")
    try:
        engine, ledger = open_ledger(settings)
    except SQLAlchemyError as exc:
        log.error(
            "cannot start: the dedup ledger's database is unreachable or misconfigured (DATABASE_URL)",
            extra={"error": str(exc)[:500]},
        )
        return 1
    instrument_engines(engine)  # tracing on: a span per ledger statement
    consumer = build_consumer(settings, ledger)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        consumer.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    stop_purging = threading.Event()
    purger = threading.Thread(target=purge_periodically, args=(ledger, stop_purging), daemon=True)
    purger.start()
    # A queue declared with other arguments does not end the process (that would be a
    # restart loop): the consumer logs what to do and waits for it, not ready.
    try:
        with metrics_served(settings.notifier_metrics_port, host=settings.notifier_metrics_host):
            consumer.run()
    finally:
        stop_purging.set()
        engine.dispose()
        shutdown_tracing()
    return 0


def healthcheck(settings: NotifierSettings, max_age: float, require_connected: bool) -> int:
    healthy, why = check(settings.notifier_health_file, max_age=max_age, require_connected=require_connected)
    sys.stdout.write(why + "\n")
    return 0 if healthy else 1


def run_parked(settings: NotifierSettings, limit: int, requeue: bool) -> int:
    """Print parked messages as JSON lines (they stay parked), or move them back to the work queue."""
    params = connection_parameters(settings.rabbitmq_url, connection_name="ocrmesh-notifier-parked")
    connection = pika.BlockingConnection(params)
    try:
        channel = connection.channel()
        try:
            settings.topology.declare(channel)
        except TopologyError as exc:
            sys.stderr.write(f"{exc}\n")
            return 1
        if requeue:
            moved, why_stopped = requeue_parked(channel, settings.topology, limit)
            sys.stdout.write(f"moved {moved} parked message(s) back to {settings.topology.queue}\n")
            if why_stopped:
                sys.stderr.write(f"stopped early: {why_stopped}\n")
                return 1
        else:
            for message in list_parked(channel, settings.topology, limit):
                sys.stdout.write(json.dumps(asdict(message), ensure_ascii=False) + "\n")
    finally:
        connection.close()
    return 0


def run_migration(settings: NotifierSettings) -> int:
    """Migrate the queues (see `notifier.migration`); prints what moved."""
    params = connection_parameters(settings.rabbitmq_url, connection_name="ocrmesh-notifier-migrate")
    connection = pika.BlockingConnection(params)
    try:
        migrated = migrate_topology(connection.channel, settings.topology)
    except MigrationError as exc:
        sys.stderr.write(f"not migrated: {exc}\n")
        return 1
    finally:
        if connection.is_open:
            connection.close()
    for step in migrated:
        sys.stdout.write(f"migrated {step.queue} ({step.moved} message(s) kept)\n")
    if not migrated:
        sys.stdout.write("nothing to migrate: every email queue is missing or already as declared\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m notifier", description="Deliver email events from RabbitMQ."
    )
    commands = parser.add_subparsers(dest="command")
    health = commands.add_parser("healthcheck", help="exit 0 while the notifier's health file is fresh")
    health.add_argument("--max-age", type=float, default=30.0, help="seconds (default 30)")
    health.add_argument("--require-connected", action="store_true", help="also fail while reconnecting")
    parked = commands.add_parser("parked", help="print parked messages and the reason they were parked")
    parked.add_argument("--limit", type=int, default=100)
    parked.add_argument("--requeue", action="store_true", help="move them back to the work queue instead")
    commands.add_parser(
        "migrate-queues",
        help="redeclare email queues of an older version (classic -> quorum), keeping their messages",
    )
    args = parser.parse_args(argv)

    settings = load_settings(NotifierSettings)
    if args.command == "healthcheck":
        return healthcheck(settings, args.max_age, args.require_connected)
    if args.command == "parked":
        return run_parked(settings, args.limit, args.requeue)
    if args.command == "migrate-queues":
        return run_migration(settings)
    return serve(settings)


if __name__ == "__main__":
    raise SystemExit(main())
