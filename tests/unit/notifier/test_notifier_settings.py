"""NotifierSettings from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from notifier.settings import NotifierSettings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "EMAIL_QUEUE",
        "EMAIL_RETRY_DELAYS",
        "SMTP_HOST",
        "SMTP_PORT",
        "SMTP_TLS",
        "SMTP_STARTTLS",
        "SMTP_USERNAME",
        "SMTP_PASSWORD",
        "MAIL_FROM",
        "MAIL_DIR",
        "SMTP_ALLOW_PLAINTEXT_AUTH",
        "EMAIL_QUEUE_MAX_LENGTH",
    ):
        monkeypatch.delenv(name, raising=False)


def test_defaults_write_files_under_var_mail() -> None:
    settings = NotifierSettings()
    assert settings.smtp_host is None
    assert settings.mail_dir == Path("var/mail")
    assert settings.topology.queue == "email_notification"
    assert settings.notifier_max_attempts == 5


def test_delays_are_comma_separated_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMAIL_RETRY_DELAYS", "1,2.5,60")
    monkeypatch.setenv("EMAIL_QUEUE", "q")
    settings = NotifierSettings()
    assert settings.email_retry_delays == (1.0, 2.5, 60.0)
    assert settings.topology.retry_queues == ("q.retry.1s", "q.retry.2500ms", "q.retry.60s")


@pytest.mark.parametrize(
    ("env", "port"),
    [({}, 25), ({"SMTP_STARTTLS": "true"}, 587), ({"SMTP_TLS": "1"}, 465), ({"SMTP_PORT": "2525"}, 2525)],
)
def test_the_smtp_port_follows_the_tls_mode(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], port: int
) -> None:
    for name, value in {"SMTP_HOST": "mail.example.com", **env}.items():
        monkeypatch.setenv(name, value)
    assert NotifierSettings().resolved_smtp_port == port


@pytest.mark.parametrize(
    "env",
    [
        {"SMTP_TLS": "true", "SMTP_STARTTLS": "true"},
        {"SMTP_USERNAME": "user"},
        {"MAIL_FROM": "not an address"},
        {"EMAIL_RETRY_DELAYS": "soon"},
        {"SMTP_PORT": "70000"},
    ],
)
def test_inconsistent_configuration_fails_at_start(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        NotifierSettings()


def test_a_login_over_plaintext_smtp_is_refused_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"SMTP_HOST": "mail.example.com", "SMTP_USERNAME": "u", "SMTP_PASSWORD": "p"}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match="clear text"):
        NotifierSettings()
    monkeypatch.setenv("SMTP_STARTTLS", "true")
    assert NotifierSettings().smtp_username == "u"
    monkeypatch.setenv("SMTP_STARTTLS", "false")
    monkeypatch.setenv("SMTP_ALLOW_PLAINTEXT_AUTH", "true")  # an operator's explicit choice
    assert NotifierSettings().smtp_allow_plaintext_auth is True


def test_the_queue_length_limit_is_part_of_the_topology(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMAIL_QUEUE_MAX_LENGTH", "500")
    assert NotifierSettings().topology.max_length == 500
    monkeypatch.setenv("EMAIL_QUEUE_MAX_LENGTH", "0")
    with pytest.raises(ValidationError):
        NotifierSettings()
