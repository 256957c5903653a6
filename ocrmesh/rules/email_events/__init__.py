"""Email events over RabbitMQ: the one topology, the event factory and the confirmed publisher.

Producers (auth_svc, ocr_svc) and the consumer (notifier) import everything from here.
"""

from __future__ import annotations

from ocrmesh.rules.email_events.errors import EventsError, PublishError, PublishRejected, TopologyError
from ocrmesh.rules.email_events.messages import (
    CONTENT_TYPE,
    EVENT_TYPE,
    event_properties,
    new_email_event,
)
from ocrmesh.rules.email_events.publisher import AsyncEmailPublisher, EmailPublisher
from ocrmesh.rules.email_events.topology import (
    DEFAULT_EMAIL_QUEUE,
    DEFAULT_MAX_LENGTH,
    DEFAULT_RETRY_DELAYS,
    EmailTopology,
)

__all__ = [
    "CONTENT_TYPE",
    "DEFAULT_EMAIL_QUEUE",
    "DEFAULT_MAX_LENGTH",
    "DEFAULT_RETRY_DELAYS",
    "EVENT_TYPE",
    "AsyncEmailPublisher",
    "EmailPublisher",
    "EmailTopology",
    "EventsError",
    "PublishError",
    "PublishRejected",
    "TopologyError",
    "event_properties",
    "new_email_event",
]
