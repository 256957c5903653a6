"""Token-signing keys: loading, generating for a local start, publishing, and signing.

The signing key is one Ed25519 private key (PEM, PKCS#8). Its key id (`kid`) is derived
from the public key (a SHA-256 thumbprint), so it never has to be configured and cannot
drift from the key. During a rotation, the previous keys are listed in
AUTH_EXTRA_PUBLIC_KEY_FILES: published by GetPublicKeys, never used to sign.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
    load_pem_public_key,
)

from ocrmesh.rules.tokens import TOKEN_ALGORITHM, new_token_claims

log = logging.getLogger(__name__)

GENERATED_KEY_NAME = "auth_signing_key.pem"


class KeyConfigError(Exception):
    """A key file is missing, unreadable or not an Ed25519 key."""


def key_id_for(public: Ed25519PublicKey) -> str:
    """A short stable id for `public`: the first 16 characters of its base64url SHA-256."""
    raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.urlsafe_b64encode(hashlib.sha256(raw).digest()).decode().rstrip("=")[:16]


def public_pem(public: Ed25519PublicKey) -> str:
    return public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()


def private_pem(private: Ed25519PrivateKey) -> bytes:
    return private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())


@dataclass(frozen=True)
class VerificationKey:
    key_id: str
    algorithm: str
    public_key_pem: str


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise KeyConfigError(f"cannot read key file {path}: {exc.strerror}") from None


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = load_pem_private_key(_read(path), password=None)
    except (ValueError, TypeError) as exc:
        raise KeyConfigError(f"{path} is not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyConfigError(f"{path} is not an Ed25519 key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """The public key in `path`, which may hold a public or a private PEM key."""
    data = _read(path)
    try:
        if b"PRIVATE KEY" in data:
            private = load_pem_private_key(data, password=None)
            if not isinstance(private, Ed25519PrivateKey):
                raise KeyConfigError(f"{path} is not an Ed25519 key")
            return private.public_key()
        public = load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise KeyConfigError(f"{path} is not a PEM key: {exc}") from None
    if not isinstance(public, Ed25519PublicKey):
        raise KeyConfigError(f"{path} is not an Ed25519 key")
    return public


def generate_key_file(path: Path) -> Ed25519PrivateKey:
    """Write a new Ed25519 private key to `path`, readable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    # Written whole under a private name, then linked into place: link() fails when the
    # name exists (two processes starting at once must not overwrite each other's key),
    # and nobody ever reads a half-written key (FileExistsError: load the winner's).
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(private_pem(key))
        os.link(temporary, path)
    finally:
        os.unlink(temporary)
    return key


class TokenSigner:
    """Signs access tokens with the current key and lists every key that verifies them."""

    def __init__(
        self,
        signing_key: Ed25519PrivateKey,
        *,
        issuer: str,
        audience: str,
        ttl_seconds: int,
        extra_public_keys: tuple[Ed25519PublicKey, ...] = (),
    ) -> None:
        self._key = signing_key
        self.key_id = key_id_for(signing_key.public_key())
        self.issuer = issuer
        self.audience = audience
        self.ttl_seconds = ttl_seconds
        published = {self.key_id: signing_key.public_key()}
        for public in extra_public_keys:
            published.setdefault(key_id_for(public), public)
        self._published = tuple(
            VerificationKey(key_id=kid, algorithm=TOKEN_ALGORITHM, public_key_pem=public_pem(public))
            for kid, public in published.items()
        )

    def public_keys(self) -> tuple[VerificationKey, ...]:
        return self._published

    def sign(
        self, *, user_id: uuid.UUID, email: str, name: str, session_epoch: int = 0, now: float | None = None
    ) -> str:
        """A new access token for this user, signed with the current key."""
        claims = new_token_claims(
            user_id=str(user_id),
            email=email,
            name=name,
            issuer=self.issuer,
            audience=self.audience,
            issued_at=int(time.time() if now is None else now),
            ttl_seconds=self.ttl_seconds,
            session_epoch=session_epoch,
        )
        return jwt.encode(claims, self._key, algorithm=TOKEN_ALGORITHM, headers={"kid": self.key_id})


def load_signer(
    *,
    signing_key_file: Path | None,
    extra_public_key_files: tuple[Path, ...],
    key_dir: Path,
    may_generate: bool,
    issuer: str,
    audience: str,
    ttl_seconds: int,
) -> TokenSigner:
    """The signer the settings describe. With no signing key file, the key under `key_dir`
    is used, generated on first start (only where `may_generate`)."""
    if signing_key_file is not None:
        key = load_private_key(signing_key_file)
    else:
        if not may_generate:
            raise KeyConfigError("no AUTH_SIGNING_KEY_FILE and generating one is not allowed here")
        path = key_dir / GENERATED_KEY_NAME
        if path.exists():
            key = load_private_key(path)
        else:
            try:
                key = generate_key_file(path)
                log.warning(
                    "no AUTH_SIGNING_KEY_FILE: generated a signing key for local use",
                    extra={"path": str(path)},
                )
            except FileExistsError:
                key = load_private_key(path)
    extras = tuple(load_public_key(p) for p in extra_public_key_files)
    signer = TokenSigner(
        key, issuer=issuer, audience=audience, ttl_seconds=ttl_seconds, extra_public_keys=extras
    )
    log.info(
        "token keys loaded",
        extra={
            "signing_key_id": signer.key_id,
            "published_key_ids": [k.key_id for k in signer.public_keys()],
        },
    )
    return signer
