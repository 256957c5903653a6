"""The fault suite's ledger waits out a dead notifier's claims: a claim unsent for a while is
counted (its event will be sent again once the lease runs out), a fresh claim or a sent one
is not."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from harness.faults.ledger import stale_claims
from harness.scratch import create_scratch_database, drop_database
from notifier.ledger import metadata

pytestmark = pytest.mark.integration


@pytest.fixture
def engine(postgres_admin_url: str, unique_name: str) -> Iterator[Engine]:
    url = create_scratch_database(postgres_admin_url, f"ocrmesh_{unique_name}")
    made = create_engine(url, poolclass=NullPool)
    try:
        yield made
    finally:
        made.dispose()
        drop_database(url)


def test_only_claims_unsent_for_a_while_are_pending(engine: Engine) -> None:
    with engine.begin() as connection:
        assert stale_claims(connection) == 0  # no notifier has made its table yet
    metadata.create_all(engine)
    with engine.begin() as connection:
        for event, claimed_ago, sent in (("dead", 20, False), ("fresh", 0, False), ("sent", 20, True)):
            connection.execute(
                text(
                    "INSERT INTO notifier_deliveries (event_id, claimed_by, claimed_at, sent_at, expires_at) "
                    "VALUES (:event, 'n1', now() - make_interval(secs => :ago), "
                    "CASE WHEN :sent THEN now() END, now() + interval '1 hour')"
                ),
                {"event": event, "ago": claimed_ago, "sent": sent},
            )
        assert stale_claims(connection) == 1
