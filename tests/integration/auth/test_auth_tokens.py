"""Tokens against a running auth_svc: forgeries refused by GetCurrentUser, key rotation
picked up by a verifier in another service."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auth_svc.keys import generate_key_file, key_id_for, public_pem
from auth_svc.settings import AuthSettings
from harness.tokens import TokenIssuerForTests
from ocrmesh.auth.v1 import auth_pb2
from ocrmesh.platform.grpc_client import bearer_metadata, create_channel
from ocrmesh.rules.tokens import TokenVerifier
from tests.integration.auth.auth_support import Mailbox, RunningAuth, rpc_error

pytestmark = pytest.mark.integration

Mint = Callable[[TokenIssuerForTests, str], str]


def real_issuer(signing_key: Ed25519PrivateKey) -> TokenIssuerForTests:
    """Mints with auth_svc's own signing key, so only the flaw under test is wrong."""
    return TokenIssuerForTests(private_key=signing_key, key_id=key_id_for(signing_key.public_key()))


async def get_current_user(auth: RunningAuth, token: str) -> auth_pb2.GetCurrentUserResponse:
    return await auth.stub.GetCurrentUser(auth_pb2.GetCurrentUserRequest(), metadata=bearer_metadata(token))


@pytest.mark.parametrize(
    "mint",
    [
        lambda i, sub: i.mint_expired(user_id=sub),
        lambda i, sub: i.mint_forged(user_id=sub),
        lambda i, sub: i.mint_alg_none(user_id=sub),
        lambda i, sub: i.mint_hs256_with_public_key(user_id=sub),
        lambda i, sub: i.mint(user_id=sub, aud="somebody-else"),
        lambda i, sub: i.mint(user_id=sub, iss="somebody-else"),
        lambda i, sub: i.mint_with_unknown_kid(user_id=sub),
    ],
    ids=[
        "expired",
        "wrong-signature",
        "alg-none",
        "hs256-public-key",
        "wrong-audience",
        "wrong-issuer",
        "unknown-kid",
    ],
)
async def test_get_current_user_refuses_bad_tokens(
    auth: RunningAuth, mailbox: Mailbox, email: str, signing_key: Ed25519PrivateKey, mint: Mint
) -> None:
    user = await auth.register_verified(mailbox, email)
    issuer = real_issuer(signing_key)
    # Control: the same issuer's well-formed token for this user is accepted.
    assert (await get_current_user(auth, issuer.mint(user_id=user.id))).user.id == user.id

    error = await rpc_error(lambda: get_current_user(auth, mint(issuer, user.id)))

    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_token_of_a_deleted_user_is_unauthenticated(
    auth: RunningAuth, signing_key: Ed25519PrivateKey
) -> None:
    token = real_issuer(signing_key).mint(user_id="00000000-0000-4000-8000-00000000dead")

    error = await rpc_error(lambda: get_current_user(auth, token))

    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_key_rotation_new_tokens_accepted_after_the_verifier_refreshes(
    auth_settings: AuthSettings, mailbox: Mailbox, email: str, signing_key_file: Path, tmp_path: Path
) -> None:
    # Before: auth_svc signs with the old key; another service's verifier has cached it.
    before = await RunningAuth.start(auth_settings)
    try:
        await before.register_verified(mailbox, email)
        old_token = await before.login(email)
        port = before.port
        verifier_channel = create_channel(f"127.0.0.1:{port}")
        verifier = TokenVerifier.from_channel(verifier_channel, min_refetch_interval=0)
        old_claims = await verifier.verify(old_token)
    finally:
        await before.stop()

    # Rotation: a new signing key; the old one stays published for the tokens still out there.
    new_key = generate_key_file(tmp_path / "new.pem")
    rotated = auth_settings.model_copy(
        update={
            "auth_signing_key_file": tmp_path / "new.pem",
            "auth_extra_public_key_files": (signing_key_file,),
            "auth_port": port,
        }
    )
    after = await RunningAuth.start(rotated)
    try:
        keys = await after.stub.GetPublicKeys(auth_pb2.GetPublicKeysRequest())
        new_token = await after.login(email)
        # The verifier's channel reconnects by itself (round robin fails calls fast while its
        # one address is in reconnect backoff, up to 2 s); the rotation is what is tested here.
        await asyncio.wait_for(verifier_channel.channel_ready(), timeout=10)

        new_claims = await verifier.verify(new_token)

        assert {k.key_id for k in keys.keys} == {old_claims.key_id, new_claims.key_id}
        assert new_claims.key_id == key_id_for(new_key.public_key()) != old_claims.key_id
        assert public_pem(new_key.public_key()) in {k.public_key_pem for k in keys.keys}
        assert (await verifier.verify(old_token)).user_id == new_claims.user_id
        assert (await get_current_user(after, old_token)).user.email == email
    finally:
        await verifier_channel.close()
        await after.stop()
