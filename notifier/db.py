"""The notifier's PostgreSQL plumbing: its engine and migrations (the delivery ledger).

Creating and migrating the database is shared with auth_svc (`ocrmesh.platform.database`); the
notifier uses the same database by default, with its own revision table.
"""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config
from sqlalchemy import Engine, create_engine

from ocrmesh.platform.database import Migrations, ensure_database
from ocrmesh.platform.database import prepare_database as _prepare_database
from ocrmesh.rules.endpoints import DEFAULT_DATABASE_URL

# auth_svc's revisions live in `alembic_version` in the same database.
VERSION_TABLE = "notifier_alembic_version"
# The advisory lock id: the same for every notifier instance, different from auth_svc's.
MIGRATIONS = Migrations(Path(__file__).parent / "migrations", lock_id=0x0C12_0A11, name="notifier")


def make_engine(url: str, *, pool_size: int = 4) -> Engine:
    """An engine whose connections fail fast.

    Commits do not wait for the WAL flush (`synchronous_commit=off`): a PostgreSQL crash may
    forget the last few claims or "sent" marks, which can only make a mail go out twice,
    never lose one, and it spares a disk flush per mail.
    """
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=2,
        pool_pre_ping=True,
        pool_timeout=10,
        connect_args={
            "connect_timeout": 5,
            "application_name": "notifier",
            "options": "-c statement_timeout=10000 -c lock_timeout=5000 -c synchronous_commit=off",
        },
    )


def alembic_config() -> Config:
    return MIGRATIONS.config()


def migrate(engine: Engine) -> None:
    """Bring the notifier's tables to the newest revision, one instance at a time."""
    MIGRATIONS.apply(engine)


def prepare_database(url: str, engine: Engine, *, create: bool, wait_seconds: float = 30.0) -> None:
    """Create the database if allowed and missing, then migrate (waiting for a starting server)."""
    _prepare_database(url, engine, MIGRATIONS, create=create, wait_seconds=wait_seconds)


__all__ = [
    "DEFAULT_DATABASE_URL",
    "MIGRATIONS",
    "VERSION_TABLE",
    "alembic_config",
    "ensure_database",
    "make_engine",
    "migrate",
    "prepare_database",
]
