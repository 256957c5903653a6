"""The baseline's configuration, read from the environment like the tutorial's services did."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from ocrmesh.rules.endpoints import DEFAULT_RABBITMQ_URL
from ocrmesh.rules.tokens import DEFAULT_TOKEN_AUDIENCE, DEFAULT_TOKEN_ISSUER, TOKEN_ALGORITHM

# Long enough for an OCR request on a busy machine; every wait in the baseline is bounded.
REPLY_TIMEOUT_S = 120.0
HTTP_TIMEOUT_S = 30.0


def env(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if value is None:
        raise SystemExit(f"{name} must be set")
    return value


def rabbitmq_url() -> str:
    return env("RABBITMQ_URL", DEFAULT_RABBITMQ_URL)


def ocr_queue() -> str:
    return env("BASELINE_OCR_QUEUE", "ocr_service")


@cache
def public_key() -> Ed25519PublicKey:
    key = load_pem_public_key(Path(env("BASELINE_PUBLIC_KEY_FILE")).read_bytes())
    if not isinstance(key, Ed25519PublicKey):
        raise SystemExit("BASELINE_PUBLIC_KEY_FILE must hold an Ed25519 public key")
    return key


def decode_token(token: str) -> dict[str, object]:
    """The claims of an ocrmesh access token (the same kind of JWT on both sides of the
    benchmark). Raises `jwt.InvalidTokenError`."""
    claims: dict[str, object] = jwt.decode(
        token,
        public_key(),
        algorithms=[TOKEN_ALGORITHM],
        audience=env("TOKEN_AUDIENCE", DEFAULT_TOKEN_AUDIENCE),
        issuer=env("TOKEN_ISSUER", DEFAULT_TOKEN_ISSUER),
    )
    return claims
