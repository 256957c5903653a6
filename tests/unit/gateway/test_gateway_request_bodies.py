"""Request bodies: the verification code as a string or a number, unknown fields refused."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gateway.schemas import LoginRequest, RegisterRequest, VerifyOtpRequest


@pytest.mark.parametrize(
    ("otp", "code"),
    [
        ("012345", "012345"),
        (" 012345\n", "012345"),
        (12345, "012345"),
        (0, "000000"),
        (999999, "999999"),
        (12345.0, "012345"),  # a JSON integer written with a fraction point
    ],
)
def test_the_code_is_kept_as_typed_or_zero_padded_from_a_number(otp: str | int, code: str) -> None:
    assert VerifyOtpRequest(email="a@example.com", otp=otp).code == code


@pytest.mark.parametrize(
    "otp",
    [
        True,
        False,
        1.5,
        -1,
        1_000_000,
        "",
        "   ",
        "12ab",
        "12345",
        "1234567",
        "\uff11\uff12\uff13\uff14\uff15\uff16",
        None,
        [1],
        {"otp": 1},
    ],
)
def test_codes_of_other_shapes_are_refused(otp: object) -> None:
    with pytest.raises(ValidationError):
        VerifyOtpRequest.model_validate({"email": "a@example.com", "otp": otp})


def test_a_misspelt_field_is_refused_not_ignored() -> None:
    with pytest.raises(ValidationError) as caught:
        LoginRequest.model_validate({"username": "a@example.com", "password": "x", "passwrd": "y"})
    assert caught.value.errors()[0]["loc"] == ("passwrd",)


def test_oversized_fields_are_refused_before_any_call() -> None:
    with pytest.raises(ValidationError):
        RegisterRequest(name="n" * 201, email="a@example.com", password="p" * 20)
    with pytest.raises(ValidationError):
        RegisterRequest(name="Ada", email="a@example.com", password="p" * 1025)


def test_numbers_are_not_taken_for_strings() -> None:
    with pytest.raises(ValidationError):
        RegisterRequest.model_validate({"name": 12, "email": "a@example.com", "password": "long enough"})
