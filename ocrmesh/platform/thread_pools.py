"""Thread pools whose threads all exist from the start.

`concurrent.futures.ThreadPoolExecutor` starts a thread only when a task finds none idle,
so a pool reaches its size at the first burst that needs it, hours into a run, and each new
thread brings its own stack and, in glibc, possibly its own malloc arena: the service's
memory steps up late, where a soak reads it as a leak. `started_pool` starts every thread
at once, at start-up, where the memory is paid before anyone measures it (docs/reliability.md,
"Memory over time"); `MALLOC_ARENA_MAX=2` in the services' environment keeps the arenas few.
"""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor, wait

# Seconds the threads of a new pool wait for one another before giving up (a pool whose
# threads cannot all start is still a working pool, only a lazier one).
_START_TIMEOUT = 10.0


def started_pool(workers: int, name: str) -> ThreadPoolExecutor:
    """A pool of `workers` threads named `name`-N, all of them running already."""
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
    # Each task waits until all are running at once: only `workers` threads can hold them.
    together = threading.Barrier(workers, timeout=_START_TIMEOUT)

    def meet() -> None:
        with contextlib.suppress(threading.BrokenBarrierError):
            together.wait()

    wait([pool.submit(meet) for _ in range(workers)])
    return pool
