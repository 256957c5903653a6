"""Reading the mails the file transport wrote (`MAIL_DIR/*.eml`): what `make demo` and the
e2e tests use to pick up verification codes on a local run."""

from __future__ import annotations

import email
import email.policy
import re
import time
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from ocrmesh.notify.v1 import email_pb2

CODE_PATTERN = re.compile(r"\b(\d{6})\b")
VERIFICATION_CODE = email_pb2.EmailKind.Name(email_pb2.EMAIL_KIND_VERIFICATION_CODE)
OCR_COMPLETED = email_pb2.EmailKind.Name(email_pb2.EMAIL_KIND_OCR_COMPLETED)


@dataclass(frozen=True)
class StoredMail:
    path: Path
    to: str
    subject: str
    body: str
    # The event's kind as the notifier writes it in X-Ocrmesh-Kind (VERIFICATION_CODE, ...).
    kind: str

    @property
    def code(self) -> str | None:
        """The first 6-digit code in the body (verification mails), if any."""
        found = CODE_PATTERN.search(self.body)
        return found.group(1) if found else None


def read_mail(path: Path) -> StoredMail:
    """Parse one `.eml` file."""
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    part = message.get_body(preferencelist=("plain",))
    body = part.get_content() if part is not None else ""
    return StoredMail(
        path=path,
        to=str(message["To"] or ""),
        subject=str(message["Subject"] or ""),
        body=body,
        kind=str(message["X-Ocrmesh-Kind"] or ""),
    )


def mails_to(mail_dir: Path, recipient: str) -> list[StoredMail]:
    """Every stored mail to `recipient` (case-insensitive), oldest first (file names start
    with the UTC time)."""
    wanted = recipient.lower()
    mails = [read_mail(p) for p in sorted(mail_dir.glob("*.eml"))]
    return [m for m in mails if wanted in m.to.lower()]


def wait_for_mail(
    mail_dir: Path, recipient: str, *, kind: str = "", after: int = 0, timeout: float = 30.0
) -> StoredMail:
    """Wait until the mail number `after` + 1 to `recipient` (of `kind`, when given) is in
    `mail_dir`, and return it."""
    deadline = time.monotonic() + timeout
    while True:
        matching = [m for m in mails_to(mail_dir, recipient) if not kind or m.kind == kind]
        if len(matching) > after:
            return matching[after]
        if time.monotonic() > deadline:
            wanted = f"{recipient} ({kind or 'any kind'})"
            raise TimeoutError(f"no mail to {wanted} in {mail_dir} after {timeout}s")
        time.sleep(0.1)
