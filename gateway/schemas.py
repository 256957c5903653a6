"""REST request and response bodies, and their conversion from the gRPC messages."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, field_validator

from ocrmesh.auth.v1 import auth_pb2
from ocrmesh.ocr.v1 import ocr_pb2

OTP_DIGITS = 6

# Bounds against abuse only; the rules themselves (email syntax, password policy) are
# auth_svc's, and its INVALID_ARGUMENT comes back as a 400 with its message.
Name = Annotated[str, Field(min_length=1, max_length=200)]
Email = Annotated[str, Field(min_length=3, max_length=320, examples=["ada@example.com"])]
Password = Annotated[str, Field(min_length=1, max_length=1024)]


class _Request(BaseModel):
    # A typo in a field name should be a 422, not a silently ignored field.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class RegisterRequest(_Request):
    name: Name
    email: Email
    password: Password


class GenerateOtpRequest(_Request):
    email: Email


class VerifyOtpRequest(_Request):
    email: Email
    otp: StrictStr | StrictInt = Field(
        description=(
            "The code from the email. A string is taken as typed (leading zeros kept); "
            f"a JSON number is written with {OTP_DIGITS} digits, zero-padded (12345 -> '012345')."
        ),
        examples=["042917"],
    )

    @field_validator("otp")
    @classmethod
    def _as_code_string(cls, value: str | int) -> str:
        if isinstance(value, int):
            if not 0 <= value < 10**OTP_DIGITS:
                raise ValueError(f"a numeric code must have at most {OTP_DIGITS} digits")
            return f"{value:0{OTP_DIGITS}d}"
        code = value.strip()
        if not code:
            raise ValueError("the code must not be empty")
        if len(code) > 32:
            raise ValueError("the code is too long")
        return code

    @property
    def code(self) -> str:
        # After validation the union always holds the string form.
        return str(self.otp)


class ForgotPasswordRequest(_Request):
    email: Email


class ResetPasswordRequest(_Request):
    email: Email
    otp: StrictStr = Field(description="The reset code from the email, as typed.", max_length=32)
    new_password: Password


class ChangePasswordRequest(_Request):
    current_password: Password
    new_password: Password


class LoginRequest(_Request):
    username: Email = Field(description="The email address the account was registered with.")
    password: Password


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
    # The same words whether or not the address has an account waiting for a code.
    detail: str = "if this address is waiting for verification, a new code is on its way"
    resend_after_seconds: int
    expires_in_seconds: int


class VerifiedOut(BaseModel):
    detail: str = "email verified"
    user: UserOut


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the scheme's name
    expires_in: int


class LineOut(BaseModel):
    index: int
    block: int = Field(description="Layout block (heading, column) of the line, 0-based in reading order.")
    text: str
    confidence: float
    box: list[tuple[float, float]] = Field(description="Four corners, clockwise from top-left, in pixels.")

    @classmethod
    def from_proto(cls, line: ocr_pb2.Line) -> LineOut:
        return cls(
            index=line.index,
            block=line.block,
            text=line.text,
            confidence=round(line.confidence, 4),
            box=[(point.x, point.y) for point in line.box],
        )


class TimingsOut(BaseModel):
    decode_ms: float
    detect_ms: float
    recognize_ms: float
    total_ms: float

    @classmethod
    def from_proto(cls, timings: ocr_pb2.Timings) -> TimingsOut:
        return cls(
            decode_ms=timings.decode_ms,
            detect_ms=timings.detect_ms,
            recognize_ms=timings.recognize_ms,
            total_ms=timings.total_ms,
        )


class OcrResultOut(BaseModel):
    """The original system's result (user_id, user_name, user_email, ocr_text) plus detail."""

    user_id: str
    user_name: str
    user_email: str
    ocr_text: str
    lines: list[LineOut]
    engine: str
    image_width: int
    image_height: int
    timings: TimingsOut | None = None


# The events of /ocr/stream, one JSON object each (documented in docs/gateway.md).


class StartedEvent(BaseModel):
    type: Literal["started"] = "started"
    engine: str
    image_width: int
    image_height: int


class LineEvent(BaseModel):
    # The fields of LineOut, after `type` (subclassing would put `type` last on the wire).
    type: Literal["line"] = "line"
    index: int
    block: int
    text: str
    confidence: float
    box: list[tuple[float, float]]


class CompletedEvent(BaseModel):
    type: Literal["completed"] = "completed"
    full_text: str
    line_count: int
    timings: TimingsOut


class ErrorEvent(BaseModel):
    type: Literal["error"] = "error"
    status: int = Field(description="The HTTP status the failure would have had before the stream began.")
    detail: str


OcrEvent = StartedEvent | LineEvent | CompletedEvent | ErrorEvent


class HealthOut(BaseModel):
    status: Literal["ok"] = "ok"


class ReadinessOut(BaseModel):
    status: Literal["ready", "not ready"]
    checks: dict[str, str] = Field(description="Health status per gRPC service: SERVING or why not.")
