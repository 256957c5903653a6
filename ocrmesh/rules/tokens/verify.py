"""Verifying access tokens: `TokenVerifier`, the tokens it remembers, and reading the
claims of a token and the bearer token of a call.

Typical use in a servicer::

    verifier = TokenVerifier.from_channel(auth_channel, issuer=..., audience=...)
    claims = await verifier.authenticate(context)  # aborts UNAUTHENTICATED / UNAVAILABLE
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, NoReturn

import grpc
import jwt
from grpc import aio

from ocrmesh.auth.v1 import auth_pb2_grpc
from ocrmesh.platform.metadata import AUTHORIZATION
from ocrmesh.rules.tokens.errors import InvalidToken, KeysUnavailable, TokenFailure
from ocrmesh.rules.tokens.issue import (
    DEFAULT_TOKEN_AUDIENCE,
    DEFAULT_TOKEN_ISSUER,
    REQUIRED_CLAIMS,
    SESSION_EPOCH_CLAIM,
    TOKEN_ALGORITHM,
    TokenClaims,
)
from ocrmesh.rules.tokens.keys import KeyCache, KeyFetcher, stub_key_fetcher
from ocrmesh.rules.tokens.metrics import count_token_failure
from ocrmesh.rules.tokens.revocations import RevocationCache, RevocationFetcher, stub_revocation_fetcher

# A bearer token longer than this is not one of ours (ours are ~400 bytes); refuse before parsing.
MAX_TOKEN_LENGTH = 8 * 1024


class TokenVerifier:
    """Verifies access tokens against the public keys auth_svc publishes.

    `fetch_keys` is an async callable returning the published keys, an `AuthServiceStub`,
    or a `grpc.aio.Channel` to auth_svc. Keys are cached by `kid`; an unknown `kid` causes
    a refetch at most once per `min_refetch_interval` seconds, and the whole set is
    refreshed when older than `max_key_age` (so a key auth_svc has retired stops being
    accepted). Tokens that passed every check are remembered by their exact text until
    they expire (at most `cache_size` of them, least recently used out), so a client
    that sends the same token on every request pays the signature check once; a
    remembered token is accepted only while its key is cached.

    Key refreshes are single-flight and never make requests queue: when the keys are
    stale one refresh starts and requests wait for it at most `stale_wait` seconds from its
    start (a healthy auth_svc answers well within that), then carry on with the cached keys
    while it runs; a token naming an unknown key waits for at most one bounded fetch.

    Revocations (logout, log out everywhere, password change) come from auth_svc's
    `GetRevocations`, cached for `revocation_max_age` seconds and refreshed in the
    background the same way: every token, remembered or not, is checked against them with
    no call per request. Safe to share between all tasks of one event loop.
    """

    def __init__(
        self,
        fetch_keys: KeyFetcher | Any,
        *,
        issuer: str = DEFAULT_TOKEN_ISSUER,
        audience: str = DEFAULT_TOKEN_AUDIENCE,
        min_refetch_interval: float = 30.0,
        max_key_age: float = 300.0,
        leeway_seconds: float = 5.0,
        fetch_timeout: float = 3.0,
        cache_size: int = 4096,
        stale_wait: float = 0.25,
        revocations: RevocationFetcher | None = None,
        revocation_max_age: float = 2.0,
    ) -> None:
        if isinstance(fetch_keys, aio.Channel):
            fetch_keys = auth_pb2_grpc.AuthServiceStub(fetch_keys)
        if hasattr(fetch_keys, "GetPublicKeys"):
            if revocations is None and hasattr(fetch_keys, "GetRevocations"):
                revocations = stub_revocation_fetcher(fetch_keys, fetch_timeout)
            fetch_keys = stub_key_fetcher(fetch_keys, fetch_timeout)
        if not callable(fetch_keys):
            raise TypeError("fetch_keys must be an async callable, an AuthServiceStub or a grpc.aio.Channel")
        self.issuer = issuer
        self.audience = audience
        self.leeway_seconds = leeway_seconds
        self._keys = KeyCache(
            fetch_keys,
            min_refetch_interval=min_refetch_interval,
            max_key_age=max_key_age,
            fetch_timeout=fetch_timeout,
            stale_wait=stale_wait,
        )
        self._verified = VerifiedTokens(cache_size)
        self._revocations = (
            None
            if revocations is None
            else RevocationCache(
                revocations, max_age=revocation_max_age, fetch_timeout=fetch_timeout, stale_wait=stale_wait
            )
        )

    @classmethod
    def from_channel(
        cls,
        channel: aio.Channel,
        *,
        issuer: str = DEFAULT_TOKEN_ISSUER,
        audience: str = DEFAULT_TOKEN_AUDIENCE,
        **options: Any,
    ) -> TokenVerifier:
        """A verifier that fetches keys with `AuthService.GetPublicKeys` over `channel`."""
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        return cls(stub, issuer=issuer, audience=audience, **options)

    @property
    def known_key_ids(self) -> frozenset[str]:
        """The key ids currently cached."""
        return self._keys.known_key_ids

    async def refresh(self) -> None:
        """Fetch the published keys now (joining a refresh in flight). Raises `KeysUnavailable`."""
        await self._keys.refresh()

    def forget_revocations(self) -> None:
        """Make the next check fetch revocations (auth_svc calls it after revoking)."""
        if self._revocations is not None:
            self._revocations.forget()

    async def verify(self, token: str) -> TokenClaims:
        """Verify `token` and return its claims.

        Raises `InvalidToken` for anything wrong with the token (malformed, wrong algorithm,
        unknown key after a refetch, bad signature, expired, wrong issuer or audience,
        missing claims, revoked) and `KeysUnavailable` when the keys cannot be fetched.
        """
        try:
            return await self._verify(token)
        except (InvalidToken, KeysUnavailable) as exc:
            count_token_failure(exc)
            raise

    async def _verify(self, token: str) -> TokenClaims:
        if not token or len(token) > MAX_TOKEN_LENGTH:
            raise InvalidToken(TokenFailure.MALFORMED, "malformed token")
        if self._keys.fresh(time.monotonic()):
            remembered = self._verified.get(token, time.time())
            if remembered is not None and remembered.key_id in self._keys:
                await self._check_revoked(remembered)
                return remembered
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken(TokenFailure.MALFORMED, "malformed token") from None
        if header.get("alg") != TOKEN_ALGORITHM:
            raise InvalidToken(TokenFailure.ALGORITHM, "token algorithm not accepted")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken(TokenFailure.MALFORMED, "token has no key id")
        key = await self._keys.key_for(kid)
        try:
            payload = jwt.decode(
                token,
                key,
                algorithms=[TOKEN_ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_seconds,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken(TokenFailure.EXPIRED, "token expired") from None
        except jwt.InvalidSignatureError:
            raise InvalidToken(TokenFailure.SIGNATURE, "token signature invalid") from None
        except jwt.InvalidAudienceError:
            raise InvalidToken(TokenFailure.AUDIENCE, "token audience not accepted") from None
        except jwt.InvalidIssuerError:
            raise InvalidToken(TokenFailure.ISSUER, "token issuer not accepted") from None
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidToken(TokenFailure.MISSING_CLAIM, f"token lacks the {exc.claim!r} claim") from None
        except jwt.PyJWTError:
            raise InvalidToken(TokenFailure.MALFORMED, "malformed token") from None
        claims = claims_from_payload(payload, kid)
        self._verified.put(token, claims)
        await self._check_revoked(claims)
        return claims

    async def _check_revoked(self, claims: TokenClaims) -> None:
        if self._revocations is not None:
            await self._revocations.check(claims)

    async def authenticate(self, context: aio.ServicerContext[Any, Any]) -> TokenClaims:
        """The claims of the bearer token in the call's metadata.

        Aborts the call with UNAUTHENTICATED when the token is missing or invalid, and with
        UNAVAILABLE when the keys cannot be fetched (so the caller may retry).
        """
        try:
            token = bearer_token_from_metadata(context.invocation_metadata() or ())
            return await self.verify(token)
        except InvalidToken as exc:
            await _abort(context, grpc.StatusCode.UNAUTHENTICATED, exc.reason)
        except KeysUnavailable:
            await _abort(context, grpc.StatusCode.UNAVAILABLE, "cannot verify tokens right now, retry")


class VerifiedTokens:
    """Tokens that passed every check, by their exact text, each until its `exp`.

    Bounded: beyond `max_entries` the least recently used one goes, so a flood of distinct
    (valid) tokens costs their signature checks but never grows memory. Only verified
    tokens enter; a bad token is checked in full every time it is sent.
    """

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        # token -> (exp as epoch seconds, claims)
        self._entries: OrderedDict[str, tuple[float, TokenClaims]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, token: str, now: float) -> TokenClaims | None:
        """The claims of `token` if it was verified and has not expired at `now` (epoch s)."""
        entry = self._entries.get(token)
        if entry is None:
            return None
        if now >= entry[0]:
            del self._entries[token]
            return None
        self._entries.move_to_end(token)
        return entry[1]

    def put(self, token: str, claims: TokenClaims) -> None:
        """Remember `token` (verified, with these claims) until its `exp`."""
        if self.max_entries <= 0:
            return
        self._entries[token] = (claims.expires_at.timestamp(), claims)
        self._entries.move_to_end(token)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)


async def _abort(context: aio.ServicerContext[Any, Any], code: grpc.StatusCode, message: str) -> NoReturn:
    await context.abort(code, message)
    raise AssertionError("context.abort returned")  # pragma: no cover: abort always raises


def claims_from_payload(payload: Mapping[str, Any], kid: str) -> TokenClaims:
    """The `TokenClaims` of a decoded (signature-checked) token signed with key `kid`.

    Raises `InvalidToken` (malformed) when a claim has the wrong type: a token can be
    signed correctly and still not be one we issued in this shape.
    """
    fields = {name: payload.get(name) for name in ("sub", "email", "name", "jti", "iss", "aud")}
    for name, value in fields.items():
        if not isinstance(value, str) or not value:
            raise InvalidToken(TokenFailure.MALFORMED, f"token claim {name!r} is not a non-empty string")
    epoch = payload.get(SESSION_EPOCH_CLAIM, 0)
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
        raise InvalidToken(TokenFailure.MALFORMED, "token claim 'sep' is not a session epoch")
    iat, exp = payload.get("iat"), payload.get("exp")
    if not isinstance(iat, int | float) or not isinstance(exp, int | float):
        raise InvalidToken(TokenFailure.MALFORMED, "token times are not numbers")
    return TokenClaims(
        user_id=str(fields["sub"]),
        email=str(fields["email"]),
        name=str(fields["name"]),
        issued_at=datetime.fromtimestamp(iat, UTC),
        expires_at=datetime.fromtimestamp(exp, UTC),
        token_id=str(fields["jti"]),
        issuer=str(fields["iss"]),
        audience=str(fields["aud"]),
        key_id=kid,
        session_epoch=epoch,
    )


def bearer_token_from_metadata(metadata: Iterable[tuple[str, str | bytes]]) -> str:
    """The token of the single `authorization: Bearer <token>` entry in gRPC call metadata.

    Raises `InvalidToken` when there is none, more than one, another scheme, or a token
    that cannot be one of ours (empty, whitespace inside, too long).
    """
    values = [value for key, value in metadata if key.lower() == AUTHORIZATION]
    if not values:
        raise InvalidToken(TokenFailure.MISSING, "missing bearer token")
    if len(values) > 1:
        raise InvalidToken(TokenFailure.MALFORMED, "more than one authorization header")
    value = values[0]
    if isinstance(value, bytes):
        value = value.decode("ascii", errors="replace")
    scheme, _, token = value.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise InvalidToken(TokenFailure.MALFORMED, "authorization must be 'Bearer <token>'")
    # split() finds any whitespace at C speed (a per-character check cost ~0.2 ms a call).
    if len(token) > MAX_TOKEN_LENGTH or len(token.split()) != 1:
        raise InvalidToken(TokenFailure.MALFORMED, "malformed token")
    return token


__all__ = [
    "MAX_TOKEN_LENGTH",
    "TokenVerifier",
    "VerifiedTokens",
    "bearer_token_from_metadata",
    "claims_from_payload",
]
