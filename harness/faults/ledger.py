"""What was mailed against what was promised: every accepted registration's code mailed
exactly once, every outbox row published and mailed, counted from the mails themselves (the
suite's SMTP server, plus the `.eml` files of a file-transport phase) and auth_svc's outbox
table."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from harness.faults.mail_sink import ReceivedMail, parse_mail
from notifier.mailbox import VERIFICATION_CODE


@dataclass(frozen=True)
class OutboxState:
    sent: frozenset[str]
    unsent: int


@dataclass(frozen=True)
class LedgerResult:
    """`missing`: accepted registrations with no mail yet. `duplicates`: extra copies
    (mails beyond the first per accepted address). `outbox_unsent`: rows not yet published.
    `outbox_unmailed`: published rows whose event never arrived as a mail."""

    accepted: int
    mailed_once: int
    missing: int
    duplicates: int
    outbox_rows: int
    outbox_unsent: int
    outbox_unmailed: int

    @property
    def complete(self) -> bool:
        return self.missing == 0 and self.outbox_unsent == 0 and self.outbox_unmailed == 0

    def summary(self) -> str:
        return (
            f"{self.mailed_once}/{self.accepted} once, {self.missing} missing, {self.duplicates} dup; "
            f"outbox {self.outbox_rows} rows, {self.outbox_unsent} unsent, {self.outbox_unmailed} unmailed"
        )


def read_outbox(database_url: str) -> OutboxState:
    engine = create_engine(make_url(database_url), poolclass=NullPool, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT event_id::text, sent_at IS NULL FROM outbox")).all()
    finally:
        engine.dispose()
    return OutboxState(frozenset(str(r[0]) for r in rows if not r[1]), sum(1 for r in rows if r[1]))


def spool_mails(directory: Path) -> list[ReceivedMail]:
    """The mails the file transport wrote to `directory` (`*.eml`)."""
    found = []
    for path in sorted(directory.glob("*.eml")):
        try:
            found.append(parse_mail(path.read_bytes(), path.stat().st_mtime))
        except OSError:
            continue
    return found


def tally(accepted: Iterable[str], mails: list[ReceivedMail], outbox: OutboxState) -> LedgerResult:
    per_address = Counter(m.to for m in mails if m.kind == VERIFICATION_CODE)
    wanted = [a.lower() for a in accepted]
    mailed_events = {m.event_id for m in mails}
    return LedgerResult(
        accepted=len(wanted),
        mailed_once=sum(1 for a in wanted if per_address[a] == 1),
        missing=sum(1 for a in wanted if per_address[a] == 0),
        duplicates=sum(max(0, per_address[a] - 1) for a in wanted),
        outbox_rows=len(outbox.sent) + outbox.unsent,
        outbox_unsent=outbox.unsent,
        outbox_unmailed=len(outbox.sent - mailed_events),
    )


def settle(
    accepted: Callable[[], Iterable[str]],
    mails: Callable[[], list[ReceivedMail]],
    database_url: str,
    *,
    timeout: float,
) -> tuple[LedgerResult, float]:
    """Wait (up to `timeout`) until every accepted registration and outbox row is mailed;
    the last tally and the time it took."""
    began = time.monotonic()
    while True:
        result = tally(accepted(), mails(), read_outbox(database_url))
        if result.complete or time.monotonic() - began > timeout:
            return result, time.monotonic() - began
        time.sleep(0.5)
