"""Alembic environment: runs on the connection auth_svc.db.migrate() hands over, or on
DATABASE_URL when invoked through the alembic CLI."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Connection, create_engine, pool

from auth_svc.orm import Base
from ocrmesh.rules.endpoints import DEFAULT_DATABASE_URL

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as fresh:
        _run(fresh)
    engine.dispose()


if context.is_offline_mode():
    context.configure(
        url=os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL), target_metadata=target_metadata
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    run_online()
