"""The one refresh both token caches use (ocrmesh.rules.tokens.refresh): single flight,
stale values served after `stale_wait`, no new fetch right after a failed one, and the
revocation list failing open on the last one known."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest

from ocrmesh.rules.tokens import InvalidToken, Revocations, TokenClaims, TokenFailure
from ocrmesh.rules.tokens.refresh import FAILED_FETCH_BACKOFF_S, SingleFlightRefresher
from ocrmesh.rules.tokens.revocations import RevocationCache


class Source:
    """Counts fetches; answers with the call number, fails while `failing`, hangs while `held`."""

    def __init__(self) -> None:
        self.calls = 0
        self.failing = False
        self.held = False
        self.release = asyncio.Event()

    async def __call__(self) -> int:
        self.calls += 1
        if self.held:
            await self.release.wait()
        if self.failing:
            raise ConnectionError("auth_svc is down")
        return self.calls


def refresher(source: Source, **options: float) -> SingleFlightRefresher[int]:
    settings = {"max_age": 0.0, "fetch_timeout": 5.0, "stale_wait": 0.05, **options}
    return SingleFlightRefresher(source, 0, what="numbers", **settings)


async def test_concurrent_refreshes_share_one_fetch() -> None:
    source = Source()
    numbers = refresher(source)

    results = await asyncio.gather(*(numbers.refresh() for _ in range(50)))

    assert all(results)
    assert source.calls == 1
    assert numbers.value == 1


async def test_a_stale_value_is_served_once_the_refresh_took_longer_than_stale_wait() -> None:
    source = Source()
    numbers = refresher(source, stale_wait=0.05)
    await numbers.refresh()
    source.held = True

    started = time.perf_counter()
    await asyncio.gather(*(numbers.refresh_if_stale(time.monotonic()) for _ in range(20)))

    assert time.perf_counter() - started < 1.0
    assert numbers.value == 1  # the old value, while the refresh goes on
    assert numbers.in_flight
    assert source.calls == 2
    source.release.set()
    assert await numbers.refresh()  # joins the refresh in flight
    assert (numbers.value, source.calls) == (2, 2)


async def test_no_new_fetch_right_after_a_failed_one() -> None:
    source = Source()
    numbers = refresher(source)
    await numbers.refresh()
    source.failing = True

    assert not await numbers.refresh()
    for _ in range(5):
        await numbers.refresh_if_stale(time.monotonic())

    assert source.calls == 2
    assert numbers.failing
    assert numbers.failed_recently(time.monotonic())
    assert not numbers.failed_recently(time.monotonic() + FAILED_FETCH_BACKOFF_S)
    assert numbers.value == 1


async def test_a_fetch_that_never_answers_fails_after_fetch_timeout() -> None:
    source = Source()
    source.held = True
    numbers = refresher(source, fetch_timeout=0.05)

    assert not await numbers.refresh()
    assert numbers.fetched_at is None
    source.release.set()


async def test_revocations_fail_open_on_the_last_list_known() -> None:
    fetched = 0

    async def revocations() -> Revocations:
        nonlocal fetched
        fetched += 1
        if fetched > 1:
            raise ConnectionError("auth_svc is down")
        return Revocations(token_ids=frozenset({"revoked"}))

    cache = RevocationCache(revocations, max_age=0.0, fetch_timeout=1.0, stale_wait=0.05)
    await cache.check(_claims("fine"))
    cache.forget()

    await cache.check(_claims("still-fine"))  # the fetch fails: nobody is logged out

    assert fetched == 2
    with pytest.raises(InvalidToken) as refused:
        await cache.check(_claims("revoked"))
    assert refused.value.kind is TokenFailure.REVOKED


def _claims(token_id: str) -> TokenClaims:
    now = datetime.now(UTC)
    return TokenClaims(
        user_id="u",
        email="a@example.com",
        name="A",
        issued_at=now,
        expires_at=now + timedelta(hours=1),
        token_id=token_id,
        issuer="i",
        audience="a",
        key_id="k",
    )
