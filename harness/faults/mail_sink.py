"""A real SMTP server (aiosmtpd) in the suite's process that keeps every mail it accepts,
and can go away and come back on the same port (an SMTP outage as the notifier sees it)."""

from __future__ import annotations

import email
import email.policy
import threading
import time
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from harness.ports import free_port
from notifier.mailbox import CODE_PATTERN


@dataclass(frozen=True)
class ReceivedMail:
    """One accepted mail: its recipient (lower case), kind (X-Ocrmesh-Kind), event id (from
    the Message-ID the notifier builds from it), 6-digit code if any, and when it came."""

    to: str
    kind: str
    event_id: str
    code: str | None
    at: float


def parse_mail(raw: bytes, at: float) -> ReceivedMail:
    """The fields of one mail as the notifier writes it (SMTP or the file transport)."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    part = message.get_body(preferencelist=("plain",))
    body = part.get_content() if part is not None else ""
    found = CODE_PATTERN.search(body)
    message_id = str(message["Message-ID"] or "").strip("<>")
    return ReceivedMail(
        to=str(message["To"] or "").strip().lower(),
        kind=str(message["X-Ocrmesh-Kind"] or ""),
        event_id=message_id.partition("@")[0],
        code=found.group(1) if found else None,
        at=at,
    )


class _Handler:
    def __init__(self, sink: MailSink) -> None:
        self._sink = sink

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content = envelope.content
        raw = content if isinstance(content, bytes) else str(content).encode()
        self._sink.add(parse_mail(raw, time.monotonic()))
        return "250 OK"


class MailSink:
    """`start()`, `stop()`, `start()` again: the same port each time."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._lock = threading.Lock()
        self._mails: list[ReceivedMail] = []
        self._controller: Controller | None = None

    def add(self, mail: ReceivedMail) -> None:
        with self._lock:
            self._mails.append(mail)

    @property
    def running(self) -> bool:
        return self._controller is not None

    def start(self) -> MailSink:
        if self._controller is None:
            controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port)
            controller.start()
            self._controller = controller
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def mails(self) -> list[ReceivedMail]:
        with self._lock:
            return list(self._mails)

    def code_for(self, recipient: str, timeout: float) -> str:
        """The code of the first verification mail to `recipient`, waiting up to `timeout`."""
        wanted = recipient.lower()
        deadline = time.monotonic() + timeout
        while True:
            for mail in self.mails():
                if mail.to == wanted and mail.code is not None:
                    return mail.code
            if time.monotonic() > deadline:
                raise TimeoutError(f"no verification mail to {recipient} after {timeout}s")
            time.sleep(0.1)
