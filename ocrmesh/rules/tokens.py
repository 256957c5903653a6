"""Access-token verification for every service that accepts a bearer token.

auth_svc signs JWTs with an Ed25519 key only it holds and publishes the public halves over
`AuthService.GetPublicKeys`. A `TokenVerifier` fetches those keys, caches them by key id
(`kid`), refetches when a token names a key it does not know (rate-limited, so a flood of
forged `kid`s cannot hammer auth_svc), pins the algorithm to EdDSA and checks `exp`, `iss`
and `aud`.

Typical use in a servicer::

    verifier = TokenVerifier.from_channel(auth_channel, issuer=..., audience=...)
    claims = await verifier.authenticate(context)  # aborts UNAUTHENTICATED / UNAVAILABLE
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NoReturn, Protocol

import grpc
import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from grpc import aio

from ocrmesh.auth.v1 import auth_pb2, auth_pb2_grpc
from ocrmesh.platform.metadata import AUTHORIZATION
from ocrmesh.platform.metrics import count_token_failure

log = logging.getLogger(__name__)

DEFAULT_TOKEN_ISSUER = "ocrmesh-auth"  # noqa: S105 (a name, not a secret)
DEFAULT_TOKEN_AUDIENCE = "ocrmesh"  # noqa: S105
# The one algorithm tokens may use. Never taken from the token itself: that is how `alg: none`
# and "HS256 keyed with the public key" forgeries get in.
TOKEN_ALGORITHM = "EdDSA"  # noqa: S105
# A bearer token longer than this is not one of ours (ours are ~400 bytes); refuse before parsing.
MAX_TOKEN_LENGTH = 8 * 1024
# Claims every token of ours carries; a token without one of them is refused.
# After a failed key fetch, calls needing a fetch fail fast for this long instead of each
# waiting for its own deadline against an auth_svc that is down.
_FAILED_FETCH_BACKOFF_S = 1.0
REQUIRED_CLAIMS = ("sub", "email", "name", "iat", "exp", "iss", "aud", "jti")


class TokenError(Exception):
    """Base of the errors a verifier raises."""


class InvalidToken(TokenError):
    """The token is missing, malformed, expired, forged or not meant for us. `reason` is
    safe to return to the caller (it names the check that failed, never key material)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class KeysUnavailable(TokenError):
    """The verification keys could not be fetched from auth_svc, so no verdict is possible."""


class PublicKeyLike(Protocol):
    """What a published key looks like (`ocrmesh.auth.v1.PublicKey` fits)."""

    @property
    def key_id(self) -> str: ...

    @property
    def algorithm(self) -> str: ...

    @property
    def public_key_pem(self) -> str: ...


KeyFetcher = Callable[[], Awaitable[Sequence[PublicKeyLike]]]


@dataclass(frozen=True)
class Revocations:
    """What a verifier must refuse before `exp`: revoked token ids (logout) and each user's
    current session epoch (log out everywhere, password change: tokens with a lower `sep`)."""

    token_ids: frozenset[str] = frozenset()
    epochs: Mapping[str, int] = field(default_factory=dict)

    def revoked(self, claims: TokenClaims) -> bool:
        return claims.token_id in self.token_ids or claims.session_epoch < self.epochs.get(claims.user_id, 0)


RevocationFetcher = Callable[[], Awaitable[Revocations]]


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


def parse_public_keys(keys: Iterable[PublicKeyLike]) -> dict[str, Ed25519PublicKey]:
    """Turn published keys into `{kid: key}`, skipping (with a warning) any key that is not
    an EdDSA/Ed25519 public key in PEM: a verifier never accepts another algorithm."""
    parsed: dict[str, Ed25519PublicKey] = {}
    for key in keys:
        if key.algorithm != TOKEN_ALGORITHM or not key.key_id:
            log.warning("ignoring published key", extra={"key_id": key.key_id, "algorithm": key.algorithm})
            continue
        try:
            public = load_pem_public_key(key.public_key_pem.encode())
        except (ValueError, UnsupportedAlgorithm):
            log.warning("ignoring unreadable published key", extra={"key_id": key.key_id})
            continue
        if not isinstance(public, Ed25519PublicKey):
            log.warning("ignoring non-Ed25519 published key", extra={"key_id": key.key_id})
            continue
        parsed[key.key_id] = public
    return parsed


def _stub_fetcher(stub: Any, timeout: float) -> KeyFetcher:
    async def fetch() -> Sequence[PublicKeyLike]:
        reply = await stub.GetPublicKeys(auth_pb2.GetPublicKeysRequest(), timeout=timeout)
        return list(reply.keys)

    return fetch


def revocations_from_reply(reply: auth_pb2.GetRevocationsResponse) -> Revocations:
    return Revocations(
        token_ids=frozenset(reply.token_ids), epochs={e.user_id: int(e.epoch) for e in reply.epochs}
    )


