"""Where the mesh's parts are found when nothing says otherwise: the defaults of the
contract's variables (DATABASE_URL, RABBITMQ_URL, AUTH_ADDR, OCR_ADDR; the design's table
and README). Every service, the CLI and the benches take them from here, so a default is
changed in one place; operators set the variables."""

from __future__ import annotations

from typing import Final

DEFAULT_DATABASE_URL: Final = "postgresql+psycopg2://postgres@127.0.0.1:5432/ocrmesh"
DEFAULT_RABBITMQ_URL: Final = "amqp://guest:guest@127.0.0.1:5672/%2F"
DEFAULT_AUTH_ADDR: Final = "127.0.0.1:50051"
DEFAULT_OCR_ADDR: Final = "127.0.0.1:50052"

__all__ = ["DEFAULT_AUTH_ADDR", "DEFAULT_DATABASE_URL", "DEFAULT_OCR_ADDR", "DEFAULT_RABBITMQ_URL"]
