"""A started pool has every thread running before its first task (no late memory step)."""

from __future__ import annotations

import threading

from ocrmesh.platform.thread_pools import started_pool


def test_every_thread_of_a_started_pool_runs_before_any_task() -> None:
    before = {thread.name for thread in threading.enumerate()}
    pool = started_pool(4, "started-pool-test")
    try:
        named = {thread.name for thread in threading.enumerate()} - before
        assert sorted(named) == [f"started-pool-test_{n}" for n in range(4)]
        assert pool.submit(lambda: 6 * 7).result(timeout=5) == 42
        # No thread is added by the tasks that follow.
        assert {thread.name for thread in threading.enumerate()} - before == named
    finally:
        pool.shutdown(wait=True)