def _stub_revocations(stub: Any, timeout: float) -> RevocationFetcher:
    async def fetch() -> Revocations:
        try:
            reply = await stub.GetRevocations(auth_pb2.GetRevocationsRequest(), timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            # An auth_svc from before revocations (or a test double): nothing is revoked.
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                return Revocations()
            raise
        return revocations_from_reply(reply)

    return fetch


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
                revocations = _stub_revocations(fetch_keys, fetch_timeout)
            fetch_keys = _stub_fetcher(fetch_keys, fetch_timeout)
        if not callable(fetch_keys):
            raise TypeError("fetch_keys must be an async callable, an AuthServiceStub or a grpc.aio.Channel")
        self._fetch_keys: KeyFetcher = fetch_keys
        self.issuer = issuer
        self.audience = audience
        self.min_refetch_interval = min_refetch_interval
        self.max_key_age = max_key_age
        self.leeway_seconds = leeway_seconds
        self._keys: dict[str, Ed25519PublicKey] = {}
        # monotonic time of the last successful fetch; None until the first one.
        self._fetched_at: float | None = None
        # monotonic time of the last failed fetch, while no fetch has succeeded since.
        self._failed_at: float | None = None
        self.fetch_timeout = fetch_timeout
        self.stale_wait = stale_wait
        # The one key refresh in flight (single-flight), and when it started.
        self._refreshing: asyncio.Task[KeysUnavailable | None] | None = None
        self._refresh_started = 0.0
        self._verified = VerifiedTokens(cache_size)
        self._fetch_revocations = revocations
        self.revocation_max_age = revocation_max_age
        self._revocations = Revocations()
        self._revocations_at: float | None = None
        self._revocations_failed_at: float | None = None
        self._revocations_task: asyncio.Task[None] | None = None
        self._revocations_started = 0.0

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
        return frozenset(self._keys)

    async def refresh(self) -> None:
        """Fetch the published keys now (joining a refresh in flight). Raises `KeysUnavailable`."""
        error = await asyncio.shield(self._start_refresh())
        if error is not None:
            raise error

    def _start_refresh(self) -> asyncio.Task[KeysUnavailable | None]:
        task = self._refreshing
        if task is None or task.done():
            self._refresh_started = time.monotonic()
            task = self._refreshing = asyncio.get_running_loop().create_task(self._fetch_once())
        return task

    async def _fetch_once(self) -> KeysUnavailable | None:
        try:
            # Bounded here too: a custom fetcher against a hung auth_svc may never return.
            published = await asyncio.wait_for(self._fetch_keys(), self.fetch_timeout)
        except Exception as exc:
            # Whatever went wrong (auth_svc down, deadline, a broken custom fetcher), the caller
            # can only be told that no verdict is possible right now.
            code = exc.code() if isinstance(exc, grpc.Call) else None
            log.warning(
                "cannot fetch token keys",
                extra={"error": type(exc).__name__, "code": getattr(code, "name", None)},
            )
            self._failed_at = time.monotonic()
            return KeysUnavailable("cannot fetch token verification keys from auth_svc")
        self._keys = parse_public_keys(published)
        self._fetched_at = time.monotonic()
        self._failed_at = None
        log.info("token keys fetched", extra={"key_ids": sorted(self._keys)})
        return None

    async def _await_refresh(self, task: asyncio.Task[KeysUnavailable | None], at_most: float) -> None:
        if at_most <= 0 or task.done():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), at_most)

    async def _key_for(self, kid: str) -> Ed25519PublicKey:
        now = time.monotonic()
        fetched_at = self._fetched_at
        stale = fetched_at is None or now - fetched_at > self.max_key_age
        # Right after a failed fetch, do not make every call wait for another one.
        failed_recently = self._failed_at is not None and now - self._failed_at < _FAILED_FETCH_BACKOFF_S
        in_flight = self._refreshing is not None and not self._refreshing.done()
        if kid in self._keys:
            if stale and (in_flight or not failed_recently):
                task = self._start_refresh()
                # Only the first moments of a refresh are waited for; after that the cached
                # (stale) key verifies: better than refusing everyone while auth_svc restarts.
                await self._await_refresh(task, self._refresh_started + self.stale_wait - now)
        else:
            may_refetch = stale or fetched_at is None or now - fetched_at >= self.min_refetch_interval
            if in_flight or (may_refetch and not failed_recently):
                await self._await_refresh(self._start_refresh(), self.fetch_timeout)
        key = self._keys.get(kid)
        if key is None:
            # Without the key there is no verdict to give when the last fetch failed or the
            # one in flight has not answered in time.
            unanswered = self._refreshing is not None and not self._refreshing.done()
            if self._fetched_at is None or self._failed_at is not None or unanswered:
                raise KeysUnavailable("cannot fetch token verification keys from auth_svc")
            raise InvalidToken("token signed with an unknown key")
        return key

    async def _check_revoked(self, claims: TokenClaims) -> None:
        if self._fetch_revocations is None:
            return
        now = time.monotonic()
        if self._revocations_at is None or now - self._revocations_at > self.revocation_max_age:
            failed_recently = (
                self._revocations_failed_at is not None
                and now - self._revocations_failed_at < _FAILED_FETCH_BACKOFF_S
            )
            task = self._revocations_task
            if (task is None or task.done()) and not failed_recently:
                self._revocations_started = now
                task = self._revocations_task = asyncio.get_running_loop().create_task(
                    self._fetch_revocations_once()
                )
            if task is not None and not task.done():
                # Never fetched: wait for one bounded fetch. Stale: wait only for the first
                # moments of the refresh (like the keys), then answer from the cached list.
                if self._revocations_at is None:
                    at_most = self.fetch_timeout
                else:
                    at_most = self._revocations_started + self.stale_wait - now
                if at_most > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(asyncio.shield(task), at_most)
        if self._revocations.revoked(claims):
            raise InvalidToken("token revoked")

    async def _fetch_revocations_once(self) -> None:
        assert self._fetch_revocations is not None
        try:
            self._revocations = await asyncio.wait_for(self._fetch_revocations(), self.fetch_timeout)
        except Exception as exc:
            # Fail open on the last known list: auth_svc being down must not log everyone out.
            log.warning("cannot fetch token revocations", extra={"error": type(exc).__name__})
            self._revocations_failed_at = time.monotonic()
            return
        self._revocations_at = time.monotonic()
        self._revocations_failed_at = None

    def forget_revocations(self) -> None:
        """Make the next check fetch revocations (auth_svc calls it after revoking)."""
        self._revocations_at = None

    async def verify(self, token: str) -> TokenClaims:
        """Verify `token` and return its claims.

        Raises `InvalidToken` for anything wrong with the token (malformed, wrong algorithm,
        unknown key after a refetch, bad signature, expired, wrong issuer or audience,
        missing claims) and `KeysUnavailable` when the keys cannot be fetched.
        """
        try:
            return await self._verify(token)
        except InvalidToken as exc:
            count_token_failure(exc.reason)
            raise
        except KeysUnavailable:
            count_token_failure(None)
            raise

    async def _verify(self, token: str) -> TokenClaims:
        if not token or len(token) > MAX_TOKEN_LENGTH:
            raise InvalidToken("malformed token")
        fetched_at = self._fetched_at
        if fetched_at is not None and time.monotonic() - fetched_at <= self.max_key_age:
            remembered = self._verified.get(token, time.time())
            if remembered is not None and remembered.key_id in self._keys:
                await self._check_revoked(remembered)
                return remembered
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken("malformed token") from None
        if header.get("alg") != TOKEN_ALGORITHM:
            raise InvalidToken("token algorithm not accepted")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("token has no key id")
        key = await self._key_for(kid)
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
            raise InvalidToken("token expired") from None
        except jwt.InvalidSignatureError:
            raise InvalidToken("token signature invalid") from None
        except jwt.InvalidAudienceError:
            raise InvalidToken("token audience not accepted") from None
        except jwt.InvalidIssuerError:
            raise InvalidToken("token issuer not accepted") from None
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidToken(f"token lacks the {exc.claim!r} claim") from None
        except jwt.PyJWTError:
            raise InvalidToken("malformed token") from None
        claims = _claims(payload, kid)
        self._verified.put(token, claims)
        await self._check_revoked(claims)
        return claims

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
        if self.max_entries <= 0:
            return
        self._entries[token] = (claims.expires_at.timestamp(), claims)
        self._entries.move_to_end(token)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)


