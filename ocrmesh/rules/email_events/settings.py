"""The settings every service that touches the email queues shares (producers and the
notifier), so all of them read the same variables and declare identical queues."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from ocrmesh.platform.settings import ServiceSettings
from ocrmesh.rules.email_events.topology import (
    DEFAULT_EMAIL_QUEUE,
    DEFAULT_MAX_LENGTH,
    DEFAULT_RETRY_DELAYS,
    EmailTopology,
    parse_delays,
)
from ocrmesh.rules.endpoints import DEFAULT_RABBITMQ_URL


class EmailEventSettings(ServiceSettings):
    """RABBITMQ_URL, EMAIL_QUEUE, EMAIL_RETRY_DELAYS (comma-separated seconds before each
    further delivery attempt; the last one repeats), EMAIL_QUEUE_MAX_LENGTH (messages the work
    queue holds before the broker nacks publishes)."""

    rabbitmq_url: str = DEFAULT_RABBITMQ_URL
    email_queue: str = Field(default=DEFAULT_EMAIL_QUEUE, min_length=1, max_length=200)
    email_retry_delays: Annotated[tuple[float, ...], NoDecode] = DEFAULT_RETRY_DELAYS
    # Part of the queue's declaration: every producer and the notifier must agree on it.
    email_queue_max_length: int = Field(default=DEFAULT_MAX_LENGTH, ge=1, le=100_000_000)

    @field_validator("email_retry_delays", mode="before")
    @classmethod
    def _split_delays(cls, value: object) -> object:
        return parse_delays(value) if isinstance(value, str) else value

    @property
    def topology(self) -> EmailTopology:
        """The email queues, as every producer and the notifier declare them."""
        return EmailTopology(
            queue=self.email_queue,
            retry_delays=self.email_retry_delays,
            max_length=self.email_queue_max_length,
        )
