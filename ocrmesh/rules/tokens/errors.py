"""What a verifier raises when it refuses a token or cannot give a verdict.

`InvalidToken.kind` names the check that failed, from a fixed set: it is what the metrics
count (`token_verification_failures_total{reason}`) and what code may branch on, while
`InvalidToken.reason` is the human sentence returned to the caller.
"""

from __future__ import annotations

from enum import StrEnum


class TokenFailure(StrEnum):
    """Why a token was refused. The values are metric label values: keep them stable."""

    # No bearer token in the call at all.
    MISSING = "missing"
    # Not a token of ours: bad metadata, unparsable, no key id, claims of the wrong type.
    MALFORMED = "malformed"
    # Signed with another algorithm than the one we pin (`alg: none`, HS256 forgeries).
    ALGORITHM = "algorithm"
    # Names a key auth_svc does not publish (even after a refetch).
    UNKNOWN_KEY = "unknown_key"
    EXPIRED = "expired"
    SIGNATURE = "signature"
    AUDIENCE = "audience"
    ISSUER = "issuer"
    # One of the claims every token carries is absent.
    MISSING_CLAIM = "missing_claim"
    # Logged out, logged out everywhere, or issued before a password change.
    REVOKED = "revoked"
    # A refusal none of the above describes (part of the documented label set).
    OTHER = "other"


class TokenError(Exception):
    """Base of the errors a verifier raises."""


class InvalidToken(TokenError):
    """The token is missing, malformed, expired, forged or not meant for us.

    `kind` says which check failed; `reason` is safe to return to the caller (it names the
    check that failed, never key material).
    """

    def __init__(self, kind: TokenFailure, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


class KeysUnavailable(TokenError):
    """The verification keys could not be fetched from auth_svc, so no verdict is possible."""


__all__ = ["InvalidToken", "KeysUnavailable", "TokenError", "TokenFailure"]
