"""ocrmesh.platform.metrics: names and labels that follow Prometheus's conventions (bounded label
values, `_total`, `_seconds`), labels on every metric (multiprocess mode needs them), and
bounded token failure reasons. tests/integration/kernel/test_metrics_processes.py runs
several processes."""

from __future__ import annotations

import re

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

import auth_svc.metrics
import gateway.metrics
import notifier.metrics
import ocr_svc.metrics
import ocrmesh.platform.metrics
import ocrmesh.rules.email_events.metrics
import ocrmesh.rules.tokens.metrics
from ocrmesh.rules.tokens import InvalidToken, KeysUnavailable, TokenFailure
from ocrmesh.rules.tokens.metrics import count_token_failure, token_failure_label

OUR_MODULES = (
    ocrmesh.platform.metrics,
    ocrmesh.rules.email_events.metrics,
    ocrmesh.rules.tokens.metrics,
    auth_svc.metrics,
    ocr_svc.metrics,
    gateway.metrics,
    notifier.metrics,
)
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


def test_token_failure_reasons_are_the_small_fixed_set_the_docs_list() -> None:
    labels = {token_failure_label(InvalidToken(kind, "any sentence")) for kind in TokenFailure}
    labels.add(token_failure_label(KeysUnavailable("no keys")))

    assert labels == {
        "missing",
        "malformed",
        "algorithm",
        "unknown_key",
        "expired",
        "signature",
        "audience",
        "issuer",
        "missing_claim",
        "revoked",
        "other",
        "keys_unavailable",
    }


def test_a_refused_token_is_counted_by_its_kind_never_by_its_message() -> None:
    def counted(reason: str) -> float:
        return REGISTRY.get_sample_value("token_verification_failures_total", {"reason": reason}) or 0.0

    expired, unavailable = counted("expired"), counted("keys_unavailable")

    count_token_failure(InvalidToken(TokenFailure.EXPIRED, "token of ada@example.com expired"))
    count_token_failure(KeysUnavailable("cannot fetch token verification keys from auth_svc"))

    assert counted("expired") == expired + 1
    assert counted("keys_unavailable") == unavailable + 1
