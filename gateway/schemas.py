"""REST request and response bodies, and their conversion from the gRPC messages."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt, StrictStr, field_validator

from ocrmesh.auth.v1 import auth_pb2
from ocrmesh.rules.account_rules import (
    EMAIL_MAX_LENGTH,
    NAME_MAX_LENGTH,
    NAME_PATTERN,
    OTP_DIGITS,
    OTP_PATTERN,
    PASSWORD_MAX_LENGTH,
    PASSWORD_MIN_LENGTH,
)
from ocrmesh.rules.ocr_events import Line, Page, Timings

# The account rules as auth_svc enforces them (ocrmesh.rules.account_rules, one definition), so
# the OpenAPI schema says what the service accepts. What no schema can say (a common
# password, the user's own name as password, a domain the email check refuses, a wrong
# code) is auth_svc's 400 with its message.
Name = Annotated[
    str,
    Field(
        min_length=1,
        max_length=NAME_MAX_LENGTH,
        pattern=NAME_PATTERN,
        description=(
            f"Up to {NAME_MAX_LENGTH} characters once trimmed, not all whitespace; no control, "
            "format (bidi, zero-width), surrogate or private-use characters."
        ),
        examples=["Ada Lovelace"],
    ),
]
Email = Annotated[
    str,
    Field(
        min_length=3,
        max_length=EMAIL_MAX_LENGTH,
        json_schema_extra={"format": "email"},
        description="An address mail can be sent to (ASCII before the @; no DNS check).",
        examples=["ada@example.com"],
    ),
]
NewPassword = Annotated[
    str,
    Field(
        min_length=PASSWORD_MIN_LENGTH,
        max_length=PASSWORD_MAX_LENGTH,
        description=(
            f"{PASSWORD_MIN_LENGTH} to {PASSWORD_MAX_LENGTH} characters of any kind; not a common "
            "password, nor your name or email address."
        ),
        examples=["correct horse battery"],
    ),
]
# A password being checked: no account has a longer one.
Password = Annotated[str, Field(min_length=1, max_length=PASSWORD_MAX_LENGTH)]


def _trimmed(value: object) -> object:
    # Codes are copied out of emails: surrounding whitespace is no part of them.
    return value.strip() if isinstance(value, str) else value


Code = Annotated[
    StrictStr,
    Field(
        pattern=OTP_PATTERN,
        description=(
            f"The {OTP_DIGITS}-digit code from the email, leading zeros included (surrounding "
            "whitespace is ignored)."
        ),
        examples=["042917"],
    ),
    # Listed after the constraints so that it runs before them.
    BeforeValidator(_trimmed),
]


def _integral(value: object) -> object:
    # JSON Schema's "integer" is any number with no fraction: 12345.0 is one.
    return int(value) if isinstance(value, float) and value.is_integer() else value


# The original system's clients send the code as a JSON number; leading zeros are then lost.
NumericCode = Annotated[StrictInt, Field(ge=0, lt=10**OTP_DIGITS), BeforeValidator(_integral)]


class _Request(BaseModel):
    # A typo in a field name should be a 422, not a silently ignored field.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class RegisterRequest(_Request):
    name: Name
    email: Email
    password: NewPassword


class GenerateOtpRequest(_Request):
    email: Email


class VerifyOtpRequest(_Request):
    email: Email
    otp: Code | NumericCode = Field(
        description=(
            f"The code from the email: {OTP_DIGITS} digits as a string, or a JSON number, read "
            f"as {OTP_DIGITS} digits zero-padded (12345 -> '012345')."
        ),
        examples=["042917"],
    )

    @field_validator("otp")
    @classmethod
    def _as_code_string(cls, value: str | int) -> str:
        return f"{value:0{OTP_DIGITS}d}" if isinstance(value, int) else value

    @property
    def code(self) -> str:
        # After validation the union always holds the string form.
        return str(self.otp)


class ForgotPasswordRequest(_Request):
    email: Email


class ResetPasswordRequest(_Request):
    email: Email
    otp: Code
    new_password: NewPassword


class ChangePasswordRequest(_Request):
    current_password: Password
    new_password: NewPassword


class LoginRequest(_Request):
    username: Email = Field(description="The email address the account was registered with.")
    password: Password


class TokenForm(BaseModel):
    """OAuth2's password-flow form (RFC 6749, 4.3.2), under the account rules of LoginRequest."""

    grant_type: Annotated[str | None, Field(pattern="^password$")] = None
    username: Email = Field(description="The email address the account was registered with.")
    password: Password
    scope: str = ""
    client_id: str | None = None
    client_secret: str | None = None


class UserOut(BaseModel):
    id: str
    name: str
    email: str
    is_verified: bool
    created_at: datetime | None = None

    @classmethod
    def from_proto(cls, user: auth_pb2.User) -> UserOut:
        created = user.created_at.ToDatetime(tzinfo=UTC) if user.HasField("created_at") else None
        return cls(
            id=user.id, name=user.name, email=user.email, is_verified=user.is_verified, created_at=created
        )


class RegisteredOut(BaseModel):
    # The same words whether the address was new or taken (no account enumeration).
    detail: str = "check your email to finish signing up"


class ResetRequestedOut(BaseModel):
    # The same words whether or not the address has an account.
    detail: str = "if this address has an account, a reset code is on its way"
    expires_in_seconds: int


class PasswordResetOut(BaseModel):
    detail: str = "password reset; every session was logged out"


class OtpSentOut(BaseModel):
    # The same words whether or not the address has an account waiting for a code, and
    # whether or not this request fell inside the resend cooldown (issue 28).
    detail: str = "if this address is waiting for verification, a code is on its way"
    resend_after_seconds: int = Field(
        description="Ask again no sooner: a request within this time after the last code is "
        "answered alike and mails nothing."
    )
    expires_in_seconds: int


class VerifiedOut(BaseModel):
    detail: str = "email verified"
    user: UserOut


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the scheme's name
    expires_in: int


class OcrResultOut(BaseModel):
    """The original system's result (user_id, user_name, user_email, ocr_text) plus detail."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    # `lines`, `pages` and `timings` are the stream's own (ocrmesh.rules.ocr_events): one model for both.
    user_id: str
    user_name: str
    user_email: str
    ocr_text: str
    lines: list[Line]
    engine: str
    image_width: int = Field(description="The first page's width in pixels.")
    image_height: int = Field(description="The first page's height in pixels.")
    timings: Timings | None = None
    pages: list[Page] = Field(
        default_factory=list,
        description="The pages in order (an image is one page): size, rotation and skew corrected, "
        "whether the text was OCRed or is a PDF's own text layer. Each line's `page` points here.",
    )


class LanguageOut(BaseModel):
    """A language this deployment reads (ocr_svc's ListLanguages)."""

    code: str = Field(description="ISO 639-1 code: what the `languages` form field takes.", examples=["vi"])
    name: str = Field(description="English name.", examples=["Vietnamese"])
    engine: str = Field(
        description="Who reads its lines: `rapidocr` (PP-OCR) or `rapidocr+tesseract` (Tesseract's LSTM "
        "behind PP-OCR's detector).",
        examples=["rapidocr+tesseract"],
    )


class LanguagesOut(BaseModel):
    languages: list[LanguageOut]


class HealthOut(BaseModel):
    status: Literal["ok"] = "ok"


class ReadinessOut(BaseModel):
    status: Literal["ready", "not ready"]
    checks: dict[str, str] = Field(description="Health status per gRPC service: SERVING or why not.")
