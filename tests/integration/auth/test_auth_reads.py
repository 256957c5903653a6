"""The hot read (GetCurrentUser's user lookup) on real PostgreSQL: one autocommit statement,
and a connection the server dropped is replaced without the caller seeing an error."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, text

from auth_svc.db import make_engine, make_session_factory
from auth_svc.domain import UserGone
from auth_svc.keys import TokenSigner
from auth_svc.passwords import Argon2Parameters, PasswordHasher
from auth_svc.repository import AuthRepository
from auth_svc.use_cases import AuthContext, UseCases

pytestmark = pytest.mark.integration

FAST = Argon2Parameters(memory_kib=8_192, time_cost=1, parallelism=1)


@pytest.fixture
def reads(auth_database_url: str, auth_engine: Engine) -> Iterator[Engine]:
    engine = make_engine(auth_database_url, pool_size=2, autocommit=True)
    yield engine
    engine.dispose()


@pytest.fixture
def use_cases(auth_engine: Engine, reads: Engine) -> UseCases:
    signer = TokenSigner(Ed25519PrivateKey.generate(), issuer="i", audience="a", ttl_seconds=60)
    repository = AuthRepository(make_session_factory(auth_engine), reads=reads)
    return UseCases.of(AuthContext(repository, PasswordHasher(FAST), signer))


def backend_pids(engine: Engine) -> set[int]:
    """The server processes behind the connections `engine`'s pool holds now."""
    pids = set()
    connections = [engine.connect() for _ in range(engine.pool.checkedin())]
    for connection in connections:
        pids.add(int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one()))
    for connection in connections:
        connection.close()
    return pids


def terminate(admin: Engine, pids: set[int]) -> None:
    """What a database restart does to pooled connections: the server ends them."""
    with admin.connect() as connection:
        for pid in pids:
            connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        connection.commit()


def test_a_user_read_after_the_server_dropped_its_connection_still_answers(
    use_cases: UseCases,
    reads: Engine,
    postgres_admin_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    user = use_cases.sign_up.register(
        name="Ada", email=f"reads-{uuid.uuid4().hex[:8]}@example.com", password="a quiet reading room"
    )
    assert user is not None  # a new address: registered
    assert use_cases.views.get_user(str(user.id)).email == user.email  # the read pool now holds a connection

    pooled = backend_pids(reads)
    assert pooled
    admin = make_engine(postgres_admin_url, pool_size=1)
    try:
        terminate(admin, pooled)
    finally:
        admin.dispose()

    with caplog.at_level(logging.WARNING, logger="auth_svc.db"):
        assert use_cases.views.get_user(str(user.id)) == user
    assert "database connection lost" in caplog.text


def test_reads_run_outside_any_transaction(reads: Engine) -> None:
    with reads.connect() as connection:
        connection.execute(text("SELECT 1"))
        # psycopg2 in autocommit sends no BEGIN, so nothing is open to roll back on check-in.
        assert connection.connection.dbapi_connection.autocommit is True  # type: ignore[union-attr]
        assert connection.connection.dbapi_connection.get_transaction_status() == 0  # type: ignore[union-attr]


def test_an_unknown_or_malformed_user_id_is_user_gone(use_cases: UseCases) -> None:
    with pytest.raises(UserGone):
        use_cases.views.get_user(str(uuid.uuid4()))
    with pytest.raises(UserGone):
        use_cases.views.get_user("not-a-uuid")
