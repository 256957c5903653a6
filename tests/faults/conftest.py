"""The fault suite's short forms: a mesh of processes with its own SMTP server and traffic,
shared by the faults of one module (starting it costs about half a minute)."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from harness.faults.scenarios import FaultContext, FaultPlan
from harness.faults.suite import FaultRig, fault_rig, stop_cleanly_on_sigterm


@pytest.fixture(scope="module")
def rig(
    tmp_path_factory: pytest.TempPathFactory, postgres_admin_url: str, rabbitmq_url: str
) -> Iterator[FaultRig]:
    workdir = tmp_path_factory.mktemp("faults")
    # A SIGTERM to the test run must still give PostgreSQL and RabbitMQ back.
    previous = signal.getsignal(signal.SIGTERM)
    stop_cleanly_on_sigterm()
    try:
        with fault_rig(workdir, postgres_admin_url=postgres_admin_url, rabbitmq_url=rabbitmq_url) as running:
            yield running
    finally:
        signal.signal(signal.SIGTERM, previous)


@pytest.fixture(scope="module")
def faults(rig: FaultRig) -> FaultContext:
    """One context for the module's faults, so duplicates are counted once across them."""
    return rig.context(FaultPlan.short())
