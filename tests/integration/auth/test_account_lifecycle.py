"""Issue 15, the lifecycle: password reset by mailed code, password change, logout and log
out everywhere, each refusing the old tokens; reset and change mailed to the owner."""

from __future__ import annotations

import asyncio
import re

import grpc
import pytest

from ocrmesh.auth.v1 import auth_pb2
from ocrmesh.platform.grpc_client import bearer_metadata
from ocrmesh.rules.tokens import TokenVerifier
from tests.integration.auth.auth_support import Mailbox, RunningAuth, rpc_error

pytestmark = pytest.mark.integration

RESET_CODE = re.compile(r"reset code is (\d{6})")


async def me(auth: RunningAuth, token: str) -> auth_pb2.GetCurrentUserResponse:
    return await auth.stub.GetCurrentUser(auth_pb2.GetCurrentUserRequest(), metadata=bearer_metadata(token))


async def refused(auth: RunningAuth, token: str) -> grpc.StatusCode:
    return (await rpc_error(lambda: me(auth, token))).code()


async def test_logout_revokes_that_token_only(auth: RunningAuth, mailbox: Mailbox, email: str) -> None:
    await auth.register_verified(mailbox, email)
    first, second = await auth.login(email), await auth.login(email)
    assert (await me(auth, first)).user.email == email  # remembered by the verifier's cache

    await auth.stub.Logout(auth_pb2.LogoutRequest(), metadata=bearer_metadata(first))

    assert await refused(auth, first) == grpc.StatusCode.UNAUTHENTICATED
    assert (await me(auth, second)).user.email == email


async def test_log_out_everywhere_revokes_every_token_even_for_other_verifiers(
    auth: RunningAuth, mailbox: Mailbox, email: str
) -> None:
    await auth.register_verified(mailbox, email)
    tokens = [await auth.login(email) for _ in range(3)]
    # A verifier elsewhere (the gateway, ocr_svc) that has already accepted the tokens.
    remote = TokenVerifier.from_channel(auth.channel, revocation_max_age=0.2)
    for token in tokens:
        await remote.verify(token)

    await auth.stub.Logout(auth_pb2.LogoutRequest(everywhere=True), metadata=bearer_metadata(tokens[0]))
    await asyncio.sleep(0.3)

    for token in tokens:
        assert await refused(auth, token) == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(Exception, match="revoked"):
            await remote.verify(token)
    fresh = await auth.login(email)
    assert (await me(auth, fresh)).user.email == email
    assert (await remote.verify(fresh)).email == email


async def test_password_change_needs_the_current_one_and_ends_other_sessions(
    auth: RunningAuth, mailbox: Mailbox, email: str
) -> None:
    await auth.register_verified(mailbox, email)
    old = await auth.login(email)

    wrong = await rpc_error(
        lambda: auth.stub.ChangePassword(
            auth_pb2.ChangePasswordRequest(
                current_password="not it at all", new_password="a brand new secret"
            ),
            metadata=bearer_metadata(old),
        )
    )
    assert wrong.code() == grpc.StatusCode.UNAUTHENTICATED
    reply = await auth.stub.ChangePassword(
        auth_pb2.ChangePasswordRequest(
            current_password="correct horse battery", new_password="a brand new secret"
        ),
        metadata=bearer_metadata(old),
    )

    assert await refused(auth, old) == grpc.StatusCode.UNAUTHENTICATED
    assert (await me(auth, reply.access_token)).user.email == email
    assert await auth.login(email, "a brand new secret")
    assert (await rpc_error(lambda: auth.login(email))).code() == grpc.StatusCode.UNAUTHENTICATED
    mails = await mailbox.wait_for(email, count=2)
    assert "password was changed" in mails[-1].subject


async def test_password_reset_by_mailed_code_ends_every_session(
    auth: RunningAuth, mailbox: Mailbox, auth_engine, email: str
) -> None:
    from sqlalchemy import text

    await auth.register_verified(mailbox, email)
    old = await auth.login(email)
    with auth_engine.begin() as connection:  # past the address's code cooldown
        connection.execute(text("UPDATE auth_throttles SET last_event_at = last_event_at - interval '61 s'"))

    unknown = await auth.stub.RequestPasswordReset(
        auth_pb2.RequestPasswordResetRequest(email="nobody-" + email)
    )
    known = await auth.stub.RequestPasswordReset(auth_pb2.RequestPasswordResetRequest(email=email))
    assert unknown == known  # no enumeration
    mails = await mailbox.wait_for(email, count=2)
    match = RESET_CODE.search(mails[1].body)
    assert match is not None
    # A reset code does not verify an address, nor a verification code reset a password.
    bad = await rpc_error(
        lambda: auth.stub.ResetPassword(
            auth_pb2.ResetPasswordRequest(email=email, otp="000000", new_password="my recovered secret")
        )
    )
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT

    await auth.stub.ResetPassword(
        auth_pb2.ResetPasswordRequest(email=email, otp=match.group(1), new_password="my recovered secret")
    )

    assert await refused(auth, old) == grpc.StatusCode.UNAUTHENTICATED
    assert await auth.login(email, "my recovered secret")
    mails = await mailbox.wait_for(email, count=3)
    assert "password was changed" in mails[2].subject
    again = await rpc_error(
        lambda: auth.stub.ResetPassword(
            auth_pb2.ResetPasswordRequest(email=email, otp=match.group(1), new_password="yet another secret")
        )
    )
    assert again.code() == grpc.StatusCode.INVALID_ARGUMENT  # used up


async def test_a_reset_takes_an_address_back_from_a_squatter(
    auth: RunningAuth, mailbox: Mailbox, auth_engine, email: str
) -> None:
    from sqlalchemy import text

    await auth.register(email, password="the squatter's password")
    await mailbox.code_for(email)
    with auth_engine.begin() as connection:
        connection.execute(text("UPDATE auth_throttles SET last_event_at = last_event_at - interval '61 s'"))
    await auth.stub.RequestPasswordReset(auth_pb2.RequestPasswordResetRequest(email=email))
    code = RESET_CODE.search((await mailbox.wait_for(email, count=2))[1].body)
    assert code is not None

    await auth.stub.ResetPassword(
        auth_pb2.ResetPasswordRequest(email=email, otp=code.group(1), new_password="the owner's password")
    )

    assert await auth.login(email, "the owner's password")  # verified by the reset code
    assert (await rpc_error(lambda: auth.login(email, "the squatter's password"))).code() == (
        grpc.StatusCode.UNAUTHENTICATED
    )
