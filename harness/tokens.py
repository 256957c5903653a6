"""Real signed tokens for tests and benchmarks that must not need PostgreSQL or auth_svc itself.

`TokenIssuerForTests` holds a real Ed25519 key, mints tokens the way auth_svc does (and the
bad ones an attacker would try), and serves `AuthService.GetPublicKeys` from a real
in-process gRPC server on port 0, so a `ocrmesh.rules.tokens.TokenVerifier` under test fetches
keys exactly as in production:

    async with TokenIssuerForTests() as issuer:
        channel = create_channel(issuer.target)
        verifier = TokenVerifier.from_channel(channel, issuer=issuer.issuer, audience=issuer.audience)
        token = issuer.mint(user_id="u1", email="a@example.com", name="Ada")
        expired = issuer.mint_expired()
        forged = issuer.mint_forged()
        ...
        issuer.rotate()            # a new signing key; the old one is still published
        issuer.retire("test-key-1")

Every other AuthService method answers UNIMPLEMENTED.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any, NoReturn

import grpc
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ocrmesh.auth.v1 import auth_pb2, auth_pb2_grpc
from ocrmesh.platform.grpc_server import HostedService, MeshServer, create_server
from ocrmesh.rules.tokens import (
    DEFAULT_TOKEN_AUDIENCE,
    DEFAULT_TOKEN_ISSUER,
    TOKEN_ALGORITHM,
    new_token_claims,
)


@dataclass
class _Key:
    key_id: str
    private: Ed25519PrivateKey

    @property
    def public_pem(self) -> str:
        public = self.private.public_key()
        return public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64json(value: dict[str, Any]) -> str:
    return _b64(json.dumps(value, separators=(",", ":")).encode())


Context = grpc.aio.ServicerContext[Any, Any]


async def _unimplemented(context: Context) -> NoReturn:
    await context.abort(grpc.StatusCode.UNIMPLEMENTED, "TokenIssuerForTests serves GetPublicKeys only")
    raise AssertionError("abort returned")


class _PublicKeysServicer(auth_pb2_grpc.AuthServiceServicer):
    def __init__(self, owner: TokenIssuerForTests) -> None:
        self.owner = owner

    async def Register(
        self, request: auth_pb2.RegisterRequest, context: Context
    ) -> auth_pb2.RegisterResponse:
        await _unimplemented(context)

    async def Login(self, request: auth_pb2.LoginRequest, context: Context) -> auth_pb2.LoginResponse:
        await _unimplemented(context)

    async def SendOtp(self, request: auth_pb2.SendOtpRequest, context: Context) -> auth_pb2.SendOtpResponse:
        await _unimplemented(context)

    async def VerifyOtp(
        self, request: auth_pb2.VerifyOtpRequest, context: Context
    ) -> auth_pb2.VerifyOtpResponse:
        await _unimplemented(context)

    async def GetCurrentUser(
        self, request: auth_pb2.GetCurrentUserRequest, context: Context
    ) -> auth_pb2.GetCurrentUserResponse:
        await _unimplemented(context)

    async def GetPublicKeys(
        self, request: auth_pb2.GetPublicKeysRequest, context: Context
    ) -> auth_pb2.GetPublicKeysResponse:
        self.owner.get_public_keys_calls += 1
        if self.owner.unavailable:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "test issuer made unavailable")
        return auth_pb2.GetPublicKeysResponse(
            keys=self.owner.public_keys(), issuer=self.owner.issuer, audience=self.owner.audience
        )


class TokenIssuerForTests:
    """A stand-in for auth_svc's signing side: real keys, real tokens, real gRPC."""

    def __init__(
        self,
        *,
        issuer: str = DEFAULT_TOKEN_ISSUER,
        audience: str = DEFAULT_TOKEN_AUDIENCE,
        key_id: str = "test-key-1",
        private_key: Ed25519PrivateKey | None = None,
    ) -> None:
        """`private_key` (with its `key_id`) lets a test mint with a real service's key."""
        self.issuer = issuer
        self.audience = audience
        self._keys: list[_Key] = [_Key(key_id, private_key or Ed25519PrivateKey.generate())]
        self._rotations = 1
        self.get_public_keys_calls = 0
        # When True, GetPublicKeys answers UNAVAILABLE (auth_svc down, as a verifier sees it).
        self.unavailable = False
        self.port = 0
        self._server: MeshServer | None = None

    # -- keys ----------------------------------------------------------------------------
    @property
    def current_key_id(self) -> str:
        return self._keys[-1].key_id

    def public_keys(self) -> list[auth_pb2.PublicKey]:
        return [
            auth_pb2.PublicKey(key_id=k.key_id, algorithm=TOKEN_ALGORITHM, public_key_pem=k.public_pem)
            for k in self._keys
        ]

    async def fetch_public_keys(self) -> list[auth_pb2.PublicKey]:
        """The published keys, as a `TokenVerifier(issuer.fetch_public_keys)` fetches them when
        no gRPC server is needed (a benchmark measuring the service around the verifier)."""
        return self.public_keys()

    def rotate(self, key_id: str | None = None) -> str:
        """Sign with a new key from now on; the previous keys stay published. Returns its kid."""
        self._rotations += 1
        new = _Key(key_id or f"test-key-{self._rotations}", Ed25519PrivateKey.generate())
        self._keys.append(new)
        return new.key_id

    def retire(self, key_id: str) -> None:
        """Stop publishing `key_id`."""
        self._keys = [k for k in self._keys if k.key_id != key_id]

    # -- tokens --------------------------------------------------------------------------
    def claims(
        self,
        *,
        user_id: str = "00000000-0000-4000-8000-000000000001",
        email: str = "ada@example.com",
        name: str = "Ada Lovelace",
        ttl_seconds: float = 3600,
        issued_at: float | None = None,
        **overrides: Any,
    ) -> dict[str, Any]:
        """The claims auth_svc would put in a token, with any of them overridden."""
        now = int(issued_at if issued_at is not None else time.time())
        claims = new_token_claims(
            user_id=user_id,
            email=email,
            name=name,
            issuer=self.issuer,
            audience=self.audience,
            issued_at=now,
            ttl_seconds=int(ttl_seconds),
        )
        claims.update(overrides)
        return claims

    def mint(self, *, key_id: str | None = None, headers: dict[str, Any] | None = None, **claims: Any) -> str:
        """A valid token signed with the current key (or the published key `key_id`).
        Keyword arguments go to `claims()` (user_id, email, name, ttl_seconds, aud=..., ...)."""
        key = self._key(key_id or self.current_key_id)
        return jwt.encode(
            self.claims(**claims),
            key.private,
            algorithm=TOKEN_ALGORITHM,
            headers={"kid": key.key_id, **(headers or {})},
        )

    def mint_expired(self, **claims: Any) -> str:
        """Signed correctly, but expired ten minutes ago (beyond any clock-skew leeway)."""
        return self.mint(ttl_seconds=600, issued_at=time.time() - 1200, **claims)

    def mint_forged(self, **claims: Any) -> str:
        """Names the current `kid` but is signed by a key nobody published."""
        stranger = Ed25519PrivateKey.generate()
        return jwt.encode(
            self.claims(**claims), stranger, algorithm=TOKEN_ALGORITHM, headers={"kid": self.current_key_id}
        )

    def mint_with_unknown_kid(self, **claims: Any) -> str:
        """Signed by an unpublished key under a `kid` the verifier has never seen."""
        stranger = Ed25519PrivateKey.generate()
        return jwt.encode(
            self.claims(**claims), stranger, algorithm=TOKEN_ALGORITHM, headers={"kid": "no-such-key"}
        )

    def mint_alg_none(self, **claims: Any) -> str:
        """An unsigned token (`alg: none`)."""
        header = {"alg": "none", "typ": "JWT", "kid": self.current_key_id}
        return f"{_b64json(header)}.{_b64json(self.claims(**claims))}."

    def mint_hs256_with_public_key(self, **claims: Any) -> str:
        """HS256 keyed with the published public key PEM: the classic algorithm-confusion forgery."""
        header = {"alg": "HS256", "typ": "JWT", "kid": self.current_key_id}
        signing_input = f"{_b64json(header)}.{_b64json(self.claims(**claims))}"
        secret = self._keys[-1].public_pem.encode()
        signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{_b64(signature)}"

    def _key(self, key_id: str) -> _Key:
        for key in self._keys:
            if key.key_id == key_id:
                return key
        raise KeyError(key_id)

    # -- the gRPC server ------------------------------------------------------------------
    @property
    def target(self) -> str:
        """`host:port` of the running GetPublicKeys server."""
        if self._server is None:
            raise RuntimeError("TokenIssuerForTests is not started")
        return f"127.0.0.1:{self.port}"

    async def start(self) -> TokenIssuerForTests:
        service = HostedService.of(
            _PublicKeysServicer(self),  # type: ignore[abstract]  # serves only the key RPCs
            auth_pb2_grpc.add_AuthServiceServicer_to_server,
            auth_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name,
        )
        self._server, self.port = create_server([service], port=0, host="127.0.0.1")
        await self._server.start()
        return self

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(0)
            self._server = None

    async def __aenter__(self) -> TokenIssuerForTests:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
