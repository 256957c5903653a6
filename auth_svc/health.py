"""auth_svc's readiness follows its database.

gRPC health answers two questions under two names (docs/auth.md, "Liveness and readiness"):

- `""`, the server: is the process up and serving gRPC? The liveness and startup probes ask
  it. It stays SERVING while PostgreSQL is gone: restarting auth_svc would not bring the
  database back, and every replica restarting at once would only add start-up load (and
  migrations) when it returns.
- `ocrmesh.auth.v1.AuthService`, the service: can it do its work now? Readiness asks it (the
  kubelet, the gateway's `/readyz`). Every call but GetPublicKeys needs the database, so it
  is NOT_SERVING while the database does not answer.

`DatabaseHealth` asks PostgreSQL a `SELECT 1` every `interval_seconds` on a connection of
its own (`auth_svc.db.make_probe_engine`), never on a request's path: the request pools keep
no ping on checkout (see `auth_svc.db.make_engine`). When the database answers again after
an outage, or the check finds its own connection ended by the server (a restart shorter than
an interval), the request pools' connections are replaced before the service reports
SERVING, so the first calls after an outage do not meet connections the server dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

log = logging.getLogger(__name__)

# Reports whether the database answers: called on every change, from the event loop.
OnChange = Callable[[bool], Awaitable[None]]


@dataclass(frozen=True)
class DatabaseCheck:
    """How often the database is asked, and how long its answer may take. A database that
    stops answering is seen within about `interval_seconds + timeout_seconds`; one that
    answers again, within about `interval_seconds`."""

    interval_seconds: float = 2.0
    timeout_seconds: float = 2.0


@dataclass(frozen=True)
class Answer:
    """One check's outcome. `pools_replaced`: the request pools' connections were closed,
    so requests open new ones."""

    answered: bool
    pools_replaced: bool = False
    error: str = ""


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def _select_one(probe: Engine) -> None:
    with probe.connect() as connection:
        connection.exec_driver_sql("SELECT 1")


def ask_database(probe: Engine, pools: Sequence[Engine], *, after_outage: bool) -> Answer:
    """`SELECT 1` on `probe` (blocking). When the connection it held was ended by the server,
    once more on a new one; when the database answers after an outage or after such an end,
    the connections of `pools` are replaced (they date from before too)."""
    connection_ended = False
    try:
        _select_one(probe)
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            return Answer(answered=False, error=_first_line(exc))
        connection_ended = True
    except SQLAlchemyError as exc:
        return Answer(answered=False, error=_first_line(exc))
    if connection_ended:
        try:
            _select_one(probe)
        except SQLAlchemyError as exc:
            return Answer(answered=False, error=_first_line(exc))
    if not (after_outage or connection_ended):
        return Answer(answered=True)
    for engine in pools:
        # Connections checked out now go back to the old pool and close with it.
        engine.dispose()
    return Answer(answered=True, pools_replaced=True)


def _in_daemon_thread(work: Callable[[], Answer]) -> asyncio.Future[Answer]:
    """`work()` in a thread of its own, as a future of this loop. A daemon thread: a check
    stuck on a dead network must not hold up the process's exit (an executor's would)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Answer] = loop.create_future()

    def settle(answer: Answer) -> None:
        if not future.done():
            future.set_result(answer)

    def run() -> None:
        try:
            answer = work()
        except Exception as exc:  # a bug, not an outage: still an answer, and logged
            log.exception("database check failed")
            answer = Answer(answered=False, error=_first_line(exc))
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits
            loop.call_soon_threadsafe(settle, answer)

    threading.Thread(target=run, name="auth-database-check", daemon=True).start()
    return future


class DatabaseHealth:
    """Checks the database every `check.interval_seconds` and reports each change. It starts
    as answering: it is made right after the database was migrated."""

    def __init__(self, probe: Engine, pools: Sequence[Engine], check: DatabaseCheck | None = None) -> None:
        self.check = check or DatabaseCheck()
        self.answering = True
        self.pools_replaced = 0  # how many times the request pools' connections were replaced
        self._probe = probe
        self._pools = tuple(pools)
        self._on_change: OnChange | None = None
        self._task: asyncio.Task[None] | None = None
        self._in_flight: asyncio.Future[Answer] | None = None
        self._down_since = 0.0
        self._stopping = False

    def start(self, on_change: OnChange) -> None:
        """Check from now on in this event loop, calling `on_change(answering)` on changes."""
        self._on_change = on_change
        self._task = asyncio.get_running_loop().create_task(self._run(), name="auth-database-health")

    async def stop(self) -> None:
        """Stop checking (a check in flight finishes on its own) and close the connection."""
        self._stopping = True  # ends the loop even if a cancellation were lost on the way
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await asyncio.to_thread(self._probe.dispose)

    async def check_once(self) -> bool:
        """Ask the database once, report a change; whether it answered."""
        answer = await self._ask()
        if answer.answered and not self.answering and not answer.pools_replaced:
            # A check begun before the outage was seen (it outlived its timeout): ask again,
            # this time replacing the pools' connections before saying ready.
            answer = await self._ask()
        if answer.pools_replaced:
            self.pools_replaced += 1
            log.info("database connections of the request pools replaced")
        if answer.answered == self.answering:
            return answer.answered
        self.answering = answer.answered
        if answer.answered:
            log.info(
                "database answers again: ready",
                extra={"down_seconds": round(time.monotonic() - self._down_since, 1)},
            )
        else:
            self._down_since = time.monotonic()
            log.warning("database does not answer: not ready", extra={"error": answer.error})
        if self._on_change is not None:
            await self._on_change(answer.answered)
        return answer.answered

    async def _ask(self) -> Answer:
        # A check still stuck past its timeout is waited for again, never doubled.
        if self._in_flight is None or self._in_flight.done():
            after_outage = not self.answering
            self._in_flight = _in_daemon_thread(
                lambda: ask_database(self._probe, self._pools, after_outage=after_outage)
            )
        # asyncio.wait, not wait_for: it leaves the check running past the timeout, and
        # wait_for (3.11) returns a result that arrives with a cancellation, losing the latter.
        done, _pending = await asyncio.wait({self._in_flight}, timeout=self.check.timeout_seconds)
        if not done:
            return Answer(answered=False, error=f"no answer within {self.check.timeout_seconds} s")
        return self._in_flight.result()

    async def _run(self) -> None:
        while not self._stopping:
            await self.check_once()
            await asyncio.sleep(self.check.interval_seconds)


__all__ = ["Answer", "DatabaseCheck", "DatabaseHealth", "ask_database"]
