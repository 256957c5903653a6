"""TokenVerifier against real Ed25519 tokens and a real in-process GetPublicKeys server."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import jwt
import pytest

from harness.tokens import TokenIssuerForTests
from ocrmesh.auth.v1 import auth_pb2
from ocrmesh.platform.grpc_client import create_channel
from ocrmesh.rules.tokens import (
    InvalidToken,
    KeysUnavailable,
    PublicKeyLike,
    TokenClaims,
    TokenFailure,
    TokenVerifier,
    VerifiedTokens,
    bearer_token_from_metadata,
)


@pytest.fixture
async def issuer() -> AsyncIterator[TokenIssuerForTests]:
    async with TokenIssuerForTests() as running:
        yield running


@pytest.fixture
async def channel(issuer: TokenIssuerForTests) -> AsyncIterator[grpc.aio.Channel]:
    chan = create_channel(issuer.target)
    yield chan
    await chan.close()


def make_verifier(channel: grpc.aio.Channel, issuer: TokenIssuerForTests, **options: Any) -> TokenVerifier:
    return TokenVerifier.from_channel(channel, issuer=issuer.issuer, audience=issuer.audience, **options)


async def test_valid_token_yields_its_claims(issuer: TokenIssuerForTests, channel: grpc.aio.Channel) -> None:
    verifier = make_verifier(channel, issuer)
    token = issuer.mint(user_id="u-42", email="ada@example.com", name="Ada")

    claims = await verifier.verify(token)

    assert (claims.user_id, claims.email, claims.name) == ("u-42", "ada@example.com", "Ada")
    assert claims.key_id == issuer.current_key_id
    assert claims.expires_at > claims.issued_at
    assert claims.token_id


@pytest.mark.parametrize(
    ("mint", "reason", "kind"),
    [
        (lambda i: i.mint_expired(), "expired", TokenFailure.EXPIRED),
        (lambda i: i.mint_forged(), "signature", TokenFailure.SIGNATURE),
        (lambda i: i.mint_alg_none(), "algorithm", TokenFailure.ALGORITHM),
        (lambda i: i.mint_hs256_with_public_key(), "algorithm", TokenFailure.ALGORITHM),
        (lambda i: i.mint(aud="another-service"), "audience", TokenFailure.AUDIENCE),
        (lambda i: i.mint(iss="someone-else"), "issuer", TokenFailure.ISSUER),
        (lambda i: i.mint_with_unknown_kid(), "unknown key", TokenFailure.UNKNOWN_KEY),
        (lambda i: i.mint(headers={"kid": ""}), "key id", TokenFailure.MALFORMED),
        (lambda i: i.mint(email=None), "email", TokenFailure.MISSING_CLAIM),
        (lambda i: i.mint(email=7), "email", TokenFailure.MALFORMED),
        (lambda i: i.mint(sep=-1), "sep", TokenFailure.MALFORMED),
        (lambda i: "not.a.token", "malformed", TokenFailure.MALFORMED),
        (lambda i: "x" * 10_000, "malformed", TokenFailure.MALFORMED),
    ],
    ids=[
        "expired",
        "forged-signature",
        "alg-none",
        "hs256-with-public-key",
        "wrong-audience",
        "wrong-issuer",
        "unknown-kid",
        "empty-kid",
        "missing-email",
        "email-not-a-string",
        "negative-session-epoch",
        "garbage",
        "oversized",
    ],
)
async def test_bad_tokens_are_refused_with_a_reason_and_a_kind(
    issuer: TokenIssuerForTests, channel: grpc.aio.Channel, mint: Any, reason: str, kind: TokenFailure
) -> None:
    verifier = make_verifier(channel, issuer)

    with pytest.raises(InvalidToken) as refused:
        await verifier.verify(mint(issuer))

    assert reason in refused.value.reason
    assert refused.value.kind is kind


async def test_unknown_kid_refetches_at_most_once_per_interval(
    issuer: TokenIssuerForTests, channel: grpc.aio.Channel
) -> None:
    verifier = make_verifier(channel, issuer, min_refetch_interval=60)
    await verifier.verify(issuer.mint())
    calls_after_first = issuer.get_public_keys_calls

    for _ in range(5):
        with pytest.raises(InvalidToken):
            await verifier.verify(issuer.mint_with_unknown_kid())

    assert calls_after_first == 1
    assert issuer.get_public_keys_calls == 1


async def test_token_from_a_rotated_in_key_is_accepted_after_refetch(
    issuer: TokenIssuerForTests, channel: grpc.aio.Channel
) -> None:
    verifier = make_verifier(channel, issuer, min_refetch_interval=0)
    old_token = issuer.mint()
    await verifier.verify(old_token)

    new_kid = issuer.rotate()
    claims = await verifier.verify(issuer.mint())

    assert claims.key_id == new_kid
    assert issuer.get_public_keys_calls == 2
    # During the rotation both keys are published, so older tokens stay valid.
    assert (await verifier.verify(old_token)).key_id != new_kid


async def test_retired_key_stops_verifying_once_the_cache_ages_out(
    issuer: TokenIssuerForTests, channel: grpc.aio.Channel
) -> None:
    verifier = make_verifier(channel, issuer, max_key_age=0)
    old_kid = issuer.current_key_id
    old_token = issuer.mint()
    await verifier.verify(old_token)

    issuer.rotate()
    issuer.retire(old_kid)

    with pytest.raises(InvalidToken, match="unknown key"):
        await verifier.verify(old_token)


async def test_unreachable_auth_service_means_keys_unavailable(issuer: TokenIssuerForTests) -> None:
    channel = create_channel("127.0.0.1:1", unary_timeout=1.0)
    try:
        verifier = make_verifier(channel, issuer)
        with pytest.raises(KeysUnavailable):
            await verifier.verify(issuer.mint())
    finally:
        await channel.close()


async def test_known_keys_keep_working_while_auth_service_is_down(
    issuer: TokenIssuerForTests, channel: grpc.aio.Channel
) -> None:
    verifier = make_verifier(channel, issuer, max_key_age=0)
    await verifier.verify(issuer.mint())

    issuer.unavailable = True

    assert (await verifier.verify(issuer.mint())).user_id
    with pytest.raises(KeysUnavailable):
        await verifier.verify(issuer.mint_with_unknown_kid())


async def test_plain_async_fetcher_is_accepted() -> None:
    issuer = TokenIssuerForTests()

    async def fetch() -> Sequence[PublicKeyLike]:
        return issuer.public_keys()

    verifier = TokenVerifier(fetch, issuer=issuer.issuer, audience=issuer.audience)

    assert (await verifier.verify(issuer.mint(name="Grace"))).name == "Grace"


async def test_keys_with_another_algorithm_are_never_used() -> None:
    issuer = TokenIssuerForTests()

    async def fetch() -> Sequence[PublicKeyLike]:
        return [
            auth_pb2.PublicKey(key_id=k.key_id, algorithm="RS256", public_key_pem=k.public_key_pem)
            for k in issuer.public_keys()
        ]

    verifier = TokenVerifier(fetch, issuer=issuer.issuer, audience=issuer.audience)

    with pytest.raises(InvalidToken, match="unknown key"):
        await verifier.verify(issuer.mint())


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ([("authorization", "Bearer abc.def.ghi")], "abc.def.ghi"),
        ([("authorization", "bearer   abc.def.ghi  ")], "abc.def.ghi"),
        ([("x-request-id", "r1"), ("authorization", b"Bearer t.o.k")], "t.o.k"),
    ],
)
def test_bearer_token_is_read_from_metadata(metadata: list[tuple[str, Any]], expected: str) -> None:
    assert bearer_token_from_metadata(metadata) == expected


@pytest.mark.parametrize(
    ("metadata", "kind"),
    [
        ([], TokenFailure.MISSING),
        ([("authorization", "Basic dXNlcjpwdw==")], TokenFailure.MALFORMED),
        ([("authorization", "Bearer")], TokenFailure.MALFORMED),
        ([("authorization", "Bearer a b")], TokenFailure.MALFORMED),
        ([("authorization", "Bearer a"), ("authorization", "Bearer b")], TokenFailure.MALFORMED),
        ([("authorization", "Bearer " + "x" * 9000)], TokenFailure.MALFORMED),
    ],
    ids=["missing", "basic-scheme", "empty", "space-inside", "twice", "oversized"],
)
def test_bad_authorization_metadata_is_refused(metadata: list[tuple[str, str]], kind: TokenFailure) -> None:
    with pytest.raises(InvalidToken) as refused:
        bearer_token_from_metadata(metadata)

    assert refused.value.kind is kind


class _AbortingContext:
    def __init__(self, metadata: list[tuple[str, str]]) -> None:
        self.metadata = metadata
        self.aborted: tuple[grpc.StatusCode, str] | None = None

    def invocation_metadata(self) -> list[tuple[str, str]]:
        return self.metadata

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.aborted = (code, details)
        raise grpc.aio.AbortError()


async def test_authenticate_aborts_unauthenticated_for_a_bad_token(
    issuer: TokenIssuerForTests, channel: grpc.aio.Channel
) -> None:
    verifier = make_verifier(channel, issuer)
    context = _AbortingContext([("authorization", f"Bearer {issuer.mint_expired()}")])

    with pytest.raises(grpc.aio.AbortError):
        await verifier.authenticate(context)  # type: ignore[arg-type]

    assert context.aborted == (grpc.StatusCode.UNAUTHENTICATED, "token expired")


async def test_authenticate_aborts_unavailable_when_keys_cannot_be_fetched(
    issuer: TokenIssuerForTests,
) -> None:
    issuer.unavailable = True
    channel = create_channel(issuer.target)
    try:
        verifier = make_verifier(channel, issuer)
        context = _AbortingContext([("authorization", f"Bearer {issuer.mint()}")])
        with pytest.raises(grpc.aio.AbortError):
            await verifier.authenticate(context)  # type: ignore[arg-type]
    finally:
        await channel.close()

    assert context.aborted is not None
    assert context.aborted[0] == grpc.StatusCode.UNAVAILABLE


async def test_authenticate_returns_claims_for_a_good_token(
    issuer: TokenIssuerForTests, channel: grpc.aio.Channel
) -> None:
    verifier = make_verifier(channel, issuer)
    context = _AbortingContext([("authorization", f"Bearer {issuer.mint(user_id='u-7')}")])

    claims = await verifier.authenticate(context)  # type: ignore[arg-type]

    assert claims.user_id == "u-7"
    assert context.aborted is None


async def test_a_verified_token_is_remembered_and_not_checked_again(
    issuer: TokenIssuerForTests, channel: grpc.aio.Channel, monkeypatch: pytest.MonkeyPatch
) -> None:
    verifier = make_verifier(channel, issuer)
    token = issuer.mint()
    first = await verifier.verify(token)
    decodes = 0
    real_decode = jwt.decode

    def counting_decode(*args: Any, **kwargs: Any) -> Any:
        nonlocal decodes
        decodes += 1
        return real_decode(*args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting_decode)

    assert await verifier.verify(token) is first
    assert decodes == 0
    # A different token (even for the same user) is checked in full.
    await verifier.verify(issuer.mint())
    assert decodes == 1


async def test_a_remembered_token_is_refused_once_it_expires(
    issuer: TokenIssuerForTests, channel: grpc.aio.Channel, monkeypatch: pytest.MonkeyPatch
) -> None:
    verifier = make_verifier(channel, issuer, leeway_seconds=0)
    token = issuer.mint()
    claims = await verifier.verify(token)
    later = claims.expires_at.timestamp() + 1
    monkeypatch.setattr("ocrmesh.rules.tokens.verify.time.time", lambda: later)
    monkeypatch.setattr("jwt.api_jwt.datetime", _FrozenDatetime(later))

    with pytest.raises(InvalidToken, match="expired"):
        await verifier.verify(token)


async def test_a_remembered_token_of_a_retired_key_is_refused(
    issuer: TokenIssuerForTests, channel: grpc.aio.Channel
) -> None:
    verifier = make_verifier(channel, issuer, max_key_age=0)
    old_kid = issuer.current_key_id
    token = issuer.mint()
    await verifier.verify(token)

    issuer.rotate()
    issuer.retire(old_kid)

    with pytest.raises(InvalidToken, match="unknown key"):
        await verifier.verify(token)


def test_the_remembered_tokens_stay_bounded() -> None:
    remembered = VerifiedTokens(max_entries=3)
    far = datetime.now(UTC) + timedelta(hours=1)
    for n in range(10):
        remembered.put(f"token-{n}", _claims_until(far, f"user-{n}"))

    assert len(remembered) == 3
    assert remembered.get("token-0", time.time()) is None
    assert remembered.get("token-9", time.time()) is not None


def test_a_cache_of_size_zero_remembers_nothing() -> None:
    remembered = VerifiedTokens(max_entries=0)
    remembered.put("t", _claims_until(datetime.now(UTC) + timedelta(hours=1), "u"))
    assert remembered.get("t", time.time()) is None


def _claims_until(expires_at: datetime, user_id: str) -> TokenClaims:
    return TokenClaims(
        user_id=user_id,
        email="a@example.com",
        name="A",
        issued_at=expires_at - timedelta(hours=1),
        expires_at=expires_at,
        token_id="j",
        issuer="i",
        audience="a",
        key_id="k",
    )


class _FrozenDatetime:
    """Stands in for `datetime` inside PyJWT so its `exp` check sees `now` (epoch seconds)."""

    def __init__(self, now: float) -> None:
        self._now = now

    def now(self, tz: Any = None) -> datetime:
        return datetime.fromtimestamp(self._now, tz or UTC)

    def __getattr__(self, name: str) -> Any:
        return getattr(datetime, name)
