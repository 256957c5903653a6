"""Parsing events into mails, and refusing what can never be one."""

from __future__ import annotations

from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from email.utils import parsedate_to_datetime

import pytest

from notifier.mail import WIRE_POLICY, MalformedEvent, build_message, parse_event
from ocrmesh.notify.v1 import email_pb2
from ocrmesh.rules.email_events import EVENT_TYPE, new_email_event


def event(**fields: object) -> email_pb2.EmailRequested:
    e = new_email_event(
        to="a@example.com", subject="Hi", body="Grüße", kind=email_pb2.EMAIL_KIND_OCR_COMPLETED
    )
    for name, value in fields.items():
        setattr(e, name, value)
    return e


def test_a_valid_event_parses() -> None:
    e = event()
    assert parse_event(e.SerializeToString(), EVENT_TYPE) == e
    assert parse_event(e.SerializeToString(), None) == e


@pytest.mark.parametrize(
    ("body", "message_type", "reason"),
    [
        (b"\xff\xff\xff", None, "protobuf"),
        (event().SerializeToString(), "other.Type", "unexpected message type"),
        (event(to="").SerializeToString(), None, "no recipient"),
        (event(to="nobody").SerializeToString(), None, "invalid recipient"),
        (event(to="a@example.com\nBcc: b@example.com").SerializeToString(), None, "invalid recipient"),
        (event(event_id="").SerializeToString(), None, "event_id"),
        (event(event_id="../../etc/passwd").SerializeToString(), None, "event_id"),
        # `re.match` with `$` accepted this one, and the newline ended the Message-ID header.
        (event(event_id="abc-123\n").SerializeToString(), None, "event_id"),
        (event(event_id="abc\nBcc: x@example.com").SerializeToString(), None, "event_id"),
        (event(body="x" * (2 << 20)).SerializeToString(), None, "large"),
    ],
)
def test_malformed_events_are_refused_with_a_reason(
    body: bytes, message_type: str | None, reason: str
) -> None:
    with pytest.raises(MalformedEvent, match=reason):
        parse_event(body, message_type)


def as_received(event: email_pb2.EmailRequested, mail_from: str) -> EmailMessage:
    """The mail as a mailbox parses it from the bytes we send."""
    raw = build_message(event, mail_from).as_bytes(policy=WIRE_POLICY)
    assert all(line.endswith(b"\r") for line in raw.split(b"\n")[:-1]), "lines end in CRLF"
    assert raw.isascii(), "7-bit clean: no SMTPUTF8 or 8BITMIME needed"
    parsed = message_from_bytes(raw, policy=default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def test_the_mail_has_the_headers_a_mailbox_expects() -> None:
    e = event(correlation_id="req-1", subject="Grüße aus Köln ✓")
    mail = as_received(e, "ocrmesh <no-reply@mail.example.com>")
    assert mail["From"] == "ocrmesh <no-reply@mail.example.com>"
    assert mail["To"] == "a@example.com"
    assert mail["Subject"] == "Grüße aus Köln ✓"
    assert mail["Message-ID"] == f"<{e.event_id}@mail.example.com>"
    assert parsedate_to_datetime(mail["Date"]).timestamp() == pytest.approx(e.created_at.seconds, abs=1)
    assert mail["X-Ocrmesh-Kind"] == "EMAIL_KIND_OCR_COMPLETED"
    assert mail["X-Correlation-ID"] == "req-1"
    assert mail.get_content_type() == "text/plain"
    assert mail.get_content_charset() == "utf-8"
    assert mail.get_content().replace("\r\n", "\n").strip() == "Grüße"


def test_a_long_body_with_long_lines_survives_the_round_trip() -> None:
    body = "Ünïcode line " * 200 + "\n\n" + "second paragraph = with equals\n"
    mail = as_received(event(body=body), "no-reply@example.com")
    assert mail.get_content().replace("\r\n", "\n") == body


def test_a_non_ascii_sender_name_is_encoded() -> None:
    mail = as_received(event(), "Zoë's OCR <no-reply@example.com>")
    assert mail["From"].addresses[0].display_name == "Zoë's OCR"
    assert mail["From"].addresses[0].addr_spec == "no-reply@example.com"


def test_an_internationalised_domain_is_sent_in_its_ascii_form() -> None:
    e = parse_event(event(to="anna@bücher.example").SerializeToString(), None)
    assert e.to == "anna@xn--bcher-kva.example"


def test_line_breaks_in_a_subject_do_not_become_headers() -> None:
    mail = as_received(event(subject="Hi\r\nBcc: evil@example.com"), "no-reply@example.com")
    assert mail["Subject"] == "Hi Bcc: evil@example.com"
    assert mail["Bcc"] is None


def test_an_unknown_kind_from_a_newer_producer_still_makes_a_mail() -> None:
    mail = as_received(event(kind=99), "no-reply@example.com")
    assert mail["X-Ocrmesh-Kind"] == "99"


def test_a_correlation_id_with_a_trailing_newline_is_left_out_of_the_headers() -> None:
    mail = as_received(event(correlation_id="req-1\n"), "no-reply@example.com")
    assert mail["X-Correlation-ID"] is None
