"""Tokens refused before their `exp`: what auth_svc revoked, as a verifier fetches and caches it.

auth_svc answers `AuthService.GetRevocations` with the ids of revoked tokens (logout) and
each user's current session epoch (log out everywhere, password change). A verifier keeps
that list for `revocation_max_age` seconds and refreshes it in the background following
`SingleFlightRefresher`'s rules, so every token, remembered or not, is checked against it
with no call per request. A failed fetch fails open on the last known list: auth_svc being
down must not log everyone out.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import grpc

from ocrmesh.auth.v1 import auth_pb2
from ocrmesh.rules.tokens.errors import InvalidToken, TokenFailure
from ocrmesh.rules.tokens.issue import TokenClaims
from ocrmesh.rules.tokens.refresh import SingleFlightRefresher


@dataclass(frozen=True)
class Revocations:
    """What a verifier must refuse before `exp`: revoked token ids (logout) and each user's
    current session epoch (log out everywhere, password change: tokens with a lower `sep`)."""

    token_ids: frozenset[str] = frozenset()
    epochs: Mapping[str, int] = field(default_factory=dict)

    def revoked(self, claims: TokenClaims) -> bool:
        """Whether the token these claims came from is revoked."""
        return claims.token_id in self.token_ids or claims.session_epoch < self.epochs.get(claims.user_id, 0)


RevocationFetcher = Callable[[], Awaitable[Revocations]]


def revocations_from_reply(reply: auth_pb2.GetRevocationsResponse) -> Revocations:
    """The `Revocations` in a `GetRevocations` reply."""
    return Revocations(
        token_ids=frozenset(reply.token_ids), epochs={e.user_id: int(e.epoch) for e in reply.epochs}
    )


def stub_revocation_fetcher(stub: Any, timeout: float) -> RevocationFetcher:
    """A `RevocationFetcher` calling `GetRevocations` on an `AuthServiceStub` with `timeout`."""

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


class RevocationCache:
    """The last fetched `Revocations`, refreshed when older than `max_age` seconds."""

    def __init__(
        self, fetch: RevocationFetcher, *, max_age: float, fetch_timeout: float, stale_wait: float
    ) -> None:
        self._refresher = SingleFlightRefresher(
            fetch,
            Revocations(),
            what="revocations",
            max_age=max_age,
            fetch_timeout=fetch_timeout,
            stale_wait=stale_wait,
        )

    async def check(self, claims: TokenClaims) -> None:
        """Raise `InvalidToken` (revoked) when the token of `claims` is revoked.

        Never fetched (or forgotten): waits for one bounded fetch. Stale: waits only for the
        first moments of the refresh, then answers from the cached list. A failed fetch
        leaves the last known list in place.
        """
        await self._refresher.refresh_if_stale(time.monotonic())
        if self._refresher.value.revoked(claims):
            raise InvalidToken(TokenFailure.REVOKED, "token revoked")

    def forget(self) -> None:
        """Make the next check fetch the revocations (and wait for them)."""
        self._refresher.expire()


__all__ = [
    "RevocationCache",
    "RevocationFetcher",
    "Revocations",
    "revocations_from_reply",
    "stub_revocation_fetcher",
]
