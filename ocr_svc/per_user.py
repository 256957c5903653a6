"""At most N OCR calls in flight per user, so that one user cannot take every worker and
queue slot (`OCR_MAX_CALLS_PER_USER`).

The count is per process, like the workers and the queue it protects: with
`OCR_PROCESSES` > 1 or several replicas, a user may hold up to N calls in each (clients
reach one process per connection, and the gateway keeps one connection per worker).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager


class TooManyCalls(Exception):
    """The user already has the most calls in flight that one user may have."""

    def __init__(self, limit: int, retry_after_seconds: int) -> None:
        super().__init__(
            f"you already have {limit} OCR call{'s' if limit != 1 else ''} in progress; "
            "wait for one to finish"
        )
        self.retry_after_seconds = retry_after_seconds


class CallsPerUser:
    """Counts each user's calls in flight. `limit` 0 means no limit. One per event loop."""

    def __init__(self, limit: int, *, retry_after_seconds: int = 2) -> None:
        self.limit = limit
        self.retry_after_seconds = retry_after_seconds
        self._in_flight: Counter[str] = Counter()

    def in_flight(self, user_id: str) -> int:
        return self._in_flight[user_id]

    @contextmanager
    def hold(self, user_id: str) -> Iterator[None]:
        """A slot of `user_id`'s for the duration of the block; raises `TooManyCalls`."""
        if self.limit and self._in_flight[user_id] >= self.limit:
            raise TooManyCalls(self.limit, self.retry_after_seconds)
        self._in_flight[user_id] += 1
        try:
            yield
        finally:
            self._in_flight[user_id] -= 1
            if not self._in_flight[user_id]:
                del self._in_flight[user_id]
