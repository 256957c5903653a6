"""Verification codes over gRPC: attempts, expiry, resend cooldown, leading zeros."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import grpc
import pytest
from sqlalchemy import Engine, func, select, text, update
from sqlalchemy.orm import Session

from auth_svc.orm import User, VerificationCode
from auth_svc.settings import AuthSettings
from ocrmesh.auth.v1 import auth_pb2
from tests.integration.auth.auth_support import Mailbox, RunningAuth, rpc_error

pytestmark = pytest.mark.integration


def shift_code_times(engine: Engine, email: str, *, by: timedelta) -> None:
    """Move the pending code's creation and expiry `by` into the past (instead of waiting)."""
    with Session(engine) as session, session.begin():
        user_id = session.scalar(select(User.id).where(func.lower(User.email) == email.lower()))
        session.execute(
            update(VerificationCode)
            .where(VerificationCode.user_id == user_id)
            .values(
                created_at=VerificationCode.created_at - by,
                expires_at=VerificationCode.expires_at - by,
            )
        )


def shift_send_times(engine: Engine, email: str, *, by: timedelta) -> None:
    """Move the address's code-sending throttle `by` into the past (the resend cooldown)."""
    with engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE auth_throttles SET last_event_at = last_event_at - :by, "
                "window_start = window_start - :by WHERE key = :key"
            ),
            {"by": by, "key": f"code_send:account:{email.lower()}"},
        )


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


async def verify(auth: RunningAuth, email: str, code: str) -> auth_pb2.VerifyOtpResponse:
    return await auth.stub.VerifyOtp(auth_pb2.VerifyOtpRequest(email=email, otp=code))


async def test_five_wrong_codes_void_the_code(auth: RunningAuth, mailbox: Mailbox, email: str) -> None:
    await auth.register(email)
    code = await mailbox.code_for(email)

    errors = [await rpc_error(lambda: verify(auth, email, wrong(code))) for _ in range(5)]
    after = await rpc_error(lambda: verify(auth, email, code))

    assert [e.code() for e in errors] == [grpc.StatusCode.INVALID_ARGUMENT] * 5
    # Void: the right code is refused now, with the one answer every failed check gets.
    assert after.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert after.details() == errors[0].details() == "invalid or expired code; request a new one if needed"


async def test_a_right_code_after_some_wrong_ones_still_works(
    auth: RunningAuth, mailbox: Mailbox, email: str
) -> None:
    await auth.register(email)
    code = await mailbox.code_for(email)
    for _ in range(4):
        await rpc_error(lambda: verify(auth, email, wrong(code)))

    assert (await verify(auth, email, code)).user.is_verified


async def test_expired_code_is_refused(
    auth: RunningAuth, mailbox: Mailbox, auth_engine: Engine, email: str
) -> None:
    await auth.register(email)
    code = await mailbox.code_for(email)
    shift_code_times(auth_engine, email, by=timedelta(minutes=11))

    error = await rpc_error(lambda: verify(auth, email, code))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "expired" in str(error.details())


async def test_a_resend_inside_the_cooldown_is_answered_alike_and_mails_nothing(
    auth: RunningAuth, mailbox: Mailbox, email: str
) -> None:
    # Issue 28: no 429 for a repeat (that told which addresses had just signed up).
    await auth.register(email)
    code = await mailbox.code_for(email)

    replies = [await auth.stub.SendOtp(auth_pb2.SendOtpRequest(email=email)) for _ in range(3)]

    assert {(r.resend_after_seconds, r.expires_in_seconds) for r in replies} == {(60, 600)}
    await asyncio.sleep(1.0)  # what a resend would have relayed by now (the outbox polls at 0.2 s)
    await asyncio.to_thread(mailbox.drain)
    assert len(mailbox.mails_to(email)) == 1
    assert (await verify(auth, email, code)).user.is_verified  # the first code still works


