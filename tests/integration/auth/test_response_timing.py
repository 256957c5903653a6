"""Login and the code flows must not reveal who has an account through their response time
(their answers: `test_no_enumeration.py`)."""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Awaitable, Callable

import grpc
import pytest

from auth_svc.settings import AuthSettings
from ocrmesh.auth.v1 import auth_pb2
from tests.integration.auth.auth_support import Mailbox, RunningAuth, rpc_error

pytestmark = pytest.mark.integration

ROUNDS = 15


async def medians(calls: dict[str, Callable[[int], Awaitable[object]]]) -> dict[str, float]:
    """The median time of each kind of call, the kinds interleaved round by round, so a burst
    of load on the shared machine hits them alike. A refusal counts like an answer."""
    timings: dict[str, list[float]] = {kind: [] for kind in calls}
    for round_number in range(ROUNDS):
        for kind, call in calls.items():
            started = time.perf_counter()
            with contextlib.suppress(grpc.aio.AioRpcError):
                await call(round_number)
            timings[kind].append(time.perf_counter() - started)
    return {kind: statistics.median(times) for kind, times in timings.items()}


async def test_unknown_email_and_wrong_password_take_about_the_same_time(
    auth: RunningAuth, mailbox: Mailbox, email: str
) -> None:
    await auth.register_verified(mailbox, email)
    unknown = "nobody-" + email
    await rpc_error(lambda: auth.login(unknown, "warm up the path"))

    took = await medians(
        {
            "unknown": lambda _: auth.login(unknown, "not the password"),
            "wrong": lambda _: auth.login(email, "not the password"),
        }
    )

    # Without the dummy hash check the unknown-email path is ~50x faster (no Argon2 at all);
    # a factor of 2 either way is loose enough for a noisy shared machine.
    assert 0.5 < took["unknown"] / took["wrong"] < 2.0, took


def code_flow(auth: RunningAuth, operation: str, address: str) -> Awaitable[object]:
    stub = auth.stub
    if operation == "register":
        return stub.Register(
            auth_pb2.RegisterRequest(name="Mallory", email=address, password="another long secret")
        )
    if operation == "generate_otp":
        return stub.SendOtp(auth_pb2.SendOtpRequest(email=address))
    if operation == "password/forgot":
        return stub.RequestPasswordReset(auth_pb2.RequestPasswordResetRequest(email=address))
    if operation == "verify_otp":
        return stub.VerifyOtp(auth_pb2.VerifyOtpRequest(email=address, otp="000000"))
    return stub.ResetPassword(
        auth_pb2.ResetPasswordRequest(email=address, otp="000000", new_password="my recovered secret")
    )


# The account that does the most work for each: a code or a notice mailed, a code checked.
KNOWN = {
    "register": "verified",
    "generate_otp": "pending",
    "password/forgot": "verified",
    "verify_otp": "pending",
    "password/reset": "verified",
}


@pytest.mark.parametrize("operation", list(KNOWN))
async def test_code_flows_take_about_the_same_time_for_known_and_unknown_addresses(
    auth_settings: AuthSettings, mailbox: Mailbox, email: str, operation: str
) -> None:
    # Issue 28. The slowest known path: no cooldown (every request mails when it may) and
    # budgets that never step in. An unknown address is a new one each round (a registered
    # one would be known from then on).
    settings = auth_settings.model_copy(
        update={
            "otp_resend_cooldown_seconds": 0,
            "otp_max_requests_per_hour": 10_000,
            "otp_max_failures_per_hour": 1000,
            "throttle_base_delay_seconds": 1e-6,
        }
    )
    auth = await RunningAuth.start(settings)
    try:
        accounts = {"verified": "verified-" + email, "pending": "pending-" + email}
        await auth.register_verified(mailbox, accounts["verified"])
        await auth.register(accounts["pending"])
        known = accounts[KNOWN[operation]]
        await rpc_error(lambda: code_flow(auth, "verify_otp", "warm-up-" + email))

        took = await medians(
            {
                "known": lambda _: code_flow(auth, operation, known),
                "unknown": lambda n: code_flow(auth, operation, f"nobody-{n}-{email}"),
            }
        )
    finally:
        await auth.stop()

    # Measured here: the known paths' reads and writes (the pending code, a new code and its
    # outbox row) cost about 1 ms on calls of 3-7 ms (generate_otp, forgot, verify_otp), and
    # nothing next to Argon2 (register, reset: 25-40 ms). A path that skips or adds real work
    # (a hash) is off by a factor of 2 and by more than 5 ms; a row write is neither.
    ratio, gap = took["known"] / took["unknown"], abs(took["known"] - took["unknown"])
    assert 0.5 < ratio < 2.0 or gap < 0.005, took
