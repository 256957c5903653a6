"""A value fetched from auth_svc and kept fresh without making requests queue.

Both things a verifier caches (the published keys and the revocations) follow the same
rules, written here once:

- single flight: at most one fetch runs at a time; everyone who needs one joins it;
- bounded: a fetch that does not answer within `fetch_timeout` counts as failed;
- stale, not blocked: when the value is older than `max_age` one refresh starts and
  callers wait for it at most `stale_wait` seconds from its start (a healthy auth_svc
  answers well within that), then carry on with the value they have while it runs;
- backoff: right after a failed fetch, callers do not start another for
  `FAILED_FETCH_BACKOFF_S`, so calls fail (or fall back) fast instead of each waiting for
  its own deadline against an auth_svc that is down.

What to do with the value (and when a caller must wait for a full fetch) is the caller's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import grpc

log = logging.getLogger(__name__)

# After a failed fetch, calls needing a fetch fail fast for this long instead of each
# waiting for its own deadline against an auth_svc that is down.
FAILED_FETCH_BACKOFF_S = 1.0

T = TypeVar("T")


class SingleFlightRefresher(Generic[T]):
    """Holds the last fetched value of `fetch` and refreshes it single-flight.

    `what` names the value in logs ("cannot fetch token <what>"). Starts with `initial`,
    which counts as never fetched. Safe to share between all tasks of one event loop.
    """

    def __init__(
        self,
        fetch: Callable[[], Awaitable[T]],
        initial: T,
        *,
        what: str,
        max_age: float,
        fetch_timeout: float,
        stale_wait: float,
    ) -> None:
        self._fetch = fetch
        self._value = initial
        self.what = what
        self.max_age = max_age
        self.fetch_timeout = fetch_timeout
        self.stale_wait = stale_wait
        # monotonic time of the last successful fetch; None before the first one (or after
        # `expire`).
        self._fetched_at: float | None = None
        # monotonic time of the last failed fetch, while no fetch has succeeded since.
        self._failed_at: float | None = None
        # The one fetch in flight, and when it started. Its result: whether it succeeded.
        self._task: asyncio.Task[bool] | None = None
        self._started = 0.0

    @property
    def value(self) -> T:
        """The value of the last successful fetch (`initial` before any)."""
        return self._value

    @property
    def fetched_at(self) -> float | None:
        """When (monotonic) the last successful fetch ended; None if there was none."""
        return self._fetched_at

    @property
    def failing(self) -> bool:
        """Whether the last fetch failed (and none has succeeded since)."""
        return self._failed_at is not None

    @property
    def in_flight(self) -> bool:
        """Whether a fetch is running now."""
        return self._task is not None and not self._task.done()

    def stale(self, now: float) -> bool:
        """Whether the value is missing or older than `max_age` at `now` (monotonic)."""
        return self._fetched_at is None or now - self._fetched_at > self.max_age

    def failed_recently(self, now: float) -> bool:
        """Whether a fetch failed less than `FAILED_FETCH_BACKOFF_S` before `now`."""
        return self._failed_at is not None and now - self._failed_at < FAILED_FETCH_BACKOFF_S

    def expire(self) -> None:
        """Treat the value as never fetched: the next caller waits for a full fetch."""
        self._fetched_at = None

    def start(self) -> asyncio.Task[bool]:
        """The fetch in flight, started now if there is none."""
        task = self._task
        if task is None or task.done():
            self._started = time.monotonic()
            task = self._task = asyncio.get_running_loop().create_task(self._fetch_once())
        return task

    async def wait(self, task: asyncio.Task[bool], at_most: float) -> None:
        """Wait for `task` at most `at_most` seconds; it goes on running if that is not enough
        (shielded: a caller giving up, or cancelled, never cancels everyone's fetch)."""
        if at_most <= 0 or task.done():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), at_most)

    async def refresh(self) -> bool:
        """Fetch now (joining a fetch in flight) and wait for it; whether it succeeded."""
        return await asyncio.shield(self.start())

    async def refresh_if_stale(self, now: float) -> None:
        """When the value is stale at `now`: start (or join) one refresh, unless one failed
        just before and none runs, and wait for it. Never fetched: a full bounded fetch.
        Fetched before: only the first `stale_wait` seconds of the refresh, after which the
        old value serves (better than refusing everyone while auth_svc restarts)."""
        if not self.stale(now):
            return
        if not self.in_flight and self.failed_recently(now):
            return
        task = self.start()
        at_most = self.fetch_timeout if self._fetched_at is None else self._started + self.stale_wait - now
        await self.wait(task, at_most)

    async def _fetch_once(self) -> bool:
        try:
            # Bounded here too: a custom fetcher against a hung auth_svc may never return.
            value = await asyncio.wait_for(self._fetch(), self.fetch_timeout)
        except Exception as exc:
            # Whatever went wrong (auth_svc down, deadline, a broken custom fetcher), callers
            # can only be told that there is no fresh value right now.
            code = exc.code() if isinstance(exc, grpc.Call) else None
            log.warning(
                "cannot fetch token %s",
                self.what,
                extra={"error": type(exc).__name__, "code": getattr(code, "name", None)},
            )
            self._failed_at = time.monotonic()
            return False
        self._value = value
        self._fetched_at = time.monotonic()
        self._failed_at = None
        return True


__all__ = ["FAILED_FETCH_BACKOFF_S", "SingleFlightRefresher"]