async def test_resend_after_the_cooldown_sends_a_new_code_and_voids_the_old(
    auth: RunningAuth, mailbox: Mailbox, auth_engine: Engine, email: str
) -> None:
    await auth.register(email)
    first = await mailbox.code_for(email)
    shift_code_times(auth_engine, email, by=timedelta(seconds=61))
    shift_send_times(auth_engine, email, by=timedelta(seconds=61))

    reply = await auth.stub.SendOtp(auth_pb2.SendOtpRequest(email=email))
    second = await mailbox.code_for(email, nth=2)

    assert (reply.resend_after_seconds, reply.expires_in_seconds) == (60, 600)
    if first != second:
        refused = await rpc_error(lambda: verify(auth, email, first))
        assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (await verify(auth, email, second)).user.is_verified


async def test_leading_zero_codes_work(auth_settings: AuthSettings, mailbox: Mailbox, email: str) -> None:
    # The service is wired with a code source that starts with zeros; everything else is real.
    auth = await RunningAuth.start(auth_settings, new_code=lambda: "004217")
    try:
        await _leading_zeros_survive_the_round_trip(auth, mailbox, email)
    finally:
        await auth.stop()


async def _leading_zeros_survive_the_round_trip(auth: RunningAuth, mailbox: Mailbox, email: str) -> None:
    await auth.register(email)
    assert await mailbox.code_for(email) == "004217"

    short = await rpc_error(lambda: verify(auth, email, "4217"))

    assert short.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (await verify(auth, email, "004217")).user.is_verified


async def test_verified_unknown_and_pending_addresses_get_the_same_answers(
    auth: RunningAuth, mailbox: Mailbox, auth_engine: Engine, email: str
) -> None:
    # Issue 15: code sending and checking must not tell who has an account.
    verified, unknown, pending = email, "nobody-" + email, "pending-" + email
    await auth.register_verified(mailbox, verified)
    await auth.register(pending)
    await mailbox.code_for(pending)

    sends = {}
    checks = {}
    for address in (verified, unknown, pending):
        shift_send_times(auth_engine, address, by=timedelta(seconds=61))  # past the cooldown
        sends[address] = await auth.stub.SendOtp(auth_pb2.SendOtpRequest(email=address))
        error = await rpc_error(lambda a=address: verify(auth, a, "123456"))  # type: ignore[misc]
        checks[address] = (error.code(), error.details())

    assert len({(s.resend_after_seconds, s.expires_in_seconds) for s in sends.values()}) == 1
    assert len(set(checks.values())) == 1
    assert next(iter(checks.values()))[0] == grpc.StatusCode.INVALID_ARGUMENT
    # Only the pending account got a new code.
    await mailbox.wait_for(pending, count=2)
    assert len(mailbox.mails_to(verified)) == 1
    assert mailbox.mails_to(unknown) == []


@pytest.mark.parametrize("otp", ["", "12345", "1234567", "12a456", "\uff11\uff12\uff13\uff14\uff15\uff16"])
async def test_malformed_codes_are_invalid_argument(auth: RunningAuth, email: str, otp: str) -> None:
    await auth.register(email)

    error = await rpc_error(lambda: verify(auth, email, otp))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_the_code_is_not_kept_in_the_outbox_once_the_mail_is_sent(
    auth: RunningAuth, mailbox: Mailbox, auth_engine: Engine, email: str
) -> None:
    # Issue 15 / ASVS 2.7.5: only the code's hash stays; the mail that carried it goes.
    from auth_svc.orm import OutboxMessage
    from tests.integration.auth.auth_support import eventually

    await auth.register(email)
    mail = (await mailbox.wait_for(email))[0]

    def payload() -> bytes | None:
        with Session(auth_engine) as session:
            row = session.scalars(
                select(OutboxMessage).where(OutboxMessage.event_id == uuid.UUID(mail.event_id))
            ).one()
            return row.payload if row.sent_at is not None else None

    await eventually(lambda: payload() is not None, what="the outbox row marked sent")
    assert payload() == b""
