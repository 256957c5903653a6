"""Concurrent user lookups answered together: the DataLoader pattern for GetCurrentUser.

Every authenticated call through the gateway asks auth_svc who its user is. One by one,
each lookup costs a hop to a worker thread and back and a round trip to PostgreSQL; under
load that hop, not the query, is most of auth_svc's CPU per call. `UserLookups` keeps at
most one batch in flight: lookups that arrive while it runs wait for the next batch, which
asks for all their ids in one `WHERE id IN (...)` query on one thread hop. Alone, a lookup
costs what it did (a batch of one); at 32 concurrent calls batches of ~10 share the cost.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Collection
from concurrent.futures import Executor

from auth_svc.domain import UserView

# A bound on one query's IN list; a longer queue is served by the next batches.
MAX_BATCH = 128

FetchUsers = Callable[[Collection[uuid.UUID]], dict[uuid.UUID, UserView]]


class UserLookups:
    """`await lookups.user(id)` -> the user, or None when there is none. One per event loop."""

    def __init__(self, fetch: FetchUsers, executor: Executor, *, max_batch: int = MAX_BATCH) -> None:
        self._fetch = fetch
        self._executor = executor
        self._max_batch = max_batch
        self._waiting: list[tuple[uuid.UUID, asyncio.Future[UserView | None]]] = []
        # The running batch loop, if any (kept: the event loop holds tasks only weakly).
        self._drainer: asyncio.Task[None] | None = None

    async def user(self, user_id: uuid.UUID) -> UserView | None:
        """The user `user_id` names; raises what the query raised (the database is down)."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[UserView | None] = loop.create_future()
        self._waiting.append((user_id, answer))
        if self._drainer is None:
            self._drainer = loop.create_task(self._drain())
        return await answer

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._waiting:
                batch = self._waiting[: self._max_batch]
                del self._waiting[: self._max_batch]
                # Callers that gave up (deadline, cancelled) need no answer.
                batch = [(user_id, answer) for user_id, answer in batch if not answer.done()]
                if not batch:
                    continue
                ids = {user_id for user_id, _ in batch}
                try:
                    found = await loop.run_in_executor(self._executor, self._fetch, ids)
                except Exception as exc:
                    for _, answer in batch:
                        if not answer.done():
                            answer.set_exception(exc)
                    continue
                for user_id, answer in batch:
                    if not answer.done():
                        answer.set_result(found.get(user_id))
        finally:
            self._drainer = None
