"""Passwords are rehashed at login when the Argon2 parameters changed (use cases on real PostgreSQL)."""

from __future__ import annotations

import uuid

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from auth_svc.db import make_session_factory
from auth_svc.keys import TokenSigner
from auth_svc.orm import User
from auth_svc.passwords import Argon2Parameters, PasswordHasher
from auth_svc.repository import AuthRepository
from auth_svc.use_cases import AuthContext, UseCases

pytestmark = pytest.mark.integration

OLD = Argon2Parameters(memory_kib=8_192, time_cost=1, parallelism=1)
NEW = Argon2Parameters(memory_kib=19_456, time_cost=2, parallelism=1)


def use_cases(engine: Engine, params: Argon2Parameters, signer: TokenSigner) -> UseCases:
    repository = AuthRepository(make_session_factory(engine))
    return UseCases.of(AuthContext(repository, PasswordHasher(params), signer))


def stored_hash(engine: Engine, email: str) -> str:
    with Session(engine) as session:
        return str(session.scalar(select(User.password_hash).where(func.lower(User.email) == email)))


def test_login_rehashes_a_password_hashed_with_old_parameters(auth_engine: Engine) -> None:
    signer = TokenSigner(Ed25519PrivateKey.generate(), issuer="i", audience="a", ttl_seconds=60)
    email = f"rehash-{uuid.uuid4().hex[:8]}@example.com"
    use_cases(auth_engine, OLD, signer).sign_up.register(
        name="Ada", email=email, password="correct horse battery"
    )
    with Session(auth_engine) as session, session.begin():
        session.execute(update(User).where(func.lower(User.email) == email).values(is_verified=True))
    assert "m=8192,t=1" in stored_hash(auth_engine, email)

    current = use_cases(auth_engine, NEW, signer)
    current.sessions.login(email=email, password="correct horse battery")

    rehashed = stored_hash(auth_engine, email)
    assert "$argon2id$" in rehashed
    assert "m=19456,t=2,p=1" in rehashed
    # And the new hash still verifies the same password.
    assert current.sessions.login(email=email, password="correct horse battery").token
    assert stored_hash(auth_engine, email) == rehashed
