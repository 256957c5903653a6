"""The one email syntax check: what auth_svc accepts as an account's address is exactly what
the notifier can mail (no SMTPUTF8, so no non-ASCII local part; an internationalised domain
is fine, sent in its punycode form).

Deliverability (DNS) is never checked here: no network on a request path; the code we mail
is the real proof that an address works.
"""

from __future__ import annotations

from dataclasses import dataclass

from email_validator import EmailNotValidError, validate_email

# RFC 5321's limit on a forward path.
EMAIL_MAX_LENGTH = 254


class InvalidEmail(ValueError):
    """The text is not an address ocrmesh can mail; the message says why."""


@dataclass(frozen=True)
class CheckedEmail:
    #: As the user typed it, with the domain normalised (lower case, IDNA).
    normalized: str
    #: The form an SMTP envelope and a To: header carry (punycode domain).
    ascii: str


def check_email(raw: str) -> CheckedEmail:
    """`raw` (surrounding whitespace ignored) as a mailable address, or `InvalidEmail`."""
    text = raw.strip()
    if not text:
        raise InvalidEmail("email is required")
    if len(text) > EMAIL_MAX_LENGTH:
        raise InvalidEmail(f"email is longer than {EMAIL_MAX_LENGTH} characters")
    try:
        result = validate_email(text, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise InvalidEmail(str(exc)) from None
    return CheckedEmail(normalized=result.normalized, ascii=result.ascii_email or result.normalized)


__all__ = ["EMAIL_MAX_LENGTH", "CheckedEmail", "InvalidEmail", "check_email"]