async def _abort(context: aio.ServicerContext[Any, Any], code: grpc.StatusCode, message: str) -> NoReturn:
    await context.abort(code, message)
    raise AssertionError("context.abort returned")  # pragma: no cover: abort always raises


def _claims(payload: Mapping[str, Any], kid: str) -> TokenClaims:
    fields = {name: payload.get(name) for name in ("sub", "email", "name", "jti", "iss", "aud")}
    for name, value in fields.items():
        if not isinstance(value, str) or not value:
            raise InvalidToken(f"token claim {name!r} is not a non-empty string")
    epoch = payload.get("sep", 0)
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
        raise InvalidToken("token claim 'sep' is not a session epoch")
    iat, exp = payload.get("iat"), payload.get("exp")
    if not isinstance(iat, int | float) or not isinstance(exp, int | float):
        raise InvalidToken("token times are not numbers")
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
        raise InvalidToken("missing bearer token")
    if len(values) > 1:
        raise InvalidToken("more than one authorization header")
    value = values[0]
    if isinstance(value, bytes):
        value = value.decode("ascii", errors="replace")
    scheme, _, token = value.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise InvalidToken("authorization must be 'Bearer <token>'")
    # split() finds any whitespace at C speed (a per-character check cost ~0.2 ms a call).
    if len(token) > MAX_TOKEN_LENGTH or len(token.split()) != 1:
        raise InvalidToken("malformed token")
    return token


__all__ = [
    "DEFAULT_TOKEN_AUDIENCE",
    "DEFAULT_TOKEN_ISSUER",
    "TOKEN_ALGORITHM",
    "InvalidToken",
    "KeyFetcher",
    "KeysUnavailable",
    "PublicKeyLike",
    "RevocationFetcher",
    "Revocations",
    "TokenClaims",
    "TokenError",
    "TokenVerifier",
    "VerifiedTokens",
    "bearer_token_from_metadata",
    "parse_public_keys",
]
