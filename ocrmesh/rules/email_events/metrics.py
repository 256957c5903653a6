"""Metrics of the email publisher (auth_svc's outbox, ocr_svc's completion mail); the names
and labels are those docs/observability.md lists and the dashboards query.

Both are labelled, so that a forked worker creates its values after the switch to
multiprocess mode (see ocrmesh.platform.metrics).
"""

from __future__ import annotations

from prometheus_client import Counter

EMAIL_PUBLISHER_CONFIRMS = Counter(
    "email_publisher_confirms_total",
    "Broker confirms of published email events: ack, nack (queue full), returned (unroutable).",
    ["outcome"],
)
EMAIL_PUBLISHER_RETURNS = Counter(
    "email_publisher_returns_total",
    "Email events the broker returned as unroutable (no queue bound), by AMQP reply.",
    ["reply"],
)

# The AMQP reply code of a mandatory message that no queue took.
NO_ROUTE = 312


def count_publisher_return(reply_code: int | None) -> None:
    """Count a returned message; 312 NO_ROUTE is the one expected, the rest is "other"."""
    EMAIL_PUBLISHER_RETURNS.labels("no_route" if reply_code == NO_ROUTE else "other").inc()
