"""Issue 15 against real PostgreSQL: guessing is throttled then locked per account and per
client address across two auth_svc instances, a login flood cannot starve GetCurrentUser,
unverified accounts expire and free their address, common passwords are refused."""

from __future__ import annotations

import asyncio
import time
import uuid

import grpc
import pytest
from sqlalchemy import Engine, text

from auth_svc.servicer import CLIENT_ADDRESS_KEY, RETRY_AFTER_KEY
from auth_svc.settings import AuthSettings
from ocrmesh.auth.v1 import auth_pb2
from ocrmesh.platform.grpc_client import bearer_metadata
from tests.integration.auth.auth_support import Mailbox, RunningAuth, rpc_error

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def retry_after(error: grpc.aio.AioRpcError) -> int:
    return int(dict(error.trailing_metadata() or ())[RETRY_AFTER_KEY])


async def bad_login(auth: RunningAuth, email: str, client: str) -> grpc.aio.AioRpcError:
    return await rpc_error(
        lambda: auth.stub.Login(
            auth_pb2.LoginRequest(email=email, password="not the password"),
            metadata=((CLIENT_ADDRESS_KEY, client),),
        )
    )


async def test_guessing_one_account_is_slowed_then_locked_across_two_instances(
    auth_settings: AuthSettings, mailbox: Mailbox, email: str
) -> None:
    settings = auth_settings.model_copy(
        update={
            "throttle_base_delay_seconds": 0.5,
            "login_max_failures_per_account": 7,
            "throttle_lock_seconds": 300,
        }
    )
    first, second = await RunningAuth.start(settings), await RunningAuth.start(settings)
    try:
        await first.register_verified(mailbox, email)
        # Five free guesses, spread over both instances and over many client addresses.
        for i in range(5):
            error = await bad_login((first, second)[i % 2], email, f"10.0.0.{i + 1}")
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        slowed = await bad_login(second, email, "10.0.1.1")
        assert slowed.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert retry_after(slowed) >= 1
        # After the delay (0.5 s, then 1 s) the next guesses are heard, and fail.
        await asyncio.sleep(0.55)
        assert (await bad_login(first, email, "10.0.1.2")).code() == grpc.StatusCode.UNAUTHENTICATED
        assert (await bad_login(second, email, "10.0.1.3")).code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        await asyncio.sleep(1.05)
        # The 7th wrong password locks the account for THROTTLE_LOCK_SECONDS.
        assert (await bad_login(second, email, "10.0.1.4")).code() == grpc.StatusCode.UNAUTHENTICATED
        await asyncio.sleep(1.5)
        locked = await rpc_error(lambda: first.login(email))  # even the right password
        assert locked.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert 250 <= retry_after(locked) <= 300
    finally:
        await first.stop()
        await second.stop()


async def test_one_client_guessing_many_accounts_is_locked_across_two_instances(
    auth_settings: AuthSettings, mailbox: Mailbox, email: str
) -> None:
    settings = auth_settings.model_copy(update={"login_max_failures_per_client": 6})
    first, second = await RunningAuth.start(settings), await RunningAuth.start(settings)
    try:
        await first.register_verified(mailbox, email)
        client = f"192.0.2.{uuid.uuid4().int % 250 + 1}"
        for i in range(6):
            error = await bad_login((first, second)[i % 2], f"guess-{i}-{email}", client)
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        # That client is locked, whichever account it tries and whichever instance answers;
        # the account itself, from elsewhere, is not.
        refused = await rpc_error(
            lambda: first.stub.Login(
                auth_pb2.LoginRequest(email=email, password="correct horse battery"),
                metadata=((CLIENT_ADDRESS_KEY, client),),
            )
        )
        assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert retry_after(refused) > 60
        reply = await second.stub.Login(
            auth_pb2.LoginRequest(email=email, password="correct horse battery"),
            metadata=((CLIENT_ADDRESS_KEY, "198.51.100.7"),),
        )
        assert reply.access_token
    finally:
        await first.stop()
        await second.stop()


async def test_wrong_codes_are_budgeted_per_address_across_resends(
    auth_settings: AuthSettings, mailbox: Mailbox, auth_engine: Engine, email: str
) -> None:
    settings = auth_settings.model_copy(update={"otp_max_failures_per_hour": 4})
    auth = await RunningAuth.start(settings)
    try:
        await auth.register(email)
        code = await mailbox.code_for(email)
        wrong = f"{(int(code) + 1) % 1_000_000:06d}"
        for i in range(4):
            if i == 2:  # a new code does not give the address new guesses
                with auth_engine.begin() as connection:
                    connection.execute(
                        text("UPDATE auth_throttles SET last_event_at = last_event_at - interval '61 s'")
                    )
                await auth.stub.SendOtp(auth_pb2.SendOtpRequest(email=email))
                code = await mailbox.code_for(email, nth=2)
                wrong = f"{(int(code) + 1) % 1_000_000:06d}"
            request = auth_pb2.VerifyOtpRequest(email=email, otp=wrong)
            metadata = ((CLIENT_ADDRESS_KEY, f"10.9.0.{i + 1}"),)
            error = await rpc_error(
                lambda r=request, m=metadata: auth.stub.VerifyOtp(r, metadata=m)  # type: ignore[misc]
            )
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        locked = await rpc_error(
            lambda: auth.stub.VerifyOtp(auth_pb2.VerifyOtpRequest(email=email, otp=code))
        )
        assert locked.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert retry_after(locked) > 3000  # OTP_LOCK_SECONDS: an hour
    finally:
        await auth.stop()


