"""The metric of token verification: refused tokens, by why (docs/observability.md).

The label values are `TokenFailure`'s values plus "keys_unavailable" (no verdict: the keys
could not be fetched), a small fixed set that alert rules and dashboards read.
"""

from __future__ import annotations

from prometheus_client import Counter

from ocrmesh.rules.tokens.errors import InvalidToken, KeysUnavailable

KEYS_UNAVAILABLE_REASON = "keys_unavailable"

TOKEN_VERIFICATION_FAILURES = Counter(
    "token_verification_failures_total",
    "Bearer tokens refused, by reason (keys_unavailable: no verdict, the keys could not be fetched).",
    ["reason"],
)


def token_failure_label(error: InvalidToken | KeysUnavailable) -> str:
    """The `reason` label value for a refusal: the token's failure kind, or
    "keys_unavailable"."""
    if isinstance(error, InvalidToken):
        return error.kind.value
    return KEYS_UNAVAILABLE_REASON


def count_token_failure(error: InvalidToken | KeysUnavailable) -> None:
    """Count a refused token (or a verdict that could not be given)."""
    TOKEN_VERIFICATION_FAILURES.labels(token_failure_label(error)).inc()


__all__ = [
    "KEYS_UNAVAILABLE_REASON",
    "TOKEN_VERIFICATION_FAILURES",
    "count_token_failure",
    "token_failure_label",
]
