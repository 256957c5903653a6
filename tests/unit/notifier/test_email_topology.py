"""The email topology: names, queue arguments, delays."""

from __future__ import annotations

import pytest

from ocrmesh.rules.email_events import DEFAULT_EMAIL_QUEUE, DEFAULT_MAX_LENGTH, EmailTopology
from ocrmesh.rules.email_events.topology import DELIVERY_LIMIT, parse_delays, topology_mismatch


def test_default_names_match_the_contract() -> None:
    topology = EmailTopology()
    assert topology.queue == DEFAULT_EMAIL_QUEUE == "email_notification"
    assert topology.dead == "email_notification.dead"
    assert topology.retry_queues == (
        "email_notification.retry.5s",
        "email_notification.retry.30s",
        "email_notification.retry.120s",
        "email_notification.retry.600s",
    )


def test_delay_queues_expire_back_into_the_work_queue() -> None:
    topology = EmailTopology(queue="q", retry_delays=(0.25, 2))
    args = topology.queue_arguments()
    assert list(args) == ["q.dead", "q.retry.250ms", "q.retry.2s", "q"]
    assert args["q.retry.250ms"] == {
        "x-queue-type": "quorum",
        "x-message-ttl": 250,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": "q",
        # An expired message reaches the work queue even while that one is full.
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }
    # A message rejected without requeue still lands somewhere: the parking queue.
    assert args["q"]["x-dead-letter-routing-key"] == "q.dead"
    assert args["q.dead"] == {"x-queue-type": "quorum"}  # no limit: parked mail stays


def test_the_work_queue_is_a_bounded_quorum_queue_that_nacks_when_full() -> None:
    args = EmailTopology(queue="q", max_length=50).queue_arguments()["q"]
    assert args["x-queue-type"] == "quorum"
    assert args["x-max-length"] == 50
    assert args["x-overflow"] == "reject-publish"
    assert args["x-delivery-limit"] == DELIVERY_LIMIT
    assert args["x-dead-letter-strategy"] == "at-least-once"
    assert EmailTopology().max_length == DEFAULT_MAX_LENGTH


def test_a_zero_length_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="length limit"):
        EmailTopology(max_length=0)


def test_attempts_past_the_last_delay_reuse_it() -> None:
    topology = EmailTopology(retry_delays=(1, 10))
    assert [topology.delay_for_attempt(n) for n in (1, 2, 3, 9)] == [1, 10, 10, 10]


def test_equal_delays_share_one_queue() -> None:
    assert EmailTopology(queue="q", retry_delays=(5, 5, 60)).retry_queues == ("q.retry.5s", "q.retry.60s")


def test_from_prefix_gives_unique_names() -> None:
    assert EmailTopology.from_prefix("t_1").queue == "t_1.email_notification"


def test_from_env_reads_the_queue_name_and_delays(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMAIL_QUEUE", "custom")
    monkeypatch.setenv("EMAIL_RETRY_DELAYS", "1, 2.5")
    monkeypatch.setenv("EMAIL_QUEUE_MAX_LENGTH", "7")
    assert EmailTopology.from_env() == EmailTopology(queue="custom", retry_delays=(1.0, 2.5), max_length=7)


@pytest.mark.parametrize("text", ["", "a,b", "0", "-1,5", "100000"])
def test_bad_delays_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"delays|could not convert"):
        parse_delays(text)


def test_an_empty_queue_name_is_refused() -> None:
    with pytest.raises(ValueError, match="queue name"):
        EmailTopology(queue="")


def test_a_classic_queue_left_by_an_older_version_is_explained_with_the_migration() -> None:
    reply = (
        "PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue 'email_notification' "
        "in vhost '/': received the value 'quorum' of type 'longstr' but current is none"
    )
    message = str(topology_mismatch("email_notification", reply))
    assert "classic queue" in message
    assert "Migrating from classic queues" in message
    other = str(topology_mismatch("q", "PRECONDITION_FAILED - inequivalent arg 'durable'"))
    assert "delete it" in other
