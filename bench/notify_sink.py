"""A local SMTP server that counts mails, the mailbox `bench.bench_notify` delivers to."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from typing import Any

from aiosmtpd.smtp import SMTP


class CountingSink:
    """A local SMTP server (aiosmtpd) that counts mails in shared memory: `processes` server
    processes on one port (SO_REUSEPORT; the kernel spreads connections over them), so that the
    mailbox, one Python event loop handling ~300 mails/s, is not what the benchmark measures.
    Its own processes keep it off the publisher's GIL. Times are `time.monotonic()`, the same
    clock in every process."""

    def __init__(self, port: int, processes: int = 2) -> None:
        self._count = multiprocessing.Value("q", 0)
        self._last_at = multiprocessing.Value("d", 0.0)
        self._first_at = multiprocessing.Value("d", 0.0)  # the first mail since `restart_clock`
        self._ready = [multiprocessing.Event() for _ in range(processes)]
        self._processes = [
            multiprocessing.Process(target=self._serve, args=(port, ready), daemon=True)
            for ready in self._ready
        ]

    @property
    def count(self) -> int:
        return int(self._count.value)

    @property
    def last_at(self) -> float:
        return float(self._last_at.value)

    @property
    def first_at(self) -> float:
        return float(self._first_at.value)

    def restart_clock(self) -> None:
        """From now on `first_at` is the time of the next mail."""
        with self._count.get_lock():
            self._first_at.value = 0.0

    def start(self) -> None:
        for process in self._processes:
            process.start()
        if not all(ready.wait(30) for ready in self._ready):
            raise SystemExit("the SMTP sink did not start")

    def stop(self) -> None:
        for process in self._processes:
            process.terminate()
        for process in self._processes:
            process.join(10)

    def _serve(self, port: int, ready: Any) -> None:
        count, last_at, first_at = self._count, self._last_at, self._first_at

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                with count.get_lock():
                    count.value += 1
                    last_at.value = time.monotonic()
                    if first_at.value == 0.0:
                        first_at.value = last_at.value
                return "250 OK"

        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        handler = Handler()
        loop.run_until_complete(
            loop.create_server(lambda: SMTP(handler), host="127.0.0.1", port=port, reuse_port=True)
        )
        ready.set()
        loop.run_forever()
