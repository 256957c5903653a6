"""The notifier's Prometheus metrics: what became of each message (delivered, duplicate,
retried, deferred, parked) and how long sending a mail takes."""

from __future__ import annotations

import time
from email.message import Message

from prometheus_client import Counter, Histogram

from notifier.transports import MailTransport, PermanentDeliveryError, SmtpTransport, TransientDeliveryError

NOTIFIER_MESSAGES = Counter(
    "notifier_messages_total",
    "Email events settled, by outcome: delivered, duplicate (deduplicated: sent before), "
    "retried (to a delay queue), deferred (another notifier holds it), parked (dead-letter queue).",
    ["outcome"],
)
NOTIFIER_SEND_SECONDS = Histogram(
    "notifier_send_seconds",
    "Time to hand one mail to the transport (smtp: the SMTP server's answer; file: a .eml written), "
    "by transport and result (sent, transient, permanent, error).",
    ["transport", "result"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)


def count_outcome(outcome: str) -> None:
    """Count a settled message (`outcome` is one of the five above)."""
    NOTIFIER_MESSAGES.labels(outcome).inc()


class TimedTransport:
    """A `MailTransport` that times every send of the one it wraps into `notifier_send_seconds`."""

    def __init__(self, inner: MailTransport) -> None:
        self.inner = inner
        self.kind = "smtp" if isinstance(inner, SmtpTransport) else "file"

    def send(self, message: Message, event_id: str) -> None:
        result = "error"
        started = time.perf_counter()
        try:
            self.inner.send(message, event_id)
            result = "sent"
        except TransientDeliveryError:
            result = "transient"
            raise
        except PermanentDeliveryError:
            result = "permanent"
            raise
        finally:
            NOTIFIER_SEND_SECONDS.labels(self.kind, result).observe(time.perf_counter() - started)

    def close(self) -> None:
        self.inner.close()

    def close_if_idle(self) -> None:
        self.inner.close_if_idle()
