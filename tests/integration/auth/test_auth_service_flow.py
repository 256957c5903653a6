"""The whole auth flow over gRPC against real PostgreSQL and RabbitMQ."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from auth_svc.orm import User
from ocrmesh.auth.v1 import auth_pb2
from ocrmesh.notify.v1 import email_pb2
from ocrmesh.platform.grpc_client import bearer_metadata
from ocrmesh.rules.tokens import TokenVerifier
from tests.integration.auth.auth_support import Mailbox, RunningAuth, rpc_error

pytestmark = pytest.mark.integration


async def test_register_verify_login_and_get_current_user(
    auth: RunningAuth, mailbox: Mailbox, email: str
) -> None:
    registered = await auth.register(email, name="Ada Lovelace")
    # Register answers alike for new and taken addresses: no user in the reply.
    assert registered == auth_pb2.User()

    mails = await mailbox.wait_for(email)
    assert mails[0].kind == email_pb2.EMAIL_KIND_VERIFICATION_CODE
    code = await mailbox.code_for(email)

    verified = await auth.stub.VerifyOtp(auth_pb2.VerifyOtpRequest(email=email, otp=code))
    assert verified.user.is_verified
    token = await auth.login(email)
    me = await auth.stub.GetCurrentUser(auth_pb2.GetCurrentUserRequest(), metadata=bearer_metadata(token))

    assert me.user.id == verified.user.id
    assert (me.user.email, me.user.name, me.user.is_verified) == (email, "Ada Lovelace", True)
    assert me.user.created_at.seconds > 0


async def test_tokens_verify_with_the_published_keys(auth: RunningAuth, mailbox: Mailbox, email: str) -> None:
    user = await auth.register_verified(mailbox, email, name="Grace")
    reply = await auth.stub.Login(auth_pb2.LoginRequest(email=email, password="correct horse battery"))
    verifier = TokenVerifier.from_channel(auth.channel, issuer="ocrmesh-auth", audience="ocrmesh")

    claims = await verifier.verify(reply.access_token)

    assert (claims.user_id, claims.email, claims.name) == (user.id, email, "Grace")
    assert reply.token_type == "bearer"
    assert reply.expires_in == 3600
    assert 3590 <= (claims.expires_at - claims.issued_at).total_seconds() <= 3600


async def test_registering_a_taken_address_answers_alike_and_mails_the_owner(
    auth: RunningAuth, mailbox: Mailbox, auth_engine: Engine, email: str
) -> None:
    # Issue 15: no enumeration through register.
    await auth.register_verified(mailbox, email)
    unknown = "new-" + email
    # Past the address's code cooldown (the owner's registration sent a code just now, and
    # an account made inside the cooldown counts as mailed).
    with auth_engine.begin() as connection:
        connection.execute(
            text("UPDATE auth_throttles SET last_event_at = last_event_at - interval '61 s' WHERE key = :k"),
            {"k": f"code_send:account:{email}"},
        )
        connection.execute(
            text("UPDATE users SET created_at = created_at - interval '61 s' WHERE email = :e"),
            {"e": email},
        )

    taken = await auth.stub.Register(
        auth_pb2.RegisterRequest(name="Eve", email=email.upper(), password="another long secret")
    )
    fresh = await auth.stub.Register(
        auth_pb2.RegisterRequest(name="Eve", email=unknown, password="another long secret")
    )

    assert taken == fresh == auth_pb2.RegisterResponse()
    mails = await mailbox.wait_for(email, count=2)
    assert "tried to sign up" in mails[1].subject
    assert "verification code is" not in mails[1].body
    assert "verification code is" in (await mailbox.wait_for(unknown))[0].body
    # The owner's password is untouched.
    assert await auth.login(email)


async def test_a_sign_up_that_holds_the_cooldown_but_lost_the_race_mails_the_owner_nothing(
    auth: RunningAuth, mailbox: Mailbox, auth_engine: Engine, email: str
) -> None:
    # A double-click: the click that created the account mailed its code whatever the
    # cooldown; the other took the cooldown slot first (here: the slot is free again) and finds
    # the account made a moment ago. It must not mail "someone tried to sign up" as well.
    request = auth_pb2.RegisterRequest(name="Ada", email=email, password="a long enough secret")
    await auth.stub.Register(request)
    with auth_engine.begin() as connection:
        connection.execute(
            text("UPDATE auth_throttles SET last_event_at = last_event_at - interval '61 s' WHERE key = :k"),
            {"k": f"code_send:account:{email}"},
        )
    assert await auth.stub.Register(request) == auth_pb2.RegisterResponse()
    [code_mail] = await mailbox.wait_for(email, count=1)
    assert "verification code is" in code_mail.body
    await asyncio.sleep(1.0)  # what a second mail would have needed to arrive
    assert len(await mailbox.wait_for(email, count=1)) == 1


async def test_fifty_concurrent_registrations_of_one_email_make_one_user(
    auth: RunningAuth, mailbox: Mailbox, auth_engine: Engine, email: str
) -> None:
    variants = [email.upper() if i % 2 else email for i in range(50)]

    results = await asyncio.gather(*(auth.register(v) for v in variants), return_exceptions=True)

    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    # Answered alike, or refused by the address's sending throttle once one has counted.
    assert {e.code() for e in refused} <= {grpc.StatusCode.RESOURCE_EXHAUSTED}
    with Session(auth_engine) as session:
        users = session.scalar(select(func.count()).select_from(User).where(func.lower(User.email) == email))
    assert users == 1
    # The losers' transactions rolled back with their mails: one code mail only (the others
    # may have queued "someone tried to sign up" notices).
    await mailbox.wait_for(email)
    await asyncio.sleep(1.0)
    await asyncio.to_thread(mailbox.drain)
    kinds = [m.kind for m in mailbox.mails_to(email)]
    assert kinds.count(email_pb2.EMAIL_KIND_VERIFICATION_CODE) == 1


async def test_unverified_user_cannot_log_in(auth: RunningAuth, email: str) -> None:
    await auth.register(email)

    error = await rpc_error(lambda: auth.login(email))

    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_unknown_user_and_wrong_password_get_the_same_answer(
    auth: RunningAuth, mailbox: Mailbox, email: str
) -> None:
    await auth.register_verified(mailbox, email)

    wrong_password = await rpc_error(lambda: auth.login(email, "not the password"))
    unknown_user = await rpc_error(lambda: auth.login("nobody-" + email, "not the password"))

    assert wrong_password.code() == unknown_user.code() == grpc.StatusCode.UNAUTHENTICATED
    assert wrong_password.details() == unknown_user.details()


async def test_unverified_user_with_wrong_password_learns_nothing(auth: RunningAuth, email: str) -> None:
    await auth.register(email)

    error = await rpc_error(lambda: auth.login(email, "not the password"))

    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize(
    ("name", "email", "password", "complaint"),
    [
        ("Ada", "not-an-email", "correct horse battery", "invalid email"),
        ("Ada", "", "correct horse battery", "email is required"),
        ("Ada", "a" * 250 + "@example.com", "correct horse battery", "longer than"),
        ("Ada", "ok@example.com", "short", "at least 12"),
        ("Ada", "ok@example.com", "x" * 2000, "at most"),
        ("   ", "ok@example.com", "correct horse battery", "name is required"),
        ("A" * 101, "ok@example.com", "correct horse battery", "name is longer"),
        ("Ada\x00", "ok@example.com", "correct horse battery", "control characters"),
    ],
    ids=[
        "malformed-email",
        "empty-email",
        "oversized-email",
        "short-password",
        "oversized-password",
        "empty-name",
        "oversized-name",
        "control-char-name",
    ],
)
async def test_bad_registration_input_is_invalid_argument_with_a_reason(
    auth: RunningAuth, name: str, email: str, password: str, complaint: str
) -> None:
    error = await rpc_error(
        lambda: auth.stub.Register(auth_pb2.RegisterRequest(name=name, email=email, password=password))
    )

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert complaint in str(error.details())


async def test_login_with_malformed_input_is_invalid_argument(auth: RunningAuth) -> None:
    no_password = await rpc_error(lambda: auth.login("ok@example.com", ""))
    bad_email = await rpc_error(lambda: auth.login("not-an-email", "whatever123"))

    assert no_password.code() == bad_email.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize(
    "metadata",
    [(), (("authorization", "Bearer not.a.token"),), (("authorization", "Basic abc"),)],
    ids=["missing", "garbage", "wrong-scheme"],
)
async def test_get_current_user_without_a_valid_token_is_unauthenticated(
    auth: RunningAuth, metadata: tuple[tuple[str, str], ...]
) -> None:
    error = await rpc_error(
        lambda: auth.stub.GetCurrentUser(auth_pb2.GetCurrentUserRequest(), metadata=metadata)
    )

    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_health_reports_serving(auth: RunningAuth) -> None:
    health = health_pb2_grpc.HealthStub(auth.channel)
    reply = await health.Check(health_pb2.HealthCheckRequest(service="ocrmesh.auth.v1.AuthService"))

    assert reply.status == health_pb2.HealthCheckResponse.SERVING
