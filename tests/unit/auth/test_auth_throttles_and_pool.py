"""Throttle arithmetic, the bounded hashing pool and the client address, without I/O."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from auth_svc import domain, throttles
from auth_svc.hashing_pool import BoundedPool
from auth_svc.servicer import CLIENT_ADDRESS_KEY, client_address
from auth_svc.throttles import Count, ThrottlePolicy

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
POLICY = ThrottlePolicy(
    window_seconds=900, free=3, base_delay=1.0, max_delay=8.0, lock_after=10, lock_seconds=60
)


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("events", "last_event_s_ago", "wait"),
    [
        (0, 0, 0.0),
        (2, 0, 0.0),  # within the free attempts
        (3, 0, 1.0),  # first delay
        (4, 0, 2.0),  # doubles
        (5, 0.5, 3.5),  # counted from the last event
        (9, 0, 8.0),  # capped
        (9, 100, 0.0),
    ],
)
def test_delays_grow_after_the_free_attempts(events: int, last_event_s_ago: float, wait: float) -> None:
    assert POLICY.wait_seconds(events, ago(200), ago(last_event_s_ago), NOW) == pytest.approx(wait)


def test_a_window_that_has_passed_costs_nothing() -> None:
    assert POLICY.wait_seconds(9, ago(901), ago(0), NOW) == 0.0


def fresh() -> Count:
    return Count(events=0, window_start=NOW, last_event_at=NOW, locked_until=None)


def test_an_attempt_is_counted_on_every_key_it_names() -> None:
    keyed = throttles.keyed("login", "Ada@Example.com", POLICY, "203.0.113.9", POLICY)
    assert [key for key, _ in keyed] == ["login:account:ada@example.com", "login:client:203.0.113.9"]
    counted = throttles.take(keyed, {key: fresh() for key, _ in keyed}, NOW)
    assert {key: count.events for key, count in counted.items()} == {key: 1 for key, _ in keyed}


def test_one_key_that_must_wait_refuses_the_attempt_for_all() -> None:
    keyed = throttles.keyed("login", "ada@example.com", POLICY, "203.0.113.9", POLICY)
    busy = Count(events=3, window_start=ago(10), last_event_at=NOW, locked_until=None)
    counts = {keyed[0][0]: fresh(), keyed[1][0]: busy}
    with pytest.raises(domain.Throttled) as refused:
        throttles.take(keyed, counts, NOW)
    assert refused.value.seconds_left == 1


def test_the_last_allowed_attempt_locks_the_key_and_a_spent_lock_starts_afresh() -> None:
    keyed = [("k", POLICY)]
    nine = Count(events=9, window_start=ago(100), last_event_at=ago(100), locked_until=None)
    locked = throttles.take(keyed, {"k": nine}, NOW)["k"]
    assert locked.events == 10
    assert locked.locked_until == NOW + timedelta(seconds=60)
    later = NOW + timedelta(seconds=61)
    assert throttles.take(keyed, {"k": locked}, later)["k"] == Count(
        events=1, window_start=later, last_event_at=later, locked_until=None
    )


def test_a_right_attempt_clears_the_account_and_gives_the_client_its_event_back() -> None:
    assert throttles.cleared_on_success("login:account:ada@example.com")
    assert not throttles.cleared_on_success("login:client:203.0.113.9")


def test_the_cooldown_lets_one_mail_through_per_period_and_refuses_nothing() -> None:
    cooldown = throttles.Cooldown(60)
    taken = cooldown.take(fresh(), NOW)
    assert taken == Count(events=1, window_start=NOW, last_event_at=NOW, locked_until=None)
    # Inside the period: no mail, and the slot is left as it was (no Throttled either).
    assert cooldown.take(taken, NOW + timedelta(seconds=59)) is None
    later = NOW + timedelta(seconds=60)
    assert cooldown.take(taken, later) == Count(
        events=2, window_start=NOW, last_event_at=later, locked_until=None
    )
    assert throttles.Cooldown(0).take(taken, NOW) is not None


def test_the_code_request_budget_has_no_delays_and_locks_past_it() -> None:
    # Issue 28: only a spent budget refuses a code request, never the cooldown.
    policy = throttles.Throttles.defaults(code_requests_per_address=3).code_request_account
    keyed = [("code_request:account:ada@example.com", policy)]
    count = fresh()
    for _ in range(3):
        count = throttles.take(keyed, {keyed[0][0]: count}, NOW)[keyed[0][0]]
    assert count.locked_until == NOW + timedelta(hours=1)
    with pytest.raises(domain.Throttled) as refused:
        throttles.take(keyed, {keyed[0][0]: count}, NOW + timedelta(seconds=1))
    assert refused.value.seconds_left == 3599


def test_the_pool_refuses_beyond_workers_plus_queue() -> None:
    pool = BoundedPool(workers=1, queue=1)
    release = threading.Event()
    try:
        first = pool.submit(release.wait, 5)
        second = pool.submit(release.wait, 5)
        with pytest.raises(domain.Busy):
            pool.submit(release.wait, 5)
        assert pool.refused_total == 1
        release.set()
        first.result(5)
        second.result(5)
        pool.submit(lambda: None).result(5)  # room again once they finished
    finally:
        release.set()
        pool.shutdown()
    assert pool.in_flight == 0


def context(metadata: tuple[tuple[str, str], ...], peer: str) -> Any:
    return SimpleNamespace(invocation_metadata=lambda: metadata, peer=lambda: peer)


@pytest.mark.parametrize(
    ("metadata", "peer", "expected"),
    [
        (((CLIENT_ADDRESS_KEY, "203.0.113.9"),), "ipv4:127.0.0.1:5000", "203.0.113.9"),
        (((CLIENT_ADDRESS_KEY, "2001:db8::1"),), "ipv4:127.0.0.1:5000", "2001:db8::1"),
        (((CLIENT_ADDRESS_KEY, "not an address"),), "ipv4:10.1.2.3:5000", "10.1.2.3"),
        ((), "ipv6:[::1]:5000", "::1"),
        ((), "ipv4:10.1.2.3:41000", "10.1.2.3"),
    ],
)
def test_the_client_address_is_the_gateways_word_or_the_peer(
    metadata: tuple[tuple[str, str], ...], peer: str, expected: str
) -> None:
    assert client_address(context(metadata, peer)) == expected


def test_common_and_short_passwords_are_refused_and_long_unicode_ones_accepted() -> None:
    common = frozenset({"correcthorse1"})
    with pytest.raises(domain.InvalidInput, match="too common"):
        domain.validate_password("CorrectHorse1", min_length=12, common=common)
    with pytest.raises(domain.InvalidInput, match="at least 12"):
        domain.validate_password("short", min_length=12)
    with pytest.raises(domain.InvalidInput, match="at most 128"):
        domain.validate_password("ab" * 65, min_length=12)
    assert domain.validate_password("ünïcødé 🔑 phrase", min_length=12)
