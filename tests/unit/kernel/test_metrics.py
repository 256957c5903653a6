"""ocrmesh.platform.metrics: names and labels that follow Prometheus's conventions (bounded label
values, `_total`, `_seconds`), labels on every metric (multiprocess mode needs them), and
bounded token failure reasons. tests/integration/kernel/test_metrics_processes.py runs
several processes."""

from __future__ import annotations

import re

import pytest
from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

import auth_svc.metrics
import gateway.metrics
import notifier.metrics
import ocr_svc.metrics
import ocrmesh.platform.metrics
from ocrmesh.platform.metrics import token_failure_reason

OUR_MODULES = (ocrmesh.platform.metrics, auth_svc.metrics, ocr_svc.metrics, gateway.metrics, notifier.metrics)
# Labels whose values we choose from a fixed set (or the registered methods and routes).
ALLOWED_LABELS = {
    "grpc_service",
    "grpc_method",
    "grpc_code",
    "reason",
    "outcome",
    "reply",
    "event_type",
    "state",
    "kind",
    "engine",
    "phase",
    "method",
    "route",
    "status",
    "transport",
    "result",
}


def our_metrics() -> list[MetricWrapperBase]:
    found = [
        value
        for module in OUR_MODULES
        for value in vars(module).values()
        if isinstance(value, MetricWrapperBase)
    ]
    assert len(found) >= 15
    return found


def test_every_metric_has_labels_so_forked_workers_create_their_values_after_the_switch() -> None:
    # An unlabelled metric gets its value when it is defined (at import, in the supervisor,
    # before multiprocess mode is switched on): a forked worker's increments would be lost.
    for metric in our_metrics():
        assert metric._labelnames, f"{metric._name} has no labels"


def test_names_follow_prometheus_conventions_and_labels_are_bounded() -> None:
    for metric in our_metrics():
        name = metric._name
        assert re.fullmatch(r"[a-z][a-z0-9_]*", name), name
        assert set(metric._labelnames) <= ALLOWED_LABELS, (name, metric._labelnames)
        if isinstance(metric, Counter):
            # prometheus-client adds `_total` in the exposition.
            assert not name.endswith("_total"), name
        if isinstance(metric, Histogram) and "seconds" in metric._documentation.lower():
            assert name.endswith("_seconds"), name
        if isinstance(metric, Gauge):
            assert metric._multiprocess_mode in {"livesum", "livemax"}, name
        assert metric._documentation


def test_every_metric_is_registered_once_in_the_default_registry() -> None:
    registered = {name for name in REGISTRY._names_to_collectors}
    for metric in our_metrics():
        assert metric._name in registered or f"{metric._name}_total" in registered


@pytest.mark.parametrize(
    ("reason", "label"),
    [
        ("malformed token", "malformed"),
        ("token algorithm not accepted", "algorithm"),
        ("token has no key id", "malformed"),
        ("token signed with an unknown key", "unknown_key"),
        ("token expired", "expired"),
        ("token signature invalid", "signature"),
        ("token audience not accepted", "audience"),
        ("token issuer not accepted", "issuer"),
        ("token lacks the 'sub' claim", "missing_claim"),
        ("token claim 'sep' is not a session epoch", "malformed"),
        ("token revoked", "revoked"),
        ("missing bearer token", "missing"),
        (None, "keys_unavailable"),
        ("something new for ada@example.com", "other"),
    ],
)
def test_token_failure_reasons_map_to_a_small_fixed_set(reason: str | None, label: str) -> None:
    assert token_failure_reason(reason) == label
