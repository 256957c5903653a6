"""Issue 15, the verifier: key refresh single-flight and non-blocking (a stuck auth_svc does
not stall verification with cached keys), and revocations applied to remembered tokens."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence

import pytest

from harness.tokens import TokenIssuerForTests
from ocrmesh.auth.v1 import auth_pb2
from ocrmesh.rules.tokens import InvalidToken, KeysUnavailable, PublicKeyLike, Revocations, TokenVerifier


@pytest.fixture
async def issuer() -> AsyncIterator[TokenIssuerForTests]:
    async with TokenIssuerForTests() as running:
        yield running


class StuckAfterFirst:
    """Answers the first key fetch, then hangs like an auth_svc that accepts and never replies."""

    def __init__(self, issuer: TokenIssuerForTests) -> None:
        self.issuer = issuer
        self.calls = 0
        self.release = asyncio.Event()

    async def __call__(self) -> Sequence[PublicKeyLike]:
        self.calls += 1
        if self.calls > 1:
            await self.release.wait()
        return self.issuer.public_keys()


async def test_a_stuck_auth_svc_does_not_stall_verification_with_cached_keys(
    issuer: TokenIssuerForTests,
) -> None:
    fetch = StuckAfterFirst(issuer)
    verifier = TokenVerifier(
        fetch,
        issuer=issuer.issuer,
        audience=issuer.audience,
        max_key_age=0,
        fetch_timeout=5.0,
        stale_wait=0.1,
    )
    await verifier.verify(issuer.mint())
    await asyncio.sleep(0.01)  # the keys are stale now

    started = time.perf_counter()
    claims = await asyncio.gather(*(verifier.verify(issuer.mint()) for _ in range(100)))
    first_batch = time.perf_counter() - started
    started = time.perf_counter()
    await asyncio.gather(*(verifier.verify(issuer.mint()) for _ in range(100)))
    second_batch = time.perf_counter() - started

    assert len(claims) == 100
    # One refresh in flight for all of them (single-flight), waited for at most stale_wait
    # (0.1 s) and not at all once it has run that long; never N x the fetch timeout.
    assert fetch.calls == 2
    assert first_batch < 1.0, first_batch
    assert second_batch < 0.5, second_batch
    fetch.release.set()


async def test_an_unknown_kid_waits_for_at_most_one_bounded_fetch(issuer: TokenIssuerForTests) -> None:
    fetch = StuckAfterFirst(issuer)
    verifier = TokenVerifier(
        fetch, issuer=issuer.issuer, audience=issuer.audience, min_refetch_interval=0, fetch_timeout=0.3
    )
    await verifier.verify(issuer.mint())

    started = time.perf_counter()
    results = await asyncio.gather(
        *(verifier.verify(issuer.mint_with_unknown_kid()) for _ in range(20)), return_exceptions=True
    )

    assert time.perf_counter() - started < 1.0
    assert all(isinstance(r, KeysUnavailable) for r in results), results
    assert fetch.calls == 2
    fetch.release.set()


async def test_revocations_apply_to_remembered_tokens(issuer: TokenIssuerForTests) -> None:
    revoked: set[str] = set()
    epochs: dict[str, int] = {}

    async def keys() -> Sequence[PublicKeyLike]:
        return issuer.public_keys()

    async def revocations() -> Revocations:
        return Revocations(token_ids=frozenset(revoked), epochs=dict(epochs))

    verifier = TokenVerifier(
        keys, issuer=issuer.issuer, audience=issuer.audience, revocations=revocations, revocation_max_age=0
    )
    logged_out, old_session, new_session = (
        issuer.mint(jti="one"),
        issuer.mint(user_id="user-2", jti="two"),
        issuer.mint(user_id="user-2", jti="three", sep=1),
    )
    for token in (logged_out, old_session, new_session):
        await verifier.verify(token)  # now remembered

    revoked.add("one")
    epochs["user-2"] = 1

    with pytest.raises(InvalidToken, match="revoked"):
        await verifier.verify(logged_out)
    with pytest.raises(InvalidToken, match="revoked"):
        await verifier.verify(old_session)
    assert (await verifier.verify(new_session)).session_epoch == 1


async def test_a_verifier_of_an_auth_svc_without_revocations_revokes_nothing(
    issuer: TokenIssuerForTests,
) -> None:
    from ocrmesh.platform.grpc_client import create_channel

    channel = create_channel(issuer.target)
    try:
        verifier = TokenVerifier.from_channel(channel, issuer=issuer.issuer, audience=issuer.audience)
        assert (await verifier.verify(issuer.mint())).user_id
    finally:
        await channel.close()
    assert auth_pb2.GetRevocationsResponse().token_ids == []
