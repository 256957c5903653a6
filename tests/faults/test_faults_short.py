"""The faults that take under a minute each, against the targets of issue 27, on a mesh of
processes under steady traffic (the long forms: `make faults`, docs/reliability.md). The
PostgreSQL restart and the RabbitMQ stop act on this machine's real servers and always give
them back before the test ends."""

from __future__ import annotations

import pytest

from harness.faults.dependencies import postgres_cluster, rabbitmqctl_available
from harness.faults.scenarios import (
    FaultContext,
    FaultResult,
    auth_worker_killed,
    notifier_killed_mid_batch,
    ocr_worker_killed_mid_stream,
    postgres_restarted,
    rabbitmq_down,
    smtp_down,
)
from harness.faults.suite import report

pytestmark = pytest.mark.e2e


def _passed(result: FaultResult) -> None:
    assert result.passed, report([result], title=result.name)


def test_a_killed_auth_worker_costs_no_more_than_5_percent_of_calls_and_is_replaced(
    faults: FaultContext,
) -> None:
    _passed(auth_worker_killed(faults))


def test_an_ocr_stream_whose_only_worker_dies_ends_with_an_error_and_ocr_answers_again(
    faults: FaultContext,
) -> None:
    _passed(ocr_worker_killed_mid_stream(faults))


def test_a_notifier_killed_mid_batch_leaves_no_mail_behind_after_its_replacement(
    faults: FaultContext,
) -> None:
    _passed(notifier_killed_mid_batch(faults))


def test_registrations_during_an_smtp_outage_are_each_mailed_once_after_it(faults: FaultContext) -> None:
    _passed(smtp_down(faults))


@pytest.mark.skipif(not rabbitmqctl_available(), reason="needs rabbitmqctl for this machine's RabbitMQ")
def test_registrations_during_a_broker_outage_are_each_mailed_once_after_it(faults: FaultContext) -> None:
    _passed(rabbitmq_down(faults))


@pytest.mark.skipif(postgres_cluster() is None, reason="needs the local PostgreSQL cluster (pg_ctlcluster)")
def test_auth_answers_within_10_s_of_a_postgres_restart_without_restarting_a_service(
    faults: FaultContext,
) -> None:
    _passed(postgres_restarted(faults))
