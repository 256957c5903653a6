"""The base of every service's settings class: environment only, validated at start-up."""

from __future__ import annotations

import logging
import sys
from typing import Literal, TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger(__name__)

DEFAULT_RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
DEFAULT_AUTH_ADDR = "127.0.0.1:50051"
DEFAULT_OCR_ADDR = "127.0.0.1:50052"

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class ServiceSettings(BaseSettings):
    """Fields every service has. Subclasses add their own; values come from the environment."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore", frozen=True)

    log_level: LogLevel = "INFO"
    # Seconds a stopping server gives in-flight calls before cancelling them.
    shutdown_grace_seconds: float = 10.0


S = TypeVar("S", bound=BaseSettings)


def load_settings(cls: type[S]) -> S:
    """Build settings from the environment, or exit with a readable list of what is wrong.

    A bad value stops the process before it serves anything (fail fast), with exit code 2
    and no stack trace.
    """
    try:
        return cls()
    except ValidationError as exc:
        lines = [f"invalid configuration for {cls.__name__}:"]
        for error in exc.errors():
            name = ".".join(str(p) for p in error["loc"]).upper() or "?"
            lines.append(f"  {name}: {error['msg']}")
        sys.stderr.write("\n".join(lines) + "\n")
        raise SystemExit(2) from None
