"""auth_svc configuration: environment variables only, checked at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode

from ocrmesh.platform.settings import GrpcServerSettings
from ocrmesh.rules.account_rules import PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH
from ocrmesh.rules.email_events.settings import EmailEventSettings
from ocrmesh.rules.endpoints import DEFAULT_DATABASE_URL
from ocrmesh.rules.tokens import DEFAULT_TOKEN_AUDIENCE, DEFAULT_TOKEN_ISSUER


class AuthSettings(EmailEventSettings, GrpcServerSettings):
    """DATABASE_URL, RABBITMQ_URL, EMAIL_QUEUE, EMAIL_RETRY_DELAYS, AUTH_HOST, AUTH_PORT, ENVIRONMENT,
    AUTH_SIGNING_KEY_FILE, AUTH_EXTRA_PUBLIC_KEY_FILES (comma separated), AUTH_KEY_DIR,
    TOKEN_ISSUER, TOKEN_AUDIENCE, TOKEN_TTL_SECONDS, OTP_TTL_SECONDS,
    OTP_RESEND_COOLDOWN_SECONDS, OTP_MAX_ATTEMPTS, OTP_MAX_REQUESTS_PER_HOUR, PASSWORD_MIN_LENGTH,
    ARGON2_MEMORY_KIB, ARGON2_TIME_COST, ARGON2_PARALLELISM, AUTH_WORKERS, OUTBOX_POLL_SECONDS,
    OUTBOX_BATCH_SIZE, OUTBOX_PUBLISH_TIMEOUT_SECONDS, AUTH_CREATE_DATABASE, AUTH_PROCESSES,
    AUTH_METRICS_PORT,
    GRPC_TLS_CERT_FILE, GRPC_TLS_KEY_FILE, GRPC_TLS_CA_FILE."""

    database_url: str = DEFAULT_DATABASE_URL
    # Loopback unless told otherwise: compose and other machines set the service network.
    auth_host: str = "127.0.0.1"
    auth_port: int = Field(default=50051, ge=0, le=65535)
    # Prometheus `/metrics` on AUTH_HOST:AUTH_METRICS_PORT (every process's, added up); unset: none.
    auth_metrics_port: int | None = Field(default=None, ge=0, le=65535)
    # "production" forbids what is only convenient on a laptop (a generated signing key,
    # creating the database).
    environment: Literal["development", "test", "production"] = "development"

    # PEM (PKCS#8) Ed25519 private key that signs tokens. None: generated under AUTH_KEY_DIR.
    auth_signing_key_file: Path | None = None
    # Keys still accepted for verification during a rotation (public or private PEM files).
    auth_extra_public_key_files: Annotated[tuple[Path, ...], NoDecode] = ()
    auth_key_dir: Path = Path("var/keys")

    token_issuer: str = Field(default=DEFAULT_TOKEN_ISSUER, min_length=1)
    token_audience: str = Field(default=DEFAULT_TOKEN_AUDIENCE, min_length=1)
    token_ttl_seconds: int = Field(default=3600, ge=60, le=7 * 24 * 3600)

    otp_ttl_seconds: int = Field(default=600, ge=30, le=24 * 3600)
    otp_resend_cooldown_seconds: int = Field(default=60, ge=0, le=3600)
    otp_max_attempts: int = Field(default=5, ge=1, le=20)

    # ASVS 2.1.1: at least 12 characters; up to 128 of any kind, common ones refused. The
    # gateway's OpenAPI states the shared minimum: this may raise it, never lower it.
    password_min_length: int = Field(
        default=PASSWORD_MIN_LENGTH, ge=PASSWORD_MIN_LENGTH, le=PASSWORD_MAX_LENGTH
    )
    # Unverified accounts older than this hold their address no more (and are deleted).
    unverified_account_ttl_seconds: int = Field(default=24 * 3600, ge=1, le=30 * 24 * 3600)

    # Anti-automation (auth_svc.throttles; counted in PostgreSQL, shared by every replica).
    # Delays after the free attempts start at this and double.
    throttle_base_delay_seconds: float = Field(default=1.0, gt=0, le=60)
    # Wrong logins in 15 minutes that lock an address (account) or a client address.
    login_max_failures_per_account: int = Field(default=20, ge=1, le=10_000)
    login_max_failures_per_client: int = Field(default=100, ge=1, le=100_000)
    throttle_lock_seconds: int = Field(default=900, ge=1, le=24 * 3600)
    # Wrong codes per address in an hour, across resends, before it is locked.
    otp_max_failures_per_hour: int = Field(default=10, ge=1, le=1000)
    # Requests for a mail per address in an hour (sign-ups, resends, reset requests; known
    # and unknown addresses alike) before the address is refused for the hour. Far above a
    # person's needs: within the cooldown the requests mail nothing anyway.
    otp_max_requests_per_hour: int = Field(default=20, ge=1, le=10_000)
    otp_lock_seconds: int = Field(default=3600, ge=1, le=24 * 3600)
    # OWASP's Argon2id baseline (19 MiB, 2 passes, 1 lane): ~50 ms on one core.
    argon2_memory_kib: int = Field(default=19_456, ge=8_192, le=1_048_576)
    argon2_time_cost: int = Field(default=2, ge=1, le=10)
    argon2_parallelism: int = Field(default=1, ge=1, le=16)

    # Processes serving AUTH_PORT together (SO_REUSEPORT); 0 = one per core. Everything
    # below is per process: threads, connection pools (x2: transactions and reads), relays.
    auth_processes: int = Field(default=1, ge=0, le=64)
    # Threads that run database work and password hashing off the event loop; also the size
    # of each of the two connection pools they draw from.
    auth_workers: int = Field(default=8, ge=1, le=64)
    # Threads that run Argon2 (login, register), apart from the workers above, and how many
    # such calls may wait for one; beyond that a call is refused (RESOURCE_EXHAUSTED, 429).
    auth_hash_workers: int = Field(default=2, ge=1, le=64)
    auth_hash_queue: int = Field(default=32, ge=0, le=10_000)
    outbox_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    outbox_batch_size: int = Field(default=50, ge=1, le=1000)
    outbox_publish_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    # Create the database named by DATABASE_URL when missing (never in production).
    auth_create_database: bool = True

    @field_validator("auth_extra_public_key_files", mode="before")
    @classmethod
    def _split_paths(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(Path(part.strip()) for part in value.split(",") if part.strip())
        return value

    @field_validator("database_url")
    @classmethod
    def _postgres_only(cls, value: str) -> str:
        if not value.startswith(("postgresql://", "postgresql+psycopg2://")):
            raise ValueError("must be a postgresql:// or postgresql+psycopg2:// URL")
        return value

    @model_validator(mode="after")
    def _production_needs_a_key(self) -> AuthSettings:
        if self.environment == "production" and self.auth_signing_key_file is None:
            raise ValueError("AUTH_SIGNING_KEY_FILE is required when ENVIRONMENT=production")
        return self

    @property
    def may_generate_key(self) -> bool:
        return self.environment != "production"

    @property
    def may_create_database(self) -> bool:
        return self.auth_create_database and self.environment != "production"
