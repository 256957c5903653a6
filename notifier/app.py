"""Wiring: settings -> mail transports, the dedup ledger (PostgreSQL), the queue consumer.

`create_app(settings)` is what `python -m notifier` runs; `NotifierApp.run()` consumes until
`stop()`.
"""

from __future__ import annotations

import logging
import random
import ssl
import threading
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from notifier.consumer import NotifierConsumer
from notifier.db import make_engine, prepare_database
from notifier.delivery import MailDelivery
from notifier.health import HealthFile
from notifier.ledger import DeliveryLedger
from notifier.metrics import TimedTransport
from notifier.settings import NotifierSettings
from notifier.transports import FileTransport, MailTransport, SmtpTransport
from ocrmesh.platform.metrics import metrics_served
from ocrmesh.platform.telemetry import configure_tracing, instrument_engines, shutdown_tracing

log = logging.getLogger(__name__)

# Seconds between purges of expired dedup rows (randomised +-50% so instances spread out).
_PURGE_EVERY = 600.0


@dataclass
class NotifierApp:
    """A wired notifier: `run()` consumes until `stop()`, renewing the claims of the sends in
    progress, purging the dedup ledger and serving `/metrics` meanwhile, then releases the
    database and flushes the traces."""

    settings: NotifierSettings
    consumer: NotifierConsumer
    ledger: DeliveryLedger
    engine: Engine

    def run(self) -> None:
        """Consume until `stop()`. A queue declared with other arguments does not end it
        (that would be a restart loop): the consumer logs what to do and waits, not ready."""
        stop_purging = threading.Event()
        purger = threading.Thread(target=purge_periodically, args=(self.ledger, stop_purging), daemon=True)
        purger.start()
        try:
            # Renewing until the consumer returned: the mails in hand at a stop are sent and
            # marked (or released) first.
            with (
                self.ledger.renewing(),
                metrics_served(self.settings.notifier_metrics_port, host=self.settings.notifier_metrics_host),
            ):
                self.consumer.run()
        finally:
            stop_purging.set()
            self.engine.dispose()
            shutdown_tracing()

    def stop(self) -> None:
        """Ask `run()` to finish the mail in hand, settle it and return. Safe from signal handlers."""
        self.consumer.stop()


def create_app(settings: NotifierSettings) -> NotifierApp:
    """Build the notifier from `settings`: tracing on when the environment asks, the ledger's
    table migrated (waiting a while for a starting PostgreSQL), the consumer wired. Raises
    `SQLAlchemyError` when the ledger's database is unreachable or misconfigured."""
    # First: a tracing configuration this build cannot serve stops us before any work.
    configure_tracing("notifier")
    engine, ledger = open_ledger(settings)
    instrument_engines(engine)  # tracing on: a span per ledger statement
    return NotifierApp(settings, build_consumer(settings, ledger), ledger, engine)


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


__all__ = [
    "NotifierApp",
    "build_consumer",
    "build_transport",
    "create_app",
    "open_ledger",
    "purge_periodically",
]
