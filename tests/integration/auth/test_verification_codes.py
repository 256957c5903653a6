"""Verification codes over gRPC: attempts, expiry, resend cooldown, leading zeros."""

from __future__ import annotations

from datetime import timedelta

import grpc
import pytest
from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from auth_svc.orm import User, VerificationCode
from auth_svc.servicer import RETRY_AFTER_KEY
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
    assert "0 attempts left" in str(errors[-1].details())
    assert after.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "void" in str(after.details())


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

    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "expired" in str(error.details())


async def test_resend_inside_the_cooldown_is_refused_with_the_seconds_left(
    auth: RunningAuth, email: str
) -> None:
    await auth.register(email)

    error = await rpc_error(lambda: auth.stub.SendOtp(auth_pb2.SendOtpRequest(email=email)))

    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    seconds_left = int(dict(error.trailing_metadata() or ())[RETRY_AFTER_KEY])
    assert 55 <= seconds_left <= 60
    assert f"{seconds_left} s" in str(error.details())


async def test_resend_after_the_cooldown_sends_a_new_code_and_voids_the_old(
    auth: RunningAuth, mailbox: Mailbox, auth_engine: Engine, email: str
) -> None:
    await auth.register(email)
    first = await mailbox.code_for(email)
    shift_code_times(auth_engine, email, by=timedelta(seconds=61))

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


async def test_verified_user_asking_for_a_code_is_failed_precondition(
    auth: RunningAuth, mailbox: Mailbox, email: str
) -> None:
    await auth.register_verified(mailbox, email)

    send = await rpc_error(lambda: auth.stub.SendOtp(auth_pb2.SendOtpRequest(email=email)))
    again = await rpc_error(lambda: verify(auth, email, "123456"))

    assert send.code() == again.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_codes_for_unknown_users_are_not_found(auth: RunningAuth, email: str) -> None:
    send = await rpc_error(lambda: auth.stub.SendOtp(auth_pb2.SendOtpRequest(email=email)))
    check = await rpc_error(lambda: verify(auth, email, "123456"))

    assert send.code() == check.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("otp", ["", "12345", "1234567", "12a456", "\uff11\uff12\uff13\uff14\uff15\uff16"])
async def test_malformed_codes_are_invalid_argument(auth: RunningAuth, email: str, otp: str) -> None:
    await auth.register(email)

    error = await rpc_error(lambda: verify(auth, email, otp))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
