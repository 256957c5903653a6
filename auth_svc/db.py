"""PostgreSQL plumbing: the engine, sessions, creating the database, applying migrations."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Any constant works; it only has to be the same for every auth_svc instance.
_MIGRATION_LOCK_ID = 0x0C12_A17E
# Connections older than this are replaced on checkout (firewalls and proxies drop idle ones).
POOL_RECYCLE_S = 1800

T = TypeVar("T")
# SQLSTATEs of CREATE DATABASE losing a race: duplicate_database, or unique_violation on
# pg_database's name index when both got past the existence check at the same moment.
_DATABASE_EXISTS = frozenset({"42P04", "23505"})


def make_engine(url: str, *, pool_size: int = 8, autocommit: bool = False) -> Engine:
    """An engine for `url` whose connections fail fast and never hang a request forever.

    `autocommit`: for reads outside a transaction (`read`): a SELECT is one round trip, with
    no BEGIN before it and no ROLLBACK after it. (A separate engine rather than a
    per-connection option, which costs a round trip to reset on every check-in.)

    No ping on checkout: it was a round trip on every call (a tenth of a GetCurrentUser).
    A connection the server dropped (a restart) fails its statement instead, which makes
    SQLAlchemy replace every connection of the pool; `read` then runs the query again on a
    new one, and a write answers "unavailable, retry" once.
    """
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=4,
        pool_pre_ping=False,
        pool_recycle=POOL_RECYCLE_S,
        pool_timeout=10,
        isolation_level="AUTOCOMMIT" if autocommit else "READ COMMITTED",
        connect_args={
            "connect_timeout": 5,
            "application_name": "auth_svc",
            # A statement that runs this long is a bug or a lock pile-up, not work.
            "options": "-c statement_timeout=15000 -c lock_timeout=10000",
        },
    )


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def read(engine: Engine, query: Callable[[Connection], T]) -> T:
    """`query(connection)` on a pooled connection of `engine`; when that connection turns
    out to be dead (the database restarted since it was opened), once more on a new one.
    Only for statements that are safe to repeat."""
    try:
        with engine.connect() as connection:
            return query(connection)
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
        log.warning("database connection lost; retrying on a new one")
    with engine.connect() as connection:
        return query(connection)


def ensure_database(url: str) -> bool:
    """Create the database named in `url` when it does not exist. True when it was created.

    Connects to the server's `postgres` database to do so; the same credentials must be
    allowed to CREATE DATABASE.
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
                # Another instance (AUTH_PROCESSES, a replica) created it since the check.
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


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision. Instances starting together take turns
    (an advisory lock), so only one of them runs each migration."""
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
    log.info("database schema up to date")
