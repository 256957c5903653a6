"""PostgreSQL plumbing of the notifier: the engine, creating the database, applying migrations.

The same approach as auth_svc (Alembic, an advisory lock so that instances starting together
take turns), on the same database by default, with the notifier's own revision table.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

log = logging.getLogger(__name__)

DEFAULT_DATABASE_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/ocrmesh"
MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# auth_svc's revisions live in `alembic_version` in the same database.
VERSION_TABLE = "notifier_alembic_version"
# Any constant works; it only has to be the same for every notifier instance (and differ
# from auth_svc's).
_MIGRATION_LOCK_ID = 0x0C12_0A11


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


def ensure_database(url: str) -> bool:
    """Create the database named in `url` when it does not exist. True when it was created."""
    target = make_url(url)
    name = target.database
    if not name:
        raise ValueError("DATABASE_URL names no database")
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            exists = connection.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            ).scalar()
            if exists:
                return False
            quoted = admin.dialect.identifier_preparer.quote(name)
            try:
                connection.execute(text(f"CREATE DATABASE {quoted}"))
            except (ProgrammingError, IntegrityError):
                # Another instance (or auth_svc) created it at the same moment.
                if connection.execute(
                    text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
                ).scalar():
                    return False
                raise
            log.info("database created", extra={"database": name})
            return True
    finally:
        admin.dispose()


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def migrate(engine: Engine) -> None:
    """Bring the notifier's tables to the newest revision, one instance at a time."""
    config = alembic_config()
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
        try:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
            connection.commit()
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": _MIGRATION_LOCK_ID})
            connection.commit()
    log.info("notifier schema up to date")


def prepare_database(url: str, engine: Engine, *, create: bool, wait_seconds: float = 30.0) -> None:
    """Create the database if allowed and missing, then migrate; a PostgreSQL still starting
    (compose, `make up`) is waited for up to `wait_seconds`."""
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            if create:
                ensure_database(url)
            migrate(engine)
            return
        except OperationalError as exc:
            if time.monotonic() >= deadline:
                raise
            log.warning("database not reachable yet, retrying", extra={"error": str(exc.orig).strip()[:200]})
            time.sleep(1.0)
