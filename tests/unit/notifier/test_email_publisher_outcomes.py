"""What the email publisher makes of each broker outcome: the exception a producer sees (in
words that name the setting to change) and the metrics the dashboards query."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from ocrmesh.platform.amqp import ConfirmOutcome
from ocrmesh.rules.email_events import EmailTopology, PublishError, PublishRejected, TopologyError
from ocrmesh.rules.email_events.publisher import EmailOutcomes


@pytest.fixture
def outcomes() -> EmailOutcomes:
    return EmailOutcomes(EmailTopology(queue="mail.work", max_length=42))


def counted(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_nack_is_a_rejection_that_names_the_queue_and_its_length_setting(outcomes: EmailOutcomes) -> None:
    error = outcomes.nacked("mail.work")
    assert isinstance(error, PublishRejected)
    assert "'mail.work' is full (EMAIL_QUEUE_MAX_LENGTH 42)" in str(error)


def test_a_returned_event_is_a_publish_error_naming_the_missing_queue(outcomes: EmailOutcomes) -> None:
    error = outcomes.unroutable("mail.work")
    assert type(error) is PublishError
    assert str(error) == "unroutable: no queue 'mail.work'"


def test_a_refused_declaration_is_a_topology_error_saying_how_to_migrate(outcomes: EmailOutcomes) -> None:
    error = outcomes.declaration_refused("PRECONDITION_FAILED - inequivalent arg 'x-queue-type'")
    assert isinstance(error, TopologyError)
    assert "'mail.work' exists with other arguments" in str(error)
    assert "Migrating from classic queues" in str(error)


def test_other_failures_are_publish_errors_with_the_reason(outcomes: EmailOutcomes) -> None:
    error = outcomes.error("broker unreachable: ConnectionRefusedError()")
    assert type(error) is PublishError
    assert str(error) == "broker unreachable: ConnectionRefusedError()"


@pytest.mark.parametrize("outcome", ["ack", "nack", "returned"])
def test_each_confirm_is_counted_by_outcome(outcomes: EmailOutcomes, outcome: ConfirmOutcome) -> None:
    before = counted("email_publisher_confirms_total", {"outcome": outcome})
    outcomes.confirmed(outcome)
    assert counted("email_publisher_confirms_total", {"outcome": outcome}) == before + 1


@pytest.mark.parametrize(("reply_code", "label"), [(312, "no_route"), (313, "other"), (None, "other")])
def test_returns_are_counted_by_reply(outcomes: EmailOutcomes, reply_code: int | None, label: str) -> None:
    before = counted("email_publisher_returns_total", {"reply": label})
    outcomes.returned(reply_code)
    assert counted("email_publisher_returns_total", {"reply": label}) == before + 1
