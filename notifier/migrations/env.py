"""Alembic environment of the notifier: runs on the connection notifier.db.migrate() hands over,
or on DATABASE_URL when invoked through the alembic CLI.

The notifier shares the mesh's database with auth_svc, so it keeps its own revision in
`notifier_alembic_version` and compares only its own tables.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Connection, create_engine, pool

from notifier.db import DEFAULT_DATABASE_URL, VERSION_TABLE
from notifier.ledger import metadata

config = context.config
target_metadata = metadata


def _include(name: str | None, type_: str, *_: object) -> bool:
    # Never touch auth_svc's tables (same database).
    return type_ != "table" or name in target_metadata.tables


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        version_table=VERSION_TABLE,
        include_name=_include,
    )
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
        url=os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL),
        target_metadata=target_metadata,
        version_table=VERSION_TABLE,
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    run_online()