async def test_a_login_flood_does_not_push_get_current_user_past_its_deadline(
    auth_settings: AuthSettings, mailbox: Mailbox, email: str
) -> None:
    settings = auth_settings.model_copy(update={"auth_hash_workers": 1, "auth_hash_queue": 4})
    auth = await RunningAuth.start(settings)
    try:
        await auth.register_verified(mailbox, email)
        token = await auth.login(email)
        # 60 logins at once, each from its own address (no throttle steps in): far more
        # Argon2 work than one thread does in the lookups' deadline.
        flood = [
            asyncio.ensure_future(bad_login(auth, f"flood-{i}-{email}", f"10.{i // 250}.{i % 250}.9"))
            for i in range(60)
        ]
        await asyncio.sleep(0.05)
        lookups = []
        for _ in range(10):
            started = time.perf_counter()
            reply = await auth.stub.GetCurrentUser(
                auth_pb2.GetCurrentUserRequest(), metadata=bearer_metadata(token), timeout=1.0
            )
            lookups.append(time.perf_counter() - started)
            assert reply.user.email == email
        keys = await auth.stub.GetPublicKeys(auth_pb2.GetPublicKeysRequest(), timeout=1.0)
        assert keys.keys
        errors = await asyncio.gather(*flood)
    finally:
        await auth.stop()

    codes = [e.code() for e in errors]
    # The pool was full: the excess was refused at once rather than queued for ever.
    busy = [e for e in errors if e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED]
    assert busy, codes
    assert all("retry shortly" in str(e.details()) for e in busy)
    assert set(codes) <= {grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAUTHENTICATED}
    assert max(lookups) < 1.0


async def test_an_unverified_account_expires_and_frees_its_address(
    auth_settings: AuthSettings, mailbox: Mailbox, auth_engine: Engine, email: str
) -> None:
    auth = await RunningAuth.start(auth_settings.model_copy(update={"unverified_account_ttl_seconds": 1}))
    try:
        await auth.register(email, password="the squatter's password")
        await mailbox.code_for(email)
        await asyncio.sleep(1.5)
        with auth_engine.begin() as connection:  # past the address's code cooldown
            connection.execute(
                text("UPDATE auth_throttles SET last_event_at = last_event_at - interval '61 s'")
            )

        await auth.register(email, password="the owner's own password")
        code = await mailbox.code_for(email, nth=2)
        await auth.stub.VerifyOtp(auth_pb2.VerifyOtpRequest(email=email, otp=code))

        assert await auth.login(email, "the owner's own password")
        refused = await rpc_error(lambda: auth.login(email, "the squatter's password"))
        assert refused.code() == grpc.StatusCode.UNAUTHENTICATED
        # The housekeeping pass deletes what expired (here: nothing left but verified users).
        assert auth.server.use_cases is not None
        auth.server.use_cases.housekeeping.purge_expired()
        assert await auth.login(email, "the owner's own password")
    finally:
        await auth.stop()


@pytest.mark.parametrize(
    ("password", "complaint"),
    [
        ("qwerty123456", "too common"),
        ("aaaaaaaaaaaaaaaa", "too common"),
        ("Ada Lovelace Byron", "name or email"),
    ],
)
async def test_common_and_personal_passwords_are_refused(
    auth: RunningAuth, email: str, password: str, complaint: str
) -> None:
    error = await rpc_error(
        lambda: auth.stub.Register(
            auth_pb2.RegisterRequest(name="Ada Lovelace Byron", email=email, password=password)
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert complaint in str(error.details())


async def test_long_passwords_of_any_characters_are_accepted_up_to_128(auth: RunningAuth, email: str) -> None:
    await auth.register(email, password="ünïcødé 🔑 pass phrase " * 5)  # 115 characters
    error = await rpc_error(lambda: auth.register("other-" + email, password="x1" * 65))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "at most 128" in str(error.details())


async def test_guesses_sent_at_once_are_all_counted_before_any_is_checked(
    auth_settings: AuthSettings, mailbox: Mailbox, email: str
) -> None:
    # An attempt is counted before its Argon2 work: 20 guesses in one burst get exactly
    # the 5 free ones through, not as many as happen to be in flight.
    settings = auth_settings.model_copy(
        update={"throttle_base_delay_seconds": 2.0, "login_max_failures_per_account": 8}
    )
    auth = await RunningAuth.start(settings)
    try:
        await auth.register_verified(mailbox, email)
        errors = await asyncio.gather(*(bad_login(auth, email, f"10.7.0.{i + 1}") for i in range(20)))
    finally:
        await auth.stop()

    codes = [e.code() for e in errors]
    assert codes.count(grpc.StatusCode.UNAUTHENTICATED) == 5, codes
    assert codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) == 15, codes
