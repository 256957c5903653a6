"""The OpenAPI document and auth_svc judge account fields alike: the schema's constraints
come from ocrmesh.rules.account_rules, and for any input the schema accepts, auth_svc's checks
accept it too (and the other way round where the schema can state the rule)."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from auth_svc import domain
from gateway.app import create_app
from gateway.settings import GatewaySettings
from ocrmesh.rules import account_rules

SCHEMAS: dict[str, Any] = create_app(GatewaySettings()).openapi()["components"]["schemas"]
NAME = SCHEMAS["RegisterRequest"]["properties"]["name"]
NAME_PATTERN = re.compile(NAME["pattern"])


def _schema_accepts_name(name: str) -> bool:
    return NAME["minLength"] <= len(name) <= NAME["maxLength"] and NAME_PATTERN.search(name) is not None


def _service_accepts_name(name: str) -> bool:
    try:
        domain.validate_name(name)
    except domain.InvalidInput:
        return False
    return True


def test_the_document_states_the_shared_limits() -> None:
    register = SCHEMAS["RegisterRequest"]["properties"]
    assert register["email"]["maxLength"] == account_rules.EMAIL_MAX_LENGTH == 254
    assert register["email"]["format"] == "email"
    assert register["password"]["minLength"] == account_rules.PASSWORD_MIN_LENGTH
    assert register["password"]["maxLength"] == account_rules.PASSWORD_MAX_LENGTH
    assert NAME["maxLength"] == account_rules.NAME_MAX_LENGTH
    assert SCHEMAS["ResetPasswordRequest"]["properties"]["otp"]["pattern"] == account_rules.OTP_PATTERN


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=account_rules.NAME_MAX_LENGTH))
def test_a_name_the_schema_accepts_is_one_auth_svc_accepts(name: str) -> None:
    # The one rule no pattern states: a few characters (U+0958, U+FB2C...) grow under the NFC
    # normalisation auth_svc applies, and the length limit counts the normalised name.
    assume(len(unicodedata.normalize("NFC", name.strip())) <= len(name.strip()))
    if _schema_accepts_name(name):
        assert _service_accepts_name(name), repr(name)


@pytest.mark.parametrize(
    ("name", "accepted"),
    [
        ("Ada Lovelace", True),
        ("  Ada\n", True),  # trimmed
        ("Zoë 李", True),
        ("", False),
        (" \t\n", False),
        ("Ada\x00", False),
        ("Ada\u202eevil", False),  # bidi override (Cf)
        ("Ada\u200b", False),  # zero-width space (Cf)
        ("\ue000", False),  # private use (Co)
        ("x" * 101, False),
    ],
)
def test_schema_and_service_agree_on_names(name: str, accepted: bool) -> None:
    assert _schema_accepts_name(name) == accepted
    assert _service_accepts_name(name) == accepted


@pytest.mark.parametrize(
    ("code", "accepted"), [("012345", True), ("12345", False), ("1234567", False), ("12a456", False)]
)
def test_schema_and_service_agree_on_codes(code: str, accepted: bool) -> None:
    assert bool(re.search(account_rules.OTP_PATTERN, code)) == accepted
    try:
        domain.validate_code_format(code)
    except domain.InvalidInput:
        assert not accepted
    else:
        assert accepted
