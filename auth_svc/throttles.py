"""Anti-automation kept in PostgreSQL, so every auth_svc process and replica sees the same
counts: per account and per client address, for login, register, code sending and code
checking.

Each key (`login:account:<email>`, `login:client:<address>`, ...) has a row counting the
events in its window (started by the first event; a fixed window restarted once it has
passed). The first `free` events cost nothing; each one after that must wait a delay that
doubles from `base_delay` up to `max_delay` after the previous one; at `lock_after`
events the key is locked for `lock_seconds`, and counts again from zero afterwards. A
refused call is not counted (it guessed nothing). An attempt is counted *before* its work
(`take`: check and count in one transaction, under the keys' row locks), so guesses sent at
the same instant cannot all slip through before the first is counted; a success gives its
count back (`give_back`) or clears the key. Keys of addresses that have no account
are counted exactly like the others, so a refusal tells nothing about who exists.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, text

from auth_svc.domain import Throttled


@dataclass(frozen=True)
class ThrottlePolicy:
    window_seconds: int
    free: int
    base_delay: float
    max_delay: float
    lock_after: int
    lock_seconds: int

    def wait_seconds(
        self, events: int, window_start: datetime, last_event_at: datetime, now: datetime
    ) -> float:
        """How long an event at `now` must still wait, given the key's counts."""
        if now - window_start >= timedelta(seconds=self.window_seconds):
            return 0.0
        if events < self.free:
            return 0.0
        delay = min(self.max_delay, self.base_delay * 2.0 ** min(events - self.free, 30))
        return max(0.0, delay - (now - last_event_at).total_seconds())


@dataclass(frozen=True)
class Throttles:
    """The policies auth_svc applies (settings choose the numbers)."""

    login_account: ThrottlePolicy
    login_client: ThrottlePolicy
    register_client: ThrottlePolicy
    code_send_account: ThrottlePolicy
    code_send_client: ThrottlePolicy
    code_check_account: ThrottlePolicy
    code_check_client: ThrottlePolicy

    @classmethod
    def defaults(
        cls,
        *,
        base_delay: float = 1.0,
        lock_seconds: int = 900,
        login_failures_per_account: int = 20,
        login_failures_per_client: int = 100,
        code_failures_per_hour: int = 10,
        code_lock_seconds: int = 3600,
        resend_cooldown_seconds: int = 60,
    ) -> Throttles:
        quarter = 900
        hour = 3600
        return cls(
            login_account=ThrottlePolicy(
                quarter, min(5, login_failures_per_account), base_delay, 30 * base_delay,
                login_failures_per_account, lock_seconds,
            ),
            login_client=ThrottlePolicy(
                quarter, min(20, login_failures_per_client), base_delay, 30 * base_delay,
                login_failures_per_client, lock_seconds,
            ),
            register_client=ThrottlePolicy(hour, 20, 2 * base_delay, 60 * base_delay, 100, hour),
            # One code per cooldown per address; 10 an hour at most.
            code_send_account=ThrottlePolicy(
                hour, 1, resend_cooldown_seconds, resend_cooldown_seconds, 10, hour
            ),
            code_send_client=ThrottlePolicy(hour, 20, 2 * base_delay, 60 * base_delay, 100, hour),
            # The budget of wrong codes per address across resends.
            code_check_account=ThrottlePolicy(
                hour, min(5, code_failures_per_hour), base_delay, 10 * base_delay,
                code_failures_per_hour, code_lock_seconds,
            ),
            code_check_client=ThrottlePolicy(
                hour, 20, base_delay, 30 * base_delay, 100, code_lock_seconds
            ),
        )  # fmt: skip


Keyed = Sequence[tuple[str, ThrottlePolicy]]

_CREATE = text(
    "INSERT INTO auth_throttles (key, events, window_start, last_event_at) "
    "VALUES (:key, 0, :now, :now) ON CONFLICT (key) DO NOTHING"
)
_LOCK_FULL_ROW = text(
    "SELECT events, window_start, last_event_at, locked_until FROM auth_throttles WHERE key = :key FOR UPDATE"
)
_GIVE_BACK = text(
    "UPDATE auth_throttles SET events = greatest(events - 1, 0) WHERE key = :key AND locked_until IS NULL"
)
_UPDATE = text(
    "UPDATE auth_throttles SET events = :events, window_start = :window_start, "
    "last_event_at = :now, locked_until = :locked_until WHERE key = :key"
)
_CLEAR = text("DELETE FROM auth_throttles WHERE key = :key")
_PURGE = text(
    "DELETE FROM auth_throttles WHERE last_event_at < :before "
    "AND (locked_until IS NULL OR locked_until < :now)"
)


def take(connection: Connection, keyed: Keyed, now: datetime) -> None:
    """Check and count one event on every key, atomically: `Throttled` (and nothing
    counted) when any key must wait or is locked. Run it in a transaction of its own."""
    rows = {}
    for key, _policy in sorted(keyed):
        connection.execute(_CREATE, {"key": key, "now": now})
        rows[key] = connection.execute(_LOCK_FULL_ROW, {"key": key}).one()
    wait = 0.0
    for key, policy in keyed:
        row = rows[key]
        if row.locked_until is not None and row.locked_until > now:
            wait = max(wait, (row.locked_until - now).total_seconds())
        else:
            wait = max(wait, policy.wait_seconds(row.events, row.window_start, row.last_event_at, now))
    if wait > 0:
        raise Throttled(max(1, math.ceil(wait)))
    for key, policy in keyed:
        _count(connection, key, policy, rows[key], now)


def _count(connection: Connection, key: str, policy: ThrottlePolicy, row: Any, now: datetime) -> None:
    events, window_start = row.events, row.window_start
    if row.locked_until is not None and row.locked_until <= now:
        events, window_start = 0, now  # a lock that has run out starts afresh
    elif now - window_start >= timedelta(seconds=policy.window_seconds):
        events, window_start = 0, now
    events += 1
    locked_until = None
    if events >= policy.lock_after:
        locked_until = now + timedelta(seconds=policy.lock_seconds)
    elif row.locked_until is not None and row.locked_until > now:
        locked_until = row.locked_until
    connection.execute(
        _UPDATE,
        {
            "key": key,
            "events": events,
            "window_start": window_start,
            "now": now,
            "locked_until": locked_until,
        },
    )


def give_back(connection: Connection, key: str) -> None:
    """Uncount one event that turned out to be a success (a right password from a client)."""
    connection.execute(_GIVE_BACK, {"key": key})


def clear(connection: Connection, key: str) -> None:
    """Forget a key's count (a successful login clears its account's failures)."""
    connection.execute(_CLEAR, {"key": key})


def purge(connection: Connection, now: datetime, older_than: timedelta = timedelta(days=1)) -> int:
    """Delete rows nobody has touched for a while and that lock nothing."""
    result = connection.execute(_PURGE, {"before": now - older_than, "now": now})
    return int(getattr(result, "rowcount", 0) or 0)
