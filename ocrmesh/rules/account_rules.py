"""The rules an account's fields follow, defined once: auth_svc enforces them
(`auth_svc.domain`) and the gateway's OpenAPI schema states them (`gateway.schemas` builds
its pydantic constraints from these names), so the published contract and the service
cannot drift apart.

What no schema can state stays auth_svc's alone: a password that is common or is the
user's own name or address, an address the email syntax check refuses for its domain.
"""

from __future__ import annotations

import sys
import unicodedata
from typing import Final

from ocrmesh.rules.emails import EMAIL_MAX_LENGTH

# A display name, counted after NFC normalisation and trimming surrounding whitespace.
NAME_MAX_LENGTH: Final = 100
# Characters a name may not hold: control, format (bidi overrides, zero-width), surrogate
# and private-use characters. (Unassigned code points are let through: they are characters
# newer than this Python's Unicode tables, not controls.)
NAME_FORBIDDEN_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Co"})

# ASVS 2.1.1 and 2.1.2: at least 12 characters, at most 128 (of any kind: no composition rules).
PASSWORD_MIN_LENGTH: Final = 12
PASSWORD_MAX_LENGTH: Final = 128

# Verification and reset codes: this many ASCII digits, leading zeros included.
OTP_DIGITS: Final = 6
OTP_PATTERN: Final = f"^[0-9]{{{OTP_DIGITS}}}$"


def is_forbidden_in_name(char: str) -> bool:
    """Whether `char` may not appear in a name (NAME_FORBIDDEN_CATEGORIES)."""
    return unicodedata.category(char) in NAME_FORBIDDEN_CATEGORIES


def _class_body(codes: list[int]) -> str:
    """A regex character-class body matching exactly `codes` (sorted), as literal
    characters: the one notation Python's `re`, pydantic's Rust regex and JSON Schema's
    readers all take for any code point."""
    parts: list[str] = []
    start = previous = codes[0]
    for code in [*codes[1:], -1]:
        if code == previous + 1:
            previous = code
            continue
        parts.append(chr(start) if start == previous else f"{chr(start)}-{chr(previous)}")
        start = previous = code
    return "".join(parts)


def _name_pattern() -> str:
    # Surrogates cannot be written into a pattern (Rust's regex refuses them); they cannot
    # reach a name through JSON text as valid UTF-8 either, and auth_svc still refuses them.
    everything = [c for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF]
    forbidden = [c for c in everything if is_forbidden_in_name(chr(c))]
    # What str.strip() removes, listed so that every regex engine agrees with auth_svc.
    blank = [c for c in everything if chr(c).isspace()]
    inner = f"[^{_class_body(forbidden)}]"
    edge = f"[^{_class_body(sorted(set(forbidden) | set(blank)))}]"
    space = f"[{_class_body(blank)}]"
    # Once trimmed: at least one character, none forbidden, no whitespace at either end.
    return f"^{space}*{edge}(?:{inner}*{edge})?{space}*$"


NAME_PATTERN: Final = _name_pattern()


__all__ = [
    "EMAIL_MAX_LENGTH",
    "NAME_FORBIDDEN_CATEGORIES",
    "NAME_MAX_LENGTH",
    "NAME_PATTERN",
    "OTP_DIGITS",
    "OTP_PATTERN",
    "PASSWORD_MAX_LENGTH",
    "PASSWORD_MIN_LENGTH",
    "is_forbidden_in_name",
]
