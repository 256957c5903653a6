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

from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from harness.faults.mail_sink import ReceivedMail, parse_mail
from notifier.mailbox import VERIFICATION_CODE

# A notifier's claim on an event unsent for this long is no send in progress (a send takes
# milliseconds, a failed one releases its claim): its holder died after claiming, perhaps
# after its SMTP server took the mail, and the event will be sent again once the claim's
# lease runs out.
STALE_CLAIM_S = 2.0


@dataclass(frozen=True)
class OutboxState:
    sent: frozenset[str]
    unsent: int
    #: Notifier claims older than STALE_CLAIM_S and not marked sent.
    stale_claims: int = 0


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
    stale_claims: int = 0

    @property
    def complete(self) -> bool:
        return self.missing == 0 and self.outbox_unsent == 0 and self.outbox_unmailed == 0

    @property
    def settled(self) -> bool:
        """Complete, and no claim of a dead notifier left to be sent again: every copy that
        will come has come, so its duplicates count against the fault that caused them."""
        return self.complete and self.stale_claims == 0

    def summary(self) -> str:
        return (
            f"{self.mailed_once}/{self.accepted} once, {self.missing} missing, {self.duplicates} dup; "
            f"outbox {self.outbox_rows} rows, {self.outbox_unsent} unsent, {self.outbox_unmailed} unmailed"
            + (f"; {self.stale_claims} claim(s) of a dead notifier pending" if self.stale_claims else "")
        )


def read_outbox(database_url: str) -> OutboxState:
    engine = create_engine(make_url(database_url), poolclass=NullPool, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT event_id::text, sent_at IS NULL FROM outbox")).all()
            stale = stale_claims(connection)
    finally:
        engine.dispose()
    return OutboxState(
        frozenset(str(r[0]) for r in rows if not r[1]), sum(1 for r in rows if r[1]), stale_claims=stale
    )


def stale_claims(connection: Connection) -> int:
    """Claims in the notifiers' ledger unsent for STALE_CLAIM_S (0 before any notifier made it)."""
    if connection.execute(text("SELECT to_regclass('notifier_deliveries')")).scalar() is None:
        return 0
    found = connection.execute(
        text(
            "SELECT count(*) FROM notifier_deliveries "
            "WHERE sent_at IS NULL AND claimed_at < now() - make_interval(secs => :age)"
        ),
        {"age": STALE_CLAIM_S},
    ).scalar()
    return int(found or 0)


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
        stale_claims=outbox.stale_claims,
    )


def settle(
    accepted: Callable[[], Iterable[str]],
    mails: Callable[[], list[ReceivedMail]],
    database_url: str,
    *,
    timeout: float,
    mailed_only: bool = False,
) -> tuple[LedgerResult, float]:
    """Wait (up to `timeout`) until every accepted registration and outbox row is mailed
    and no dead notifier's claim is left to be sent again (`LedgerResult.settled`; with
    `mailed_only`, until every one is mailed, `complete`); the last tally and the time it
    took."""
    began = time.monotonic()
    while True:
        result = tally(accepted(), mails(), read_outbox(database_url))
        done = result.complete if mailed_only else result.settled
        if done or time.monotonic() - began > timeout:
            return result, time.monotonic() - began
        time.sleep(0.5)
