"""The threads that run Argon2, apart from everything else.

A login or a registration costs tens of milliseconds of CPU; a token check or a user lookup
costs a query. In one shared pool a flood of logins queues ahead of every lookup, so the
hashing calls get their own few threads and a bounded queue: when both are full the call is
refused at once (`Busy`, RESOURCE_EXHAUSTED, 429) instead of waiting behind the flood, and
the cheap calls never wait for a hash.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from auth_svc.domain import Busy
from ocrmesh.platform.thread_pools import started_pool

T = TypeVar("T")


class BoundedPool:
    """`workers` threads and at most `queue` calls waiting for one; `submit` beyond that
    raises `Busy`. Thread-safe."""

    def __init__(self, workers: int, queue: int, *, name: str = "auth-hash") -> None:
        self.limit = workers + queue
        self._executor = started_pool(workers, name)
        self._lock = threading.Lock()
        self._in_flight = 0
        #: Calls refused because the pool was full (tests and logs read it).
        self.refused_total = 0

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def submit(self, fn: Callable[..., T], /, *args: Any) -> Future[T]:
        with self._lock:
            if self._in_flight >= self.limit:
                self.refused_total += 1
                raise Busy()
            self._in_flight += 1
        try:
            future = self._executor.submit(fn, *args)
        except BaseException:
            self._release()
            raise
        future.add_done_callback(lambda _: self._release())
        return future

    def _release(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def shutdown(self, wait: bool = True) -> None:
        self._executor.shutdown(wait=wait)
