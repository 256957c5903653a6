"""The suite's own judgement, without a mesh: how the ledger counts, how status counts read,
how a soak's slope and a duration are computed."""

from __future__ import annotations

import pytest

from bench.soak import duration_seconds
from harness.faults.ledger import OutboxState, tally
from harness.faults.mail_sink import ReceivedMail, parse_mail
from harness.faults.scenarios import cut_at_stop, status_counts
from harness.faults.soak import Sample, slope_per_minute
from harness.faults.traffic import Call
from notifier.mailbox import VERIFICATION_CODE


def _mail(to: str, event: str) -> ReceivedMail:
    return ReceivedMail(to=to, kind=VERIFICATION_CODE, event_id=event, code="123456", at=0.0)


def test_the_ledger_counts_missing_and_duplicate_mails_per_accepted_address() -> None:
    mails = [_mail("a@x.com", "e1"), _mail("b@x.com", "e2"), _mail("b@x.com", "e2")]
    result = tally(["a@x.com", "B@x.com", "c@x.com"], mails, OutboxState(frozenset({"e1", "e2"}), 0))
    assert (result.accepted, result.mailed_once, result.missing, result.duplicates) == (3, 1, 1, 1)
    assert not result.complete


def test_a_dead_notifiers_pending_claim_keeps_the_ledger_unsettled() -> None:
    # Mailed, but a claim of a killed notifier is left: its mail may come again.
    pending = tally(["a@x.com"], [_mail("a@x.com", "e1")], OutboxState(frozenset({"e1"}), 0, stale_claims=1))
    assert pending.complete
    assert not pending.settled
    assert tally(["a@x.com"], [_mail("a@x.com", "e1")], OutboxState(frozenset({"e1"}), 0)).settled


def test_an_outbox_row_published_but_never_mailed_is_counted_lost() -> None:
    result = tally(["a@x.com"], [_mail("a@x.com", "e1")], OutboxState(frozenset({"e1", "e9"}), 1))
    assert (result.outbox_rows, result.outbox_unsent, result.outbox_unmailed) == (3, 1, 1)


def test_a_mail_is_read_back_with_its_event_id_kind_and_code() -> None:
    raw = (
        b"To: Ada@Example.com\r\nMessage-ID: <0b6e-42@ocrmesh.local>\r\n"
        b"X-Ocrmesh-Kind: EMAIL_KIND_VERIFICATION_CODE\r\n"
        b"Subject: code\r\n\r\nYour code is 493021.\r\n"
    )
    mail = parse_mail(raw, 1.0)
    assert (mail.to, mail.event_id, mail.kind, mail.code) == (
        "ada@example.com",
        "0b6e-42",
        VERIFICATION_CODE,
        "493021",
    )


def test_status_counts_name_each_kind_and_every_failure() -> None:
    calls = [
        Call("me", 0, 0.1, 200),
        Call("me", 0, 0.1, 503),
        Call("ocr", 0, 0.1, 200, final="error"),
        Call("register", 0, 5.0, "timeout"),
    ]
    assert status_counts(calls) == "register 0/1 (timeoutx1), me 1/2 (503x1), ocr 0/1 (200/errorx1)"


def test_the_rss_slope_ignores_the_warm_up() -> None:
    def at(minute: float, rss: float) -> Sample:
        return Sample(minute, {"auth": rss}, {}, {}, 0, 0, {}, 0, 0)

    samples = [at(0, 10), at(1, 50), at(2, 100), at(3, 100.5), at(4, 101), at(5, 101.5)]
    assert slope_per_minute(samples, "auth", warmup_minutes=2.5) == pytest.approx(0.5)


def _sampled(rss: list[float], every_minutes: float = 1 / 6) -> list[Sample]:
    return [Sample(i * every_minutes, {"auth": value}, {}, {}, 0, 0, {}, 0, 0) for i, value in enumerate(rss)]


def test_one_sample_taken_during_a_password_hash_does_not_read_as_growth() -> None:
    # The short soak's failure on a flat auth service: 9 samples after the warm-up, one of
    # them taken while an Argon2 hash held its 19 MiB. A least-squares line read +5.7 MiB/min.
    rss = [325.0] * 9
    rss[7] += 19
    assert abs(slope_per_minute(_sampled(rss), "auth", warmup_minutes=0)) < 0.5


def test_a_steady_leak_reads_as_its_rate_despite_a_spike() -> None:
    rss = [300 + 6 * i / 6 for i in range(12)]  # +6 MiB/min, a sample every 10 s
    rss[5] += 40
    assert slope_per_minute(_sampled(rss), "auth", warmup_minutes=0) == pytest.approx(6.0)


@pytest.mark.parametrize(("text", "seconds"), [("30m", 1800), ("90s", 90), ("1h", 3600), ("45", 45)])
def test_a_soak_duration_reads_minutes_seconds_and_hours(text: str, seconds: float) -> None:
    assert duration_seconds(text) == seconds


def _taken(event: str, moment: float) -> ReceivedMail:
    return ReceivedMail(to="a@x.com", kind=VERIFICATION_CODE, event_id=event, code=None, at=moment)


def test_only_a_mail_taken_just_before_the_smtp_server_stopped_counts_as_in_flight() -> None:
    mails = [
        _taken("cut", 99.6),
        _taken("cut", 131.0),
        _taken("early", 50.0),
        _taken("early", 131.0),
        _taken("once", 99.9),
    ]
    assert cut_at_stop(mails, stopping=100.0, stopped=100.0) == 1


def test_a_mail_taken_while_the_smtp_server_was_stopping_counts_as_in_flight() -> None:
    mails = [_taken("cut", 100.05), _taken("cut", 131.0), _taken("late", 100.5), _taken("late", 131.0)]
    assert cut_at_stop(mails, stopping=100.0, stopped=100.1) == 1
