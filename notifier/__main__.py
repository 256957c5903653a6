"""`python -m notifier`: deliver email events from RabbitMQ.

Commands:
    python -m notifier                      consume until SIGTERM/SIGINT
    python -m notifier healthcheck          exit 0 while the notifier's health file is fresh
    python -m notifier parked [--limit N]   print parked messages and why (they stay parked)
    python -m notifier parked --requeue     move parked messages back to the work queue
    python -m notifier migrate-queues       redeclare queues of an older version (classic -> quorum)

The wiring is `notifier.app`'s; here are the commands and their exit codes.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from dataclasses import asdict
from types import FrameType

import pika
from sqlalchemy.exc import SQLAlchemyError

from notifier.app import create_app
from notifier.health import check
from notifier.migration import MigrationError, migrate_topology
from notifier.parking import list_parked, requeue_parked
from notifier.settings import NotifierSettings
from ocrmesh.platform.amqp import connection_parameters
from ocrmesh.platform.logs import configure_logging
from ocrmesh.platform.processes import ExitCode
from ocrmesh.platform.settings import load_settings
from ocrmesh.rules.email_events.errors import TopologyError

log = logging.getLogger(__name__)


def serve(settings: NotifierSettings) -> int:
    """Consume until SIGTERM/SIGINT: the exit code."""
    configure_logging("notifier", settings.log_level)
    try:
        app = create_app(settings)
    except SQLAlchemyError as exc:
        log.error(
            "cannot start: the dedup ledger's database is unreachable or misconfigured (DATABASE_URL)",
            extra={"error": str(exc)[:500]},
        )
        return ExitCode.DEPENDENCY_UNREACHABLE

    def on_signal(signum: int, frame: FrameType | None) -> None:
        app.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    app.run()
    return ExitCode.OK


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
