"""Anti-automation kept in PostgreSQL, so every auth_svc process and replica sees the same
counts: per account and per client address, for login, register, code requests and code
checking; and the cooldown between two mails to one address.

Each key (`login:account:<email>`, `login:client:<address>`, ...) has a row counting the
events in its window (started by the first event; a fixed window restarted once it has
passed). The first `free` events cost nothing; each one after that must wait a delay that
doubles from `base_delay` up to `max_delay` after the previous one; at `lock_after`
events the key is locked for `lock_seconds`, and counts again from zero afterwards. A
refused call is not counted (it guessed nothing). An attempt is counted *before* its work
(`take`: the repository checks and counts in one transaction, under the keys' row locks),
so guesses sent at the same instant cannot all slip through before the first is counted; a
success gives its count back or clears the key (`cleared_on_success`). Keys of addresses that
have no account are counted exactly like the others, so a refusal tells nothing about who
exists.

The resend cooldown is no throttle: a request for a mail inside it is answered like any
other and mails nothing (`Cooldown`). Its slot is per address too, taken by the request
whether or not the address has an account, so neither the answer nor what the address's
next request meets depends on one existing (issue 28).

This module is the arithmetic, free of I/O; the rows live in `auth_svc.repository`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from auth_svc.domain import Throttled, email_key


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
class Cooldown:
    """At most one mail per `seconds` to one address. Unlike a `ThrottlePolicy` it refuses
    nothing: a request inside it is answered like any other and mails nothing."""

    seconds: int

    def take(self, count: Count, now: datetime) -> Count | None:
        """The slot's new count when a mail may go at `now` (the slot is taken), else None.
        A fresh row (no event yet) is free."""
        if count.events > 0 and now - count.last_event_at < timedelta(seconds=self.seconds):
            return None
        return Count(
            events=count.events + 1, window_start=count.window_start, last_event_at=now, locked_until=None
        )


@dataclass(frozen=True)
class Throttles:
    """The policies auth_svc applies (settings choose the numbers)."""

    login_account: ThrottlePolicy
    login_client: ThrottlePolicy
    register_client: ThrottlePolicy
    code_request_account: ThrottlePolicy
    code_request_client: ThrottlePolicy
    code_send_cooldown: Cooldown
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
        code_requests_per_address: int = 20,
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
            # Requests for a mail (sign-ups, resends, resets) per address, account or not:
            # no delays, a budget far above what a person needs, then locked for the hour.
            code_request_account=ThrottlePolicy(
                hour, code_requests_per_address, 0.0, 0.0, code_requests_per_address, hour
            ),
            code_request_client=ThrottlePolicy(hour, 20, 2 * base_delay, 60 * base_delay, 100, hour),
            # One mail per cooldown per address; the requests inside it mail nothing.
            code_send_cooldown=Cooldown(resend_cooldown_seconds),
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


@dataclass(frozen=True)
class Count:
    """What a key's row holds."""

    events: int
    window_start: datetime
    last_event_at: datetime
    locked_until: datetime | None


def keyed(
    action: str,
    email: str,
    account: ThrottlePolicy | None,
    client: str,
    per_client: ThrottlePolicy | None,
) -> list[tuple[str, ThrottlePolicy]]:
    """The keys one `action` counts against: the address's account (when `account` applies)
    and the client's address (when `per_client` applies and the address is known)."""
    keys: list[tuple[str, ThrottlePolicy]] = []
    if account is not None:
        keys.append((account_key(action, email), account))
    if per_client is not None and client:
        keys.append((f"{action}:client:{client[:100]}", per_client))
    return keys


def account_key(action: str, email: str) -> str:
    """The key `action`'s attempts on `email`'s account are counted under."""
    return f"{action}:account:{email_key(email)}"


def take(keyed: Keyed, counts: Mapping[str, Count], now: datetime) -> dict[str, Count]:
    """One event at `now` counted on every key of `keyed` (whose rows are `counts`): the new
    counts to store, or `Throttled` (and nothing counted) when any key must wait or is locked."""
    wait = 0.0
    for key, policy in keyed:
        count = counts[key]
        if count.locked_until is not None and count.locked_until > now:
            wait = max(wait, (count.locked_until - now).total_seconds())
        else:
            wait = max(wait, policy.wait_seconds(count.events, count.window_start, count.last_event_at, now))
    if wait > 0:
        raise Throttled(max(1, math.ceil(wait)))
    return {key: _counted(policy, counts[key], now) for key, policy in keyed}


def _counted(policy: ThrottlePolicy, count: Count, now: datetime) -> Count:
    events, window_start = count.events, count.window_start
    if count.locked_until is not None and count.locked_until <= now:
        events, window_start = 0, now  # a lock that has run out starts afresh
    elif now - window_start >= timedelta(seconds=policy.window_seconds):
        events, window_start = 0, now
    events += 1
    locked_until = None
    if events >= policy.lock_after:
        locked_until = now + timedelta(seconds=policy.lock_seconds)
    elif count.locked_until is not None and count.locked_until > now:
        locked_until = count.locked_until
    return Count(events=events, window_start=window_start, last_event_at=now, locked_until=locked_until)


def cleared_on_success(key: str) -> bool:
    """Whether a right attempt clears `key` (an account's: its failures are forgiven) rather
    than giving its one event back (a client's: its other guesses still count)."""
    return ":account:" in key
