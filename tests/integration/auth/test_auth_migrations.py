"""The Alembic migrations and the ORM models describe the same schema, and they apply
(and revert) on an empty database through the service's own code path."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect
from sqlalchemy.engine import make_url

from auth_svc.db import alembic_config, drop_database, ensure_database, make_engine, migrate
from auth_svc.orm import Base

pytestmark = pytest.mark.integration


@pytest.fixture
def empty_engine(postgres_admin_url: str, run_id: str) -> Iterator[Engine]:
    url = (
        make_url(postgres_admin_url)
        .set(database=f"ocrmesh_test_{run_id}_auth_mig")
        .render_as_string(hide_password=False)
    )
    ensure_database(url)
    engine = make_engine(url, pool_size=1)
    yield engine
    engine.dispose()
    drop_database(url)


def test_models_match_the_migrated_schema(auth_engine: Engine) -> None:
    with auth_engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)

    assert diff == []


def test_migrations_apply_twice_and_revert(empty_engine: Engine) -> None:
    migrate(empty_engine)
    migrate(empty_engine)  # a restart finds nothing to do
    assert {"users", "verification_codes", "outbox"} <= set(inspect(empty_engine).get_table_names())

    config = alembic_config()
    with empty_engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "base")

    assert set(inspect(empty_engine).get_table_names()) == {"alembic_version"}


def test_instances_creating_the_database_at_once_all_start(postgres_admin_url: str, run_id: str) -> None:
    url = (
        make_url(postgres_admin_url)
        .set(database=f"ocrmesh_test_{run_id}_auth_race")
        .render_as_string(hide_password=False)
    )
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            created = list(pool.map(lambda _: ensure_database(url), range(4)))
        assert created.count(True) == 1
    finally:
        drop_database(url)
