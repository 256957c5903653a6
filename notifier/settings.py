"""The notifier's configuration, from the environment only."""

from __future__ import annotations

from email.utils import parseaddr
from pathlib import Path
from typing import Self

from pydantic import Field, SecretStr, field_validator, model_validator

from notifier.db import DEFAULT_DATABASE_URL
from ocrmesh.rules.email_events.settings import EmailEventSettings


class NotifierSettings(EmailEventSettings):
    """Env vars: DATABASE_URL, RABBITMQ_URL, EMAIL_QUEUE, SMTP_*, MAIL_FROM, MAIL_DIR, NOTIFIER_*
    (see docs/notifications.md)."""

    # The dedup ledger every notifier instance shares: the mesh's database (auth_svc's).
    database_url: str = DEFAULT_DATABASE_URL
    # Create the database named by DATABASE_URL when missing (a laptop; never needed in compose).
    notifier_create_database: bool = True
    # A claim not renewed for this long is taken to be a dead instance's and may be claimed
    # again. The holder renews it every quarter of this while its send is in progress, so a
    # send may take longer; what it bounds is how long a dead instance's claims wait.
    notifier_claim_lease_seconds: float = Field(default=15.0, gt=0, le=86_400)
    # How long a sent event id is remembered (redeliveries and producer retries come sooner).
    notifier_dedup_retention_seconds: float = Field(default=7 * 86_400.0, gt=0, le=365 * 86_400)
    # Mails sent in parallel by one process, each sender with its own SMTP connection.
    notifier_senders: int = Field(default=4, ge=1, le=64)

    rabbitmq_heartbeat: int = Field(default=30, ge=1, le=600)
    notifier_max_attempts: int = Field(default=5, ge=1, le=100)
    notifier_prefetch: int = Field(default=10, ge=1, le=1000)
    # How many delivered event ids are remembered to drop redeliveries.
    notifier_dedup_size: int = Field(default=100_000, ge=1)
    notifier_health_file: Path = Path("var/notifier.health")
    # Prometheus `/metrics` on NOTIFIER_METRICS_HOST:NOTIFIER_METRICS_PORT; unset: none.
    notifier_metrics_port: int | None = Field(default=None, ge=0, le=65535)
    notifier_metrics_host: str = "127.0.0.1"
    # While a queue exists with other arguments (a classic queue to migrate), how often the
    # notifier looks again whether it was fixed.
    notifier_topology_recheck_seconds: float = Field(default=30.0, gt=0, le=3600)

    smtp_host: str | None = None
    smtp_port: int | None = Field(default=None, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_tls: bool = False
    # Logging in over a connection that is neither STARTTLS nor TLS sends the password in
    # clear text; refused unless an operator opts in (a relay on the same host, say).
    smtp_allow_plaintext_auth: bool = False
    # Extra CA bundle to verify the SMTP server's certificate (a private relay); system CAs otherwise.
    smtp_ca_file: Path | None = None
    smtp_timeout: float = Field(default=30.0, gt=0, le=600)
    # One connection carries many mails: reopened after this many, or after this idle time.
    smtp_max_messages_per_connection: int = Field(default=100, ge=1, le=100_000)
    smtp_idle_seconds: float = Field(default=30.0, gt=0, le=3600)
    mail_from: str = "ocrmesh <no-reply@ocrmesh.local>"
    mail_dir: Path = Path("var/mail")

    @field_validator("smtp_host", "smtp_username", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("mail_from")
    @classmethod
    def _valid_sender(cls, value: str) -> str:
        # Syntax only: a local sender such as no-reply@ocrmesh.local is legitimate here,
        # although email-validator rejects special-use domains.
        _, address = parseaddr(value)
        local, at, domain = address.partition("@")
        if "\r" in value or "\n" in value or not (local and at and domain) or " " in address:
            raise ValueError("must be an address like 'ocrmesh <no-reply@example.com>'")
        return value

    @model_validator(mode="after")
    def _consistent_smtp(self) -> Self:
        if self.notifier_dedup_retention_seconds <= self.notifier_claim_lease_seconds:
            raise ValueError(
                "NOTIFIER_DEDUP_RETENTION_SECONDS must be longer than NOTIFIER_CLAIM_LEASE_SECONDS"
            )
        if self.smtp_starttls and self.smtp_tls:
            raise ValueError("SMTP_STARTTLS and SMTP_TLS (implicit TLS) exclude each other")
        if (self.smtp_username is None) != (self.smtp_password is None):
            raise ValueError("SMTP_USERNAME and SMTP_PASSWORD go together")
        if (
            self.smtp_host is not None
            and self.smtp_username is not None
            and not (self.smtp_starttls or self.smtp_tls or self.smtp_allow_plaintext_auth)
        ):
            raise ValueError(
                "SMTP_USERNAME is set but the SMTP connection is not encrypted, so the password "
                "would cross the network in clear text: set SMTP_STARTTLS=true (port 587) or "
                "SMTP_TLS=true (port 465), or SMTP_ALLOW_PLAINTEXT_AUTH=true to accept that"
            )
        return self

    @property
    def resolved_smtp_port(self) -> int:
        """SMTP_PORT, or 465 for implicit TLS, 587 for STARTTLS, 25 otherwise."""
        if self.smtp_port is not None:
            return self.smtp_port
        return 465 if self.smtp_tls else 587 if self.smtp_starttls else 25
