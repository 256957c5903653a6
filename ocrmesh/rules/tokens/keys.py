"""The public keys auth_svc publishes (`AuthService.GetPublicKeys`): reading them, and the
cache a verifier looks a token's key up in.

Keys are cached by key id (`kid`). The whole set is refreshed when older than
`max_key_age` (so a key auth_svc has retired stops being accepted); a token naming a key
not in the cache causes a refetch at most once per `min_refetch_interval` (so a flood of
forged `kid`s cannot hammer auth_svc). Refreshes follow `SingleFlightRefresher`'s rules.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Protocol

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from ocrmesh.auth.v1 import auth_pb2
from ocrmesh.rules.tokens.errors import InvalidToken, KeysUnavailable, TokenFailure
from ocrmesh.rules.tokens.issue import TOKEN_ALGORITHM
from ocrmesh.rules.tokens.refresh import SingleFlightRefresher

log = logging.getLogger(__name__)

_UNAVAILABLE = "cannot fetch token verification keys from auth_svc"


class PublicKeyLike(Protocol):
    """What a published key looks like (`ocrmesh.auth.v1.PublicKey` fits)."""

    @property
    def key_id(self) -> str: ...

    @property
    def algorithm(self) -> str: ...

    @property
    def public_key_pem(self) -> str: ...


KeyFetcher = Callable[[], Awaitable[Sequence[PublicKeyLike]]]


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


def stub_key_fetcher(stub: Any, timeout: float) -> KeyFetcher:
    """A `KeyFetcher` calling `GetPublicKeys` on an `AuthServiceStub` with `timeout`."""

    async def fetch() -> Sequence[PublicKeyLike]:
        reply = await stub.GetPublicKeys(auth_pb2.GetPublicKeysRequest(), timeout=timeout)
        return list(reply.keys)

    return fetch


class KeyCache:
    """The published keys by `kid`, fetched with `fetch` and refreshed as the module says."""

    def __init__(
        self,
        fetch: KeyFetcher,
        *,
        min_refetch_interval: float,
        max_key_age: float,
        fetch_timeout: float,
        stale_wait: float,
    ) -> None:
        self._fetch = fetch
        self.min_refetch_interval = min_refetch_interval
        self._refresher: SingleFlightRefresher[dict[str, Ed25519PublicKey]] = SingleFlightRefresher(
            self._fetch_parsed,
            {},
            what="keys",
            max_age=max_key_age,
            fetch_timeout=fetch_timeout,
            stale_wait=stale_wait,
        )

    @property
    def known_key_ids(self) -> frozenset[str]:
        """The key ids currently cached."""
        return frozenset(self._refresher.value)

    def fresh(self, now: float) -> bool:
        """Whether the cached keys are no older than `max_key_age` at `now` (monotonic)."""
        return not self._refresher.stale(now)

    def __contains__(self, kid: object) -> bool:
        return kid in self._refresher.value

    async def refresh(self) -> None:
        """Fetch the published keys now (joining a refresh in flight). Raises `KeysUnavailable`."""
        if not await self._refresher.refresh():
            raise KeysUnavailable(_UNAVAILABLE)

    async def key_for(self, kid: str) -> Ed25519PublicKey:
        """The key `kid`, fetching the keys first when they are stale or do not have it.

        Raises `InvalidToken` (unknown key) when a successful fetch does not have it, and
        `KeysUnavailable` when there is no answer to go by: the last fetch failed, or the
        one in flight has not answered in time.
        """
        refresher = self._refresher
        now = time.monotonic()
        if kid in refresher.value:
            # Only the first moments of a refresh are waited for; after that the cached
            # (stale) key verifies.
            await refresher.refresh_if_stale(now)
        else:
            fetched_at = refresher.fetched_at
            may_refetch = refresher.stale(now) or (
                fetched_at is not None and now - fetched_at >= self.min_refetch_interval
            )
            # Right after a failed fetch, do not make every call wait for another one.
            if refresher.in_flight or (may_refetch and not refresher.failed_recently(now)):
                await refresher.wait(refresher.start(), refresher.fetch_timeout)
        key = refresher.value.get(kid)
        if key is None:
            if refresher.fetched_at is None or refresher.failing or refresher.in_flight:
                raise KeysUnavailable(_UNAVAILABLE)
            raise InvalidToken(TokenFailure.UNKNOWN_KEY, "token signed with an unknown key")
        return key

    async def _fetch_parsed(self) -> dict[str, Ed25519PublicKey]:
        keys = parse_public_keys(await self._fetch())
        log.info("token keys fetched", extra={"key_ids": sorted(keys)})
        return keys


__all__ = ["KeyCache", "KeyFetcher", "PublicKeyLike", "parse_public_keys", "stub_key_fetcher"]
