"""UserLookups: concurrent GetCurrentUser lookups share one query and one thread hop."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest

from auth_svc.domain import UserView
from auth_svc.lookups import UserLookups


def view(user_id: uuid.UUID) -> UserView:
    return UserView(
        id=user_id, name="N", email="n@example.com", is_verified=True, created_at=datetime.now(UTC)
    )


class SlowTable:
    """Answers id lookups like the users table, one query at a time, each held until released."""

    def __init__(self, known: set[uuid.UUID]) -> None:
        self.known = known
        self.queries: list[set[uuid.UUID]] = []
        self.release = threading.Event()

    def fetch(self, ids: Collection[uuid.UUID]) -> dict[uuid.UUID, UserView]:
        self.queries.append(set(ids))
        self.release.wait(10)
        return {i: view(i) for i in ids if i in self.known}


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=4) as pool:
        yield pool


async def test_lookups_that_arrive_while_a_query_runs_share_the_next_one(
    executor: ThreadPoolExecutor,
) -> None:
    ids = [uuid.uuid4() for _ in range(20)]
    table = SlowTable(set(ids[:19]))
    lookups = UserLookups(table.fetch, executor)

    first = asyncio.create_task(lookups.user(ids[0]))
    await asyncio.sleep(0.05)  # the first query is running
    rest = [asyncio.create_task(lookups.user(i)) for i in ids[1:]]
    await asyncio.sleep(0.05)
    table.release.set()
    found = [await first, *await asyncio.gather(*rest)]

    assert table.queries == [{ids[0]}, set(ids[1:])]
    assert [u.id if u else None for u in found] == [*ids[:19], None]


async def test_a_failed_query_fails_every_lookup_in_it_and_the_next_batch_runs(
    executor: ThreadPoolExecutor,
) -> None:
    calls = 0

    def flaky(ids: Collection[uuid.UUID]) -> dict[uuid.UUID, UserView]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("database down")
        return {i: view(i) for i in ids}

    lookups = UserLookups(flaky, executor)
    results = await asyncio.gather(*(lookups.user(uuid.uuid4()) for _ in range(3)), return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)

    assert await lookups.user(uuid.uuid4()) is not None


async def test_a_caller_that_gave_up_does_not_break_the_others(executor: ThreadPoolExecutor) -> None:
    ids = [uuid.uuid4() for _ in range(3)]
    table = SlowTable(set(ids))
    lookups = UserLookups(table.fetch, executor)

    gone = asyncio.create_task(lookups.user(ids[0]))
    await asyncio.sleep(0.05)
    waiting = [asyncio.create_task(lookups.user(i)) for i in ids[1:]]
    await asyncio.sleep(0.01)
    gone.cancel()
    table.release.set()

    assert [u.id for u in await asyncio.gather(*waiting) if u] == ids[1:]
