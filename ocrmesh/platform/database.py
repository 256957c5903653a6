"""PostgreSQL plumbing shared by the services that keep tables (auth_svc, the notifier):
creating the database, applying a service's Alembic migrations one instance at a time,
waiting for a server that is still starting, dropping a database (tests)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError

log = logging.getLogger(__name__)

# SQLSTATEs of CREATE DATABASE losing a race: duplicate_database, or unique_violation on
# pg_database's name index when both got past the existence check at the same moment.
_DATABASE_EXISTS = frozenset({"42P04", "23505"})


def ensure_database(url: str) -> bool:
    """Create the database named in `url` when it does not exist. True when it was created.

    Connects to the server's `postgres` database to do so; the same credentials must be
    allowed to CREATE DATABASE. Instances starting together (several processes, replicas,
    another service on the same database) may all call it: one creates, the others see it.
    """
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
            # Identifiers cannot be bound parameters; quote it the server's way.
            quoted = admin.dialect.identifier_preparer.quote(name)
            try:
                connection.execute(text(f"CREATE DATABASE {quoted}"))
            except DBAPIError as exc:
                if getattr(exc.orig, "pgcode", None) in _DATABASE_EXISTS:
                    return False
                raise
            log.info("database created", extra={"database": name})
            return True
    finally:
        admin.dispose()


def drop_database(url: str) -> None:
    """Drop the database named in `url` (tests), closing other sessions to it first."""
    target = make_url(url)
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            quoted = admin.dialect.identifier_preparer.quote(str(target.database))
            connection.execute(text(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))
    finally:
        admin.dispose()


@dataclass(frozen=True)
class Migrations:
    """A service's Alembic migrations: their folder (with its `env.py`) and the advisory
    lock its instances take turns with (any constant, different per service)."""

    directory: Path
    lock_id: int
    name: str

    def config(self) -> Config:
        config = Config()
        config.set_main_option("script_location", str(self.directory))
        return config

    def apply(self, engine: Engine) -> None:
        """Bring the schema to the newest revision. Instances starting together take turns
        (the advisory lock), so only one of them runs each migration."""
        config = self.config()
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": self.lock_id})
            try:
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
                connection.commit()
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": self.lock_id})
                connection.commit()
        log.info("%s schema up to date", self.name)


def prepare_database(
    url: str, engine: Engine, migrations: Migrations, *, create: bool, wait_seconds: float = 30.0
) -> None:
    """Create the database if allowed (`create`) and missing, then apply `migrations`. A
    PostgreSQL that is still starting (compose, `make up`) is waited for up to `wait_seconds`."""
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            if create:
                ensure_database(url)
            migrations.apply(engine)
            return
        except OperationalError as exc:
            if time.monotonic() >= deadline:
                raise
            log.warning("database not reachable yet, retrying", extra={"error": str(exc.orig).strip()[:200]})
            time.sleep(1.0)


__all__ = ["Migrations", "drop_database", "ensure_database", "prepare_database"]
