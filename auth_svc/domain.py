"""What auth_svc is about, free of I/O: users, the rules their input must follow,
verification codes, and the exceptions use cases raise."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import datetime

from ocrmesh.rules.account_rules import (
    NAME_MAX_LENGTH,
    OTP_DIGITS,
    OTP_PATTERN,
    PASSWORD_MAX_LENGTH,
    is_forbidden_in_name,
)
from ocrmesh.rules.emails import InvalidEmail, check_email

# passlib refuses anything above 4096 bytes; 128 characters are at most 512 bytes of UTF-8.
PASSWORD_MAX_BYTES = 1024
_OTP = re.compile(OTP_PATTERN)


class AuthError(Exception):
    """Base of the errors a use case raises on purpose. The message is safe to show."""


class InvalidInput(AuthError):
    """A field is malformed (email, password, name, code)."""


class InvalidCredentials(AuthError):
    def __init__(self) -> None:
        # The same words for "no such user" and "wrong password".
        super().__init__("incorrect email or password")


class NotVerified(AuthError):
    def __init__(self) -> None:
        super().__init__("email not verified; verify it with the code we sent")


class InvalidCode(AuthError):
    """Every failed code check, whatever the reason (no such account, already verified, no
    code pending, expired, used up, wrong): one answer, so it tells nobody who exists."""

    def __init__(self) -> None:
        super().__init__("invalid or expired code; request a new one if needed")


class Throttled(AuthError):
    """Too many attempts for this account or client address (`auth_svc.throttles`)."""

    def __init__(self, seconds_left: int) -> None:
        super().__init__(f"too many attempts; retry in {seconds_left} s")
        self.seconds_left = seconds_left


class Busy(AuthError):
    """The password-hashing pool is full: come back in a moment."""

    def __init__(self, seconds_left: int = 1) -> None:
        super().__init__("too many sign-ins at once; retry shortly")
        self.seconds_left = seconds_left


class UserGone(AuthError):
    """The token is valid but its user no longer exists."""

    def __init__(self) -> None:
        super().__init__("user no longer exists")


@dataclass(frozen=True)
class UserView:
    """A user as the outside sees it: no secrets."""

    id: uuid.UUID
    name: str
    email: str
    is_verified: bool
    created_at: datetime


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_in: int


@dataclass(frozen=True)
class CodeSent:
    resend_after_seconds: int
    expires_in_seconds: int


def normalise_email(raw: str) -> str:
    """The address with its domain lower-cased (IDNA-normalised) and the local part as typed,
    when the notifier can mail it (`ocrmesh.rules.emails`, shared with it). Raises InvalidInput with
    the validator's reason."""
    try:
        return check_email(raw).normalized
    except InvalidEmail as exc:
        reason = str(exc)
        raise InvalidInput(reason if reason.startswith("email ") else f"invalid email: {reason}") from None


def email_key(email: str) -> str:
    """The form two addresses are compared in: unique case-insensitively."""
    return email.lower()


def validate_name(raw: str) -> str:
    name = unicodedata.normalize("NFC", raw).strip()
    if not name:
        raise InvalidInput("name is required")
    if len(name) > NAME_MAX_LENGTH:
        raise InvalidInput(f"name is longer than {NAME_MAX_LENGTH} characters")
    if any(is_forbidden_in_name(ch) for ch in name):
        raise InvalidInput("name contains control characters")
    return name


def validate_password(
    password: str,
    *,
    min_length: int,
    common: frozenset[str] = frozenset(),
    personal: tuple[str, ...] = (),
) -> str:
    """A new password: `min_length` to 128 characters of any kind (no composition rules,
    ASVS 2.1.9), neither one of the `common` ones (lower-case) nor the user's own name or
    address (`personal`)."""
    if len(password) < min_length:
        raise InvalidInput(f"password must be at least {min_length} characters")
    if len(password) > PASSWORD_MAX_LENGTH or len(password.encode()) > PASSWORD_MAX_BYTES:
        raise InvalidInput(f"password must be at most {PASSWORD_MAX_LENGTH} characters")
    folded = password.lower()
    if folded in common or len(set(folded)) < 3:
        raise InvalidInput("this password is too common; choose another")
    if any(word and folded == word.lower() for word in personal):
        raise InvalidInput("the password must not be your name or email address")
    return password


def validate_code_format(raw: str) -> str:
    code = raw.strip()
    if not _OTP.fullmatch(code):
        raise InvalidInput(f"the code is {OTP_DIGITS} digits")
    return code


def new_code() -> str:
    """A uniformly random 6-digit code; leading zeros included ("004217")."""
    return f"{secrets.randbelow(10**OTP_DIGITS):0{OTP_DIGITS}d}"


def new_code_salt() -> bytes:
    return secrets.token_bytes(16)


def hash_code(code: str, *, salt: bytes, user_id: uuid.UUID) -> bytes:
    """HMAC-SHA256 of the code, keyed by a per-code salt and bound to the user.

    A database dump still allows guessing a 6-digit code offline; what protects codes is
    that they expire in minutes and die after a few wrong tries. The hash keeps them out
    of logs, backups and the eyes of whoever reads the table.
    """
    return hmac.new(salt, f"{user_id}:{code}".encode(), hashlib.sha256).digest()


def code_matches(code: str, *, salt: bytes, user_id: uuid.UUID, expected: bytes) -> bool:
    return hmac.compare_digest(hash_code(code, salt=salt, user_id=user_id), expected)


def signup_attempt_mail(name: str) -> tuple[str, str]:
    """Subject and body of the mail an owner gets when someone registers their address again."""
    subject = "Someone tried to sign up to ocrmesh with your address"
    body = (
        f"Hello {name},\n\n"
        "someone (maybe you) just tried to create an ocrmesh account with this email address,\n"
        "which already has one. Nothing was changed. If it was you, log in instead, or reset\n"
        "your password if you forgot it. If it was not you, you can ignore this mail.\n"
    )
    return subject, body


def reset_mail(name: str, code: str, ttl_seconds: int) -> tuple[str, str]:
    """Subject and body of the password-reset code mail."""
    minutes = max(1, ttl_seconds // 60)
    subject = "Your ocrmesh password reset code"
    body = (
        f"Hello {name},\n\n"
        f"your password reset code is {code}\n\n"
        f"It expires in {minutes} minutes. If you did not ask to reset your password, ignore\n"
        "this mail: your password stays as it is.\n"
    )
    return subject, body


def password_changed_mail(name: str, how: str) -> tuple[str, str]:
    """Subject and body of the mail telling an owner their password was changed or reset."""
    subject = "Your ocrmesh password was changed"
    body = (
        f"Hello {name},\n\n"
        f"the password of your ocrmesh account was just {how}, and every session was logged out.\n"
        "If this was not you, reset your password now and check your mailbox's security.\n"
    )
    return subject, body


def verification_mail(name: str, code: str, ttl_seconds: int) -> tuple[str, str]:
    """Subject and body of the verification-code mail."""
    minutes = max(1, ttl_seconds // 60)
    subject = f"Your ocrmesh verification code: {code}"
    body = (
        f"Hello {name},\n\n"
        f"your verification code is {code}\n\n"
        f"It expires in {minutes} minutes. If you did not sign up for ocrmesh, ignore this mail.\n"
    )
    return subject, body
