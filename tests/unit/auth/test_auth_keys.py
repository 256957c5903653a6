"""Signing keys: files, generation for a local start, rotation lists, signing."""

from __future__ import annotations

import stat
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import generate_private_key
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from auth_svc.keys import (
    GENERATED_KEY_NAME,
    KeyConfigError,
    TokenSigner,
    generate_key_file,
    key_id_for,
    load_signer,
    public_pem,
)
from ocrmesh.rules.tokens import TokenVerifier


def signer_from(tmp_path: Path, **overrides: object) -> TokenSigner:
    options: dict[str, object] = {
        "signing_key_file": None,
        "extra_public_key_files": (),
        "key_dir": tmp_path / "keys",
        "may_generate": True,
        "issuer": "ocrmesh-auth",
        "audience": "ocrmesh",
        "ttl_seconds": 3600,
    }
    options.update(overrides)
    return load_signer(**options)  # type: ignore[arg-type]


def test_local_start_generates_a_private_key_once_and_reuses_it(tmp_path: Path) -> None:
    first = signer_from(tmp_path)
    second = signer_from(tmp_path)

    path = tmp_path / "keys" / GENERATED_KEY_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert first.key_id == second.key_id


def test_processes_starting_together_all_get_the_one_generated_key(tmp_path: Path) -> None:
    # AUTH_PROCESSES > 1: every worker loads or generates the key at the same moment. Each
    # must end up with the same key, and none may read a half-written file.
    with ThreadPoolExecutor(max_workers=8) as pool:
        key_ids = set(pool.map(lambda _: signer_from(tmp_path).key_id, range(32)))

    assert len(key_ids) == 1
    assert [p.name for p in (tmp_path / "keys").iterdir()] == [GENERATED_KEY_NAME]


def test_generating_is_refused_where_not_allowed(tmp_path: Path) -> None:
    with pytest.raises(KeyConfigError):
        signer_from(tmp_path, may_generate=False)


def test_key_id_is_derived_from_the_public_key(tmp_path: Path) -> None:
    key = generate_key_file(tmp_path / "k.pem")

    signer = signer_from(tmp_path, signing_key_file=tmp_path / "k.pem")

    assert signer.key_id == key_id_for(key.public_key())
    assert len(signer.key_id) == 16


def test_rotation_publishes_old_keys_but_signs_with_the_new(tmp_path: Path) -> None:
    old = generate_key_file(tmp_path / "old.pem")
    new = generate_key_file(tmp_path / "new.pem")
    (tmp_path / "old.pub.pem").write_text(public_pem(old.public_key()))

    signer = signer_from(
        tmp_path, signing_key_file=tmp_path / "new.pem", extra_public_key_files=(tmp_path / "old.pub.pem",)
    )

    assert [k.key_id for k in signer.public_keys()] == [
        key_id_for(new.public_key()),
        key_id_for(old.public_key()),
    ]
    token = signer.sign(user_id=uuid.uuid4(), email="a@b.c", name="A")
    assert jwt.get_unverified_header(token)["kid"] == key_id_for(new.public_key())


def test_extra_key_files_may_hold_private_keys_too(tmp_path: Path) -> None:
    old = generate_key_file(tmp_path / "old.pem")

    signer = signer_from(tmp_path, extra_public_key_files=(tmp_path / "old.pem",))

    assert key_id_for(old.public_key()) in {k.key_id for k in signer.public_keys()}


@pytest.mark.parametrize(
    "content", [b"", b"not a key", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"]
)
def test_unreadable_key_files_are_a_config_error(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "bad.pem").write_bytes(content)

    with pytest.raises(KeyConfigError):
        signer_from(tmp_path, signing_key_file=tmp_path / "bad.pem")


def test_missing_key_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(KeyConfigError, match="cannot read"):
        signer_from(tmp_path, signing_key_file=tmp_path / "absent.pem")


def test_rsa_key_is_refused(tmp_path: Path) -> None:
    rsa = generate_private_key(public_exponent=65537, key_size=2048)
    (tmp_path / "rsa.pem").write_bytes(rsa.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))

    with pytest.raises(KeyConfigError, match="Ed25519"):
        signer_from(tmp_path, signing_key_file=tmp_path / "rsa.pem")


async def test_signed_tokens_verify_with_the_shared_verifier() -> None:
    signer = TokenSigner(
        Ed25519PrivateKey.generate(), issuer="ocrmesh-auth", audience="ocrmesh", ttl_seconds=900
    )

    async def keys() -> tuple[object, ...]:
        return signer.public_keys()

    verifier = TokenVerifier(keys)
    token = signer.sign(user_id=uuid.UUID(int=7), email="ada@example.com", name="Ada")

    claims = await verifier.verify(token)

    assert claims.user_id == "00000000-0000-0000-0000-000000000007"
    assert (claims.expires_at - claims.issued_at).total_seconds() == 900
    assert claims.key_id == signer.key_id
