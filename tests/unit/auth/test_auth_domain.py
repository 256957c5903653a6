"""Input rules and verification-code primitives (no I/O)."""

from __future__ import annotations

import uuid

import pytest

from auth_svc import domain
from auth_svc.domain import InvalidInput


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("Ada@Example.COM", "Ada@example.com"),
        ("  ada@example.com  ", "ada@example.com"),
        ("ada@BÜCHER.example", "ada@bücher.example"),
    ],
)
def test_email_is_normalised_with_a_lower_case_domain(raw: str, normalised: str) -> None:
    assert domain.normalise_email(raw) == normalised


def test_emails_differing_only_in_case_share_one_key() -> None:
    assert domain.email_key(domain.normalise_email("ADA@example.com")) == domain.email_key("ada@EXAMPLE.com")


@pytest.mark.parametrize(
    "raw", ["", "ada", "ada@", "@example.com", "ada@@example.com", "a" * 250 + "@example.com"]
)
def test_malformed_email_is_refused(raw: str) -> None:
    with pytest.raises(InvalidInput):
        domain.normalise_email(raw)


@pytest.mark.parametrize("raw", ["", "   ", "x" * 101, "bad\nname", "tab\there"])
def test_bad_names_are_refused(raw: str) -> None:
    with pytest.raises(InvalidInput):
        domain.validate_name(raw)


def test_names_are_trimmed() -> None:
    assert domain.validate_name("  Ada Lovelace ") == "Ada Lovelace"


def test_password_length_bounds() -> None:
    assert domain.validate_password("12345678", min_length=8) == "12345678"
    with pytest.raises(InvalidInput, match="at least 8"):
        domain.validate_password("1234567", min_length=8)
    with pytest.raises(InvalidInput, match="at most"):
        # Bytes, not characters: 400 three-byte characters exceed 1024 bytes.
        domain.validate_password("€" * 400, min_length=8)


def test_codes_are_six_digits_and_include_leading_zeros() -> None:
    codes = [domain.new_code() for _ in range(2000)]

    assert all(len(c) == 6 and c.isdigit() for c in codes)
    # P(no code starting with 0 in 2000 draws) = 0.9**2000: never.
    assert any(c.startswith("0") for c in codes)


@pytest.mark.parametrize(
    "raw", ["", "12345", "1234567", "12 456", "abcdef", "\uff11\uff12\uff13\uff14\uff15\uff16"]
)
def test_malformed_codes_are_refused(raw: str) -> None:
    with pytest.raises(InvalidInput):
        domain.validate_code_format(raw)


def test_code_hash_matches_only_the_same_code_for_the_same_user() -> None:
    user, other = uuid.uuid4(), uuid.uuid4()
    salt = domain.new_code_salt()
    stored = domain.hash_code("004217", salt=salt, user_id=user)

    assert domain.code_matches("004217", salt=salt, user_id=user, expected=stored)
    assert not domain.code_matches("4217", salt=salt, user_id=user, expected=stored)
    assert not domain.code_matches("004218", salt=salt, user_id=user, expected=stored)
    assert not domain.code_matches("004217", salt=salt, user_id=other, expected=stored)
    assert stored != domain.hash_code("004217", salt=domain.new_code_salt(), user_id=user)


def test_verification_mail_carries_the_code_and_its_lifetime() -> None:
    subject, body = domain.verification_mail("Ada", "004217", 600)

    assert "004217" in subject
    assert "004217" in body
    assert "10 minutes" in body
