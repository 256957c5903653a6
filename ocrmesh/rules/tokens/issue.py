"""What every access token of ours carries, written once for the side that issues tokens
(auth_svc) and the side that verifies them (every service).

A token is a JWT signed with EdDSA (Ed25519) whose header names the signing key (`kid`)
and whose claims are:

| claim | meaning |
| --- | --- |
| `sub` | the user's id |
| `email`, `name` | the user's email address and name when the token was issued |
| `iat`, `exp` | issued at, expires at (epoch seconds) |
| `iss`, `aud` | who issued it (auth_svc) and for whom (the mesh) |
| `jti` | the token's own id (what a logout revokes) |
| `sep` | the user's session epoch: raising it revokes every token issued before (optional, 0) |
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

DEFAULT_TOKEN_ISSUER = "ocrmesh-auth"  # noqa: S105 (a name, not a secret)
DEFAULT_TOKEN_AUDIENCE = "ocrmesh"  # noqa: S105
# The one algorithm tokens may use. Never taken from the token itself: that is how `alg: none`
# and "HS256 keyed with the public key" forgeries get in.
TOKEN_ALGORITHM = "EdDSA"  # noqa: S105
# Claims every token of ours carries; a token without one of them is refused.
REQUIRED_CLAIMS = ("sub", "email", "name", "iat", "exp", "iss", "aud", "jti")
# Tokens from before session epochs carry no `sep`: they are epoch 0.
SESSION_EPOCH_CLAIM = "sep"


@dataclass(frozen=True)
class TokenClaims:
    """The verified contents of an access token."""

    user_id: str
    email: str
    name: str
    issued_at: datetime
    expires_at: datetime
    token_id: str
    issuer: str
    audience: str
    key_id: str
    # The issuing user's session epoch (`sep`); tokens from before a "log out everywhere"
    # or a password change carry a lower one. Tokens without the claim are epoch 0.
    session_epoch: int = 0


def new_token_claims(
    *,
    user_id: str,
    email: str,
    name: str,
    issuer: str,
    audience: str,
    issued_at: int,
    ttl_seconds: int,
    session_epoch: int = 0,
) -> dict[str, Any]:
    """The claims of a new token for this user, valid `ttl_seconds` from `issued_at` (epoch
    seconds), with a fresh random token id."""
    return {
        "sub": user_id,
        "email": email,
        "name": name,
        "iat": issued_at,
        "exp": issued_at + ttl_seconds,
        "iss": issuer,
        "aud": audience,
        "jti": uuid.uuid4().hex,
        # The user's session epoch: raising it revokes every token issued before.
        SESSION_EPOCH_CLAIM: session_epoch,
    }


__all__ = [
    "DEFAULT_TOKEN_AUDIENCE",
    "DEFAULT_TOKEN_ISSUER",
    "REQUIRED_CLAIMS",
    "SESSION_EPOCH_CLAIM",
    "TOKEN_ALGORITHM",
    "TokenClaims",
    "new_token_claims",
]
