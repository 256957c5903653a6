"""Login must not reveal who has an account through its response time."""

from __future__ import annotations

import contextlib
import statistics
import time

import grpc
import pytest

from tests.integration.auth.auth_support import Mailbox, RunningAuth, rpc_error

pytestmark = pytest.mark.integration

ROUNDS = 15


async def test_unknown_email_and_wrong_password_take_about_the_same_time(
    auth: RunningAuth, mailbox: Mailbox, email: str
) -> None:
    await auth.register_verified(mailbox, email)
    unknown = "nobody-" + email
    await rpc_error(lambda: auth.login(unknown, "warm up the path"))
    timings: dict[str, list[float]] = {"unknown": [], "wrong": []}

    # Interleaved, so a burst of load on the shared machine hits both kinds alike.
    for _ in range(ROUNDS):
        for kind, address in (("unknown", unknown), ("wrong", email)):
            started = time.perf_counter()
            with contextlib.suppress(grpc.aio.AioRpcError):
                await auth.login(address, "not the password")
            timings[kind].append(time.perf_counter() - started)

    unknown_median = statistics.median(timings["unknown"])
    wrong_median = statistics.median(timings["wrong"])
    # Without the dummy hash check the unknown-email path is ~50x faster (no Argon2 at all);
    # a factor of 2 either way is loose enough for a noisy shared machine.
    assert 0.5 < unknown_median / wrong_median < 2.0, (unknown_median, wrong_median)
