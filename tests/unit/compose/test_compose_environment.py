"""docker-compose.yml's environment held against the settings classes: every variable one
the service reads, values each service accepts, no default left pointing at the container
itself, and URLs that reach the database, the broker and the mail catcher compose runs."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from harness.deployment import APP_SERVICES, SAMPLE_SECRETS, AppService, environment, host_of, settings_from
from tests.unit.compose.service_kinds import APP_IDS


@pytest.mark.parametrize("app", APP_SERVICES, ids=APP_IDS)
def test_every_variable_a_service_is_given_is_one_of_its_settings(
    app: AppService, svc: dict[str, dict[str, Any]]
) -> None:
    # extra="ignore" in the settings would silently drop a misspelt name. OTEL_* are
    # OpenTelemetry's own variables, read by ocrmesh.platform.telemetry and the SDK (tested in
    # test_compose_observability.py).
    known = {name.upper() for name in app.settings.model_fields}
    unknown = {name for name in environment(svc[app.name]) if not name.startswith("OTEL_")} - known
    assert not unknown, f"{app.name} does not read {sorted(unknown)}"


def test_the_key_init_reads_the_variable_auth_svc_reads(svc: dict[str, dict[str, Any]]) -> None:
    keys_env = environment(svc["auth-keys"])
    assert set(keys_env) == {"AUTH_SIGNING_KEY_FILE"}
    assert keys_env["AUTH_SIGNING_KEY_FILE"] == environment(svc["auth"])["AUTH_SIGNING_KEY_FILE"]


@pytest.mark.parametrize("app", APP_SERVICES, ids=APP_IDS)
def test_each_service_accepts_its_compose_environment(
    app: AppService, svc: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = environment(svc[app.name])
    required = {name.upper() for name, field in app.settings.model_fields.items() if field.is_required()}
    assert required <= set(env), f"{app.name} needs {sorted(required - set(env))}"
    # Validation (types, ranges, cross-field rules such as production needing a key file)
    # passes with exactly what compose gives the container.
    settings_from(app, env, monkeypatch)


@pytest.mark.parametrize("app", APP_SERVICES, ids=APP_IDS)
def test_no_service_keeps_a_default_that_points_at_localhost(
    app: AppService, svc: dict[str, dict[str, Any]]
) -> None:
    # In a container, 127.0.0.1 is the container itself: every default address must be replaced.
    env = environment(svc[app.name])
    local = {
        name.upper()
        for name, field in app.settings.model_fields.items()
        if isinstance(field.default, str) and ("127.0.0.1" in field.default or "localhost" in field.default)
    }
    assert local, "expected the address defaults of DESIGN.md"
    assert local <= set(env), f"{app.name} would call itself: set {sorted(local - set(env))}"
    # Where a gRPC server listens (loopback by default, issue 14): the container's network.
    listen = {name for name in local if name.endswith("_HOST")}
    for name in listen:
        assert env[name] == "0.0.0.0", f"{name} must name the service network, not loopback"
    for name in local - listen:
        assert host_of(env[name]) in svc, f"{name}={env[name]} names no compose service"


def test_the_database_url_matches_the_database_postgres_creates(svc: dict[str, dict[str, Any]]) -> None:
    postgres = environment(svc["postgres"])
    url = urlsplit(environment(svc["auth"])["DATABASE_URL"])
    assert url.scheme == "postgresql+psycopg2"
    assert (url.hostname, url.port) == ("postgres", 5432)
    assert url.username == postgres["POSTGRES_USER"]
    assert unquote(url.password or "") == postgres["POSTGRES_PASSWORD"] == SAMPLE_SECRETS["POSTGRES_PASSWORD"]
    assert url.path.lstrip("/") == postgres["POSTGRES_DB"]


def test_every_broker_client_uses_the_user_rabbitmq_creates(svc: dict[str, dict[str, Any]]) -> None:
    rabbitmq = environment(svc["rabbitmq"])
    clients = [name for name, s in svc.items() if "RABBITMQ_URL" in environment(s)]
    assert set(clients) == {"auth", "ocr", "notifier"}
    urls = {environment(svc[name])["RABBITMQ_URL"] for name in clients}
    assert len(urls) == 1, "the producers and the consumer must reach the same broker and vhost"
    url = urlsplit(urls.pop())
    assert (url.scheme, url.hostname, url.port, url.path) == ("amqp", "rabbitmq", 5672, "/%2F")
    assert url.username == rabbitmq["RABBITMQ_DEFAULT_USER"]
    assert unquote(url.password or "") == rabbitmq["RABBITMQ_DEFAULT_PASS"]


def test_the_notifier_sends_to_the_mail_catcher(svc: dict[str, dict[str, Any]]) -> None:
    notifier_env = environment(svc["notifier"])
    assert notifier_env["SMTP_HOST"] == "mailpit"
    assert notifier_env["SMTP_PORT"] == "1025"  # Mailpit's SMTP port
    assert "SMTP_STARTTLS" not in notifier_env
    assert "SMTP_TLS" not in notifier_env
