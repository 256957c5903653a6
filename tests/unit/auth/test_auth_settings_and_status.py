"""auth_svc settings validation and the one exception-to-status table."""

from __future__ import annotations

import inspect
from pathlib import Path

import grpc
import pytest
from pydantic import ValidationError

from auth_svc import domain
from auth_svc.servicer import STATUS_FOR, status_for
from auth_svc.settings import AuthSettings


def test_defaults_match_the_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE_URL", "AUTH_PORT", "TOKEN_TTL_SECONDS", "EMAIL_QUEUE", "ENVIRONMENT"):
        monkeypatch.delenv(name, raising=False)

    settings = AuthSettings()

    assert settings.database_url == "postgresql+psycopg2://postgres@127.0.0.1:5432/ocrmesh"
    assert settings.auth_port == 50051
    assert (settings.token_issuer, settings.token_audience, settings.token_ttl_seconds) == (
        "ocrmesh-auth",
        "ocrmesh",
        3600,
    )
    assert (settings.otp_ttl_seconds, settings.otp_resend_cooldown_seconds, settings.otp_max_attempts) == (
        600,
        60,
        5,
    )
    assert settings.email_queue == "email_notification"


def test_extra_public_key_files_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTH_EXTRA_PUBLIC_KEY_FILES", "keys/old.pem, keys/older.pem,")

    assert AuthSettings().auth_extra_public_key_files == (Path("keys/old.pem"), Path("keys/older.pem"))


def test_production_requires_a_signing_key_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.delenv("AUTH_SIGNING_KEY_FILE", raising=False)

    with pytest.raises(ValidationError, match="AUTH_SIGNING_KEY_FILE"):
        AuthSettings()


def test_production_never_creates_databases_or_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("AUTH_SIGNING_KEY_FILE", "/run/secrets/auth.pem")

    settings = AuthSettings()

    assert not settings.may_generate_key
    assert not settings.may_create_database


def test_non_postgres_database_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "sqlite:///auth.db")

    with pytest.raises(ValidationError, match="postgresql"):
        AuthSettings()


def test_every_domain_error_has_a_status_that_is_not_internal() -> None:
    errors = [
        cls
        for _, cls in inspect.getmembers(domain, inspect.isclass)
        if issubclass(cls, domain.AuthError) and cls is not domain.AuthError
    ]

    assert errors
    for cls in errors:
        assert cls in STATUS_FOR, cls
        assert STATUS_FOR[cls] not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)


def test_status_for_unknown_exceptions_is_none() -> None:
    assert status_for(RuntimeError("bug")) is None
    assert status_for(domain.Throttled(12)) == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert status_for(domain.Busy()) == grpc.StatusCode.RESOURCE_EXHAUSTED
