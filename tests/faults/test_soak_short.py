"""Two minutes of the soak run (the long form: `make soak DURATION=30m`): no 5xx, no mail
lost or doubled, and no service's memory growing grossly. Two minutes of samples cannot
resolve the long form's 1 MiB/min bound from allocator steps, so this form's bound is 5."""

from __future__ import annotations

import pytest

from harness.faults.soak import run_soak, soak_report
from harness.faults.suite import FaultRig

pytestmark = pytest.mark.e2e

SHORT_SOAK_MAX_SLOPE = 5.0


def test_two_minutes_of_traffic_bring_no_5xx_no_lost_mail_and_no_gross_memory_growth(rig: FaultRig) -> None:
    result = run_soak(rig, duration_s=120, interval_s=10, warmup_s=40, max_slope=SHORT_SOAK_MAX_SLOPE)
    assert result.passed, soak_report(result, title="short soak")
