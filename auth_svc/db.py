"""auth_svc's PostgreSQL plumbing: the engines, sessions, the retried read, the readiness
check's connection, its migrations.
Creating, migrating and dropping databases is shared with the notifier: `ocrmesh.platform.database`."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from ocrmesh.platform.database import Migrations, drop_database, ensure_database

log = logging.getLogger(__name__)

# The advisory lock id is any constant, the same for every auth_svc instance.
MIGRATIONS = Migrations(Path(__file__).parent / "migrations", lock_id=0x0C12_A17E, name="auth_svc")
# Connections older than this are replaced on checkout (firewalls and proxies drop idle ones).
POOL_RECYCLE_S = 1800

T = TypeVar("T")


def make_engine(url: str, *, pool_size: int = 8, autocommit: bool = False) -> Engine:
    """An engine for `url` whose connections fail fast and never hang a request forever.

    `autocommit`: for reads outside a transaction (`read`): a SELECT is one round trip, with
    no BEGIN before it and no ROLLBACK after it. (A separate engine rather than a
    per-connection option, which costs a round trip to reset on every check-in.)

    No ping on checkout: it was a round trip on every call (a tenth of a GetCurrentUser).
    A connection the server dropped (a restart) fails its statement instead, which makes
    SQLAlchemy replace every connection of the pool; `read` then runs the query again on a
    new one, and a write answers "unavailable, retry" once. The readiness check
    (`auth_svc.health`) also replaces them as soon as it sees the database come back.
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


def make_probe_engine(url: str, *, timeout_seconds: float) -> Engine:
    """The readiness check's engine (`auth_svc.health`): one connection, kept open between
    checks (a new one every few seconds would be a server process forked each time), apart
    from the request pools so a check never queues behind requests, and every wait bounded
    by about `timeout_seconds`: the connect, the statement on the server, and data the
    network stops acknowledging (`tcp_user_timeout`: a cut link fails instead of hanging)."""
    millis = max(1, int(timeout_seconds * 1000))
    return create_engine(
        url,
        pool_size=1,
        max_overflow=0,
        pool_pre_ping=False,
        pool_recycle=POOL_RECYCLE_S,
        pool_timeout=timeout_seconds,
        isolation_level="AUTOCOMMIT",
        connect_args={
            # libpq waits at least 2 s, whatever smaller value it is given.
            "connect_timeout": max(2, math.ceil(timeout_seconds)),
            "application_name": "auth_svc-health",
            "options": f"-c statement_timeout={millis}",
            "tcp_user_timeout": millis,
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


def alembic_config() -> Config:
    return MIGRATIONS.config()


def migrate(engine: Engine) -> None:
    """Bring auth_svc's schema to the newest revision (one instance at a time)."""
    MIGRATIONS.apply(engine)


__all__ = [
    "MIGRATIONS",
    "alembic_config",
    "drop_database",
    "ensure_database",
    "make_engine",
    "make_probe_engine",
    "make_session_factory",
    "migrate",
    "read",
]
