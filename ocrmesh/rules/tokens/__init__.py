"""Access tokens: what they carry, and their verification by every service that accepts one.

auth_svc signs JWTs with an Ed25519 key only it holds and publishes the public halves over
`AuthService.GetPublicKeys`. A `TokenVerifier` fetches those keys, caches them by key id
(`kid`), refetches when a token names a key it does not know (rate-limited, so a flood of
forged `kid`s cannot hammer auth_svc), pins the algorithm to EdDSA, checks `exp`, `iss`
and `aud`, and refuses what auth_svc revoked.

Modules, bottom up:

- `errors`: `TokenError`, `InvalidToken` (with its `TokenFailure` kind), `KeysUnavailable`;
- `issue`: what every token carries (claims, defaults, the algorithm) and new claims;
- `refresh`: the single-flight, stale-tolerant, backing-off refresh both caches use;
- `keys`: the published keys and their cache; `revocations`: the revocations and theirs;
- `metrics`: `token_verification_failures_total{reason}`;
- `verify`: `TokenVerifier`, `VerifiedTokens`, reading claims and bearer metadata;
- `interceptor`: `BearerTokenInterceptor`, refusing calls before their request is parsed.

The public names are re-exported here: `from ocrmesh.rules.tokens import TokenVerifier`.
"""

from __future__ import annotations

from ocrmesh.rules.tokens.errors import InvalidToken, KeysUnavailable, TokenError, TokenFailure
from ocrmesh.rules.tokens.interceptor import BearerTokenInterceptor
from ocrmesh.rules.tokens.issue import (
    DEFAULT_TOKEN_AUDIENCE,
    DEFAULT_TOKEN_ISSUER,
    REQUIRED_CLAIMS,
    TOKEN_ALGORITHM,
    TokenClaims,
    new_token_claims,
)
from ocrmesh.rules.tokens.keys import KeyFetcher, PublicKeyLike, parse_public_keys
from ocrmesh.rules.tokens.metrics import count_token_failure
from ocrmesh.rules.tokens.revocations import RevocationFetcher, Revocations, revocations_from_reply
from ocrmesh.rules.tokens.verify import (
    MAX_TOKEN_LENGTH,
    TokenVerifier,
    VerifiedTokens,
    bearer_token_from_metadata,
)

__all__ = [
    "DEFAULT_TOKEN_AUDIENCE",
    "DEFAULT_TOKEN_ISSUER",
    "MAX_TOKEN_LENGTH",
    "REQUIRED_CLAIMS",
    "TOKEN_ALGORITHM",
    "BearerTokenInterceptor",
    "InvalidToken",
    "KeyFetcher",
    "KeysUnavailable",
    "PublicKeyLike",
    "RevocationFetcher",
    "Revocations",
    "TokenClaims",
    "TokenError",
    "TokenFailure",
    "TokenVerifier",
    "VerifiedTokens",
    "bearer_token_from_metadata",
    "count_token_failure",
    "new_token_claims",
    "parse_public_keys",
    "revocations_from_reply",
]
