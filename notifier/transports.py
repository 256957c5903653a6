"""Where mails go: an SMTP server (one connection, reused) or `.eml` files in a directory.

A transport raises `TransientDeliveryError` when trying again later may work (server down,
4xx reply, timeout) and `PermanentDeliveryError` when it never will (5xx reply).
"""

from __future__ import annotations

import logging
import os
import smtplib
import ssl
import tempfile
import time
from datetime import UTC, datetime
from email.message import Message
from pathlib import Path
from typing import Protocol

from notifier.mail import WIRE_POLICY

log = logging.getLogger(__name__)


class DeliveryError(Exception):
    """The mail was not handed over."""


class TransientDeliveryError(DeliveryError):
    """Handing the mail over may work later."""


class PermanentDeliveryError(DeliveryError):
    """Handing the mail over will never work."""


class MailTransport(Protocol):
    def send(self, message: Message, event_id: str) -> None:
        """Hand `message` over, or raise a `DeliveryError`."""

    def close(self) -> None:
        """Release connections; the transport may be used again afterwards."""

    def close_if_idle(self) -> None:
        """Release a connection unused for longer than the transport keeps one (called by the
        worker between mails)."""


class FileTransport:
    """Writes each mail atomically as `<UTC time>-<event_id>.eml` under `directory`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def send(self, message: Message, event_id: str) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
            target = self.directory / f"{stamp}-{event_id}.eml"
            # Write to a temporary name in the same directory, then rename: a reader never
            # sees half a mail, and a crash leaves only a `.tmp` file behind.
            fd, tmp_name = tempfile.mkstemp(dir=self.directory, prefix=".", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(message.as_bytes(policy=WIRE_POLICY))
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp_name, target)
            except BaseException:
                Path(tmp_name).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise TransientDeliveryError(f"cannot write to {self.directory}: {exc}") from exc

    def close(self) -> None:
        return None

    def close_if_idle(self) -> None:
        return None


class SmtpTransport:
    """One SMTP connection reused across mails: connect, EHLO, STARTTLS and login once, then
    one MAIL/RCPT/DATA exchange per mail. The connection is closed (QUIT) after
    `max_messages` mails, or when it was idle for `idle_timeout` seconds (servers drop idle
    clients anyway, typically after a few minutes), and reopened after any failure. A reused
    connection the server closed meanwhile is retried once on a fresh one.

    `starttls` upgrades a plain connection, `implicit_tls` speaks TLS from the first byte
    (port 465); both verify the server certificate against `ssl_context` (system CAs by default).
    Logging in over a plaintext connection is refused unless `allow_plaintext_auth`.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        implicit_tls: bool = False,
        timeout: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
        allow_plaintext_auth: bool = False,
        max_messages: int = 100,
        idle_timeout: float = 30.0,
    ) -> None:
        if username is not None and not (starttls or implicit_tls or allow_plaintext_auth):
            raise ValueError(
                "refusing to send SMTP credentials over a plaintext connection: "
                "use STARTTLS or implicit TLS, or allow plaintext auth explicitly"
            )
        if max_messages < 1 or idle_timeout <= 0:
            raise ValueError("max_messages must be at least 1 and idle_timeout positive")
        self.host, self.port = host, port
        self._username, self._password = username, password
        self._starttls, self._implicit_tls = starttls, implicit_tls
        self._timeout = timeout
        self._ssl_context = ssl_context
        self._max_messages, self._idle_timeout = max_messages, idle_timeout
        self._smtp: smtplib.SMTP | None = None
        self._sent_on_connection = 0
        self._last_used = 0.0
        #: Connections opened so far (tests read it to see the connection is reused).
        self.connections_opened = 0

    def send(self, message: Message, event_id: str) -> None:
        if self._smtp is not None and (
            self._sent_on_connection >= self._max_messages
            or time.monotonic() - self._last_used > self._idle_timeout
        ):
            self.close()
        reused = self._smtp is not None
        try:
            self._send_once(message)
        except smtplib.SMTPServerDisconnected as exc:
            self.close()
            if not reused:
                raise TransientDeliveryError(f"SMTP server disconnected: {exc}") from exc
            # Servers drop idle connections; a reused one failing says nothing about the
            # server, so try once on a fresh connection before calling it a failure.
            try:
                self._send_once(message)
            except smtplib.SMTPException as retry_exc:
                self.close()
                raise _classify(retry_exc) from retry_exc
            except OSError as retry_exc:
                self.close()
                raise TransientDeliveryError(f"SMTP unreachable: {retry_exc!r}") from retry_exc
        except smtplib.SMTPException as exc:
            self.close()
            raise _classify(exc) from exc
        except OSError as exc:
            self.close()
            raise TransientDeliveryError(f"SMTP unreachable: {exc!r}") from exc

    def _send_once(self, message: Message) -> None:
        smtp = self._smtp or self._connect()
        refused = smtp.send_message(message)
        self._sent_on_connection += 1
        self._last_used = time.monotonic()
        if refused:
            # Only one recipient per mail, so a partial refusal cannot happen; be safe anyway.
            raise smtplib.SMTPRecipientsRefused(refused)

    def _tls_context(self) -> ssl.SSLContext:
        # Made once: loading the system CAs costs tens of milliseconds, and the connection
        # is reopened every `max_messages` mails.
        if self._ssl_context is None:
            self._ssl_context = ssl.create_default_context()
        return self._ssl_context

    def _connect(self) -> smtplib.SMTP:
        smtp: smtplib.SMTP
        if self._implicit_tls:
            context = self._tls_context()
            smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self._timeout, context=context)
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self._timeout)
        try:
            smtp.ehlo()
            if self._starttls:
                smtp.starttls(context=self._tls_context())
                smtp.ehlo()
            if self._username is not None and self._password is not None:
                smtp.login(self._username, self._password)
        except BaseException:
            smtp.close()
            raise
        self._smtp = smtp
        self._sent_on_connection = 0
        self._last_used = time.monotonic()
        self.connections_opened += 1
        log.info("smtp connected", extra={"smtp_host": self.host, "smtp_port": self.port})
        return smtp

    def close_if_idle(self) -> None:
        if self._smtp is not None and time.monotonic() - self._last_used > self._idle_timeout:
            self.close()

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()


def _classify(exc: smtplib.SMTPException) -> DeliveryError:
    """4xx replies, lost connections and refused logins are transient; other 5xx replies permanent."""
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        # Wrong credentials are our configuration, not the mail's fault: keep the mails.
        return TransientDeliveryError(f"SMTP login refused: {exc}")
    codes: list[int] = []
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
    elif isinstance(exc, smtplib.SMTPResponseException):
        codes = [exc.smtp_code]
    if codes and all(500 <= code < 600 for code in codes):
        return PermanentDeliveryError(f"SMTP refused: {exc}")
    return TransientDeliveryError(f"SMTP failed: {exc}")
