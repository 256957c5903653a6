"""The .eml file transport, SMTP reply classification and the health file."""

from __future__ import annotations

import json
import smtplib
import time
from email.message import EmailMessage
from pathlib import Path

import pytest

from notifier.health import HealthFile, check
from notifier.transports import (
    FileTransport,
    PermanentDeliveryError,
    SmtpTransport,
    TransientDeliveryError,
    _classify,
)


def test_each_mail_becomes_one_eml_file_and_no_temporary_is_left(tmp_path: Path) -> None:
    message = EmailMessage()
    message["To"] = "a@example.com"
    message.set_content("hello")
    transport = FileTransport(tmp_path / "mail")
    transport.send(message, "ev-1")
    transport.send(message, "ev-2")
    files = sorted(p.name for p in (tmp_path / "mail").iterdir())
    assert len(files) == 2
    assert files[0].endswith("-ev-1.eml")
    assert b"hello" in (tmp_path / "mail" / files[0]).read_bytes()


def test_an_unwritable_mail_dir_is_a_transient_failure(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(TransientDeliveryError):
        FileTransport(blocker).send(EmailMessage(), "ev")


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (smtplib.SMTPResponseException(451, b"busy"), TransientDeliveryError),
        (smtplib.SMTPResponseException(550, b"no such user"), PermanentDeliveryError),
        (smtplib.SMTPRecipientsRefused({"a@example.com": (550, b"no")}), PermanentDeliveryError),
        (smtplib.SMTPRecipientsRefused({"a@example.com": (452, b"full")}), TransientDeliveryError),
        (smtplib.SMTPAuthenticationError(535, b"bad credentials"), TransientDeliveryError),
        (smtplib.SMTPServerDisconnected("gone"), TransientDeliveryError),
    ],
)
def test_smtp_replies_are_classified(error: smtplib.SMTPException, kind: type[Exception]) -> None:
    assert isinstance(_classify(error), kind)


def test_the_health_file_is_fresh_while_beating_and_stale_after(tmp_path: Path) -> None:
    path = tmp_path / "health"
    assert check(path, max_age=30, require_connected=False)[0] is False
    HealthFile(path).beat(connected=False)
    assert check(path, max_age=30, require_connected=False)[0] is True
    assert check(path, max_age=30, require_connected=True)[0] is False
    state = json.loads(path.read_text())
    path.write_text(json.dumps({**state, "ts": time.time() - 60, "connected": True}))
    assert check(path, max_age=30, require_connected=False) == (False, "stale: last beat 60s ago")


def test_a_notifier_waiting_for_a_queue_fix_is_alive_but_not_ready(tmp_path: Path) -> None:
    path = tmp_path / "health"
    HealthFile(path).beat(connected=False, error="queue 'q' exists with other arguments")
    alive, why = check(path, max_age=30, require_connected=False)
    assert alive is True  # restarting it would not help: no restart loop
    assert "not consuming: queue 'q' exists" in why
    assert check(path, max_age=30, require_connected=True)[0] is False


def test_the_smtp_transport_refuses_credentials_without_tls() -> None:
    with pytest.raises(ValueError, match="plaintext"):
        SmtpTransport("127.0.0.1", 25, username="u", password="p")
    SmtpTransport("127.0.0.1", 25, username="u", password="p", starttls=True)
    SmtpTransport("127.0.0.1", 25, username="u", password="p", allow_plaintext_auth=True)
