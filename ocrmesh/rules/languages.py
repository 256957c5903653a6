"""How a caller names a document's languages: ISO 639-1 codes, spelled the same on the REST
edge (`languages=vi,en`), in `RecognizeRequest.languages` and on the CLI (`--lang vi,en`).

Only the syntax is decided here, so that each edge can refuse a malformed list before it
costs anything; which codes a deployment reads is ocr_svc's answer (`ListLanguages`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

# What an empty list means: the service's behaviour before languages could be named.
DEFAULT_LANGUAGE: Final = "en"
# A document in more languages than this is not a document we can route well, and each
# language more makes Tesseract's search slower: a handful is plenty.
MAX_LANGUAGES: Final = 5
# The longest `languages` text accepted at an edge: MAX_LANGUAGES codes, commas and some spaces.
MAX_LANGUAGES_TEXT: Final = 64
_CODE: Final = re.compile(r"[a-z]{2}")


class InvalidLanguages(ValueError):
    """A language list that is not a handful of two-letter codes; the message says why."""


def normalise_language_codes(codes: Iterable[str]) -> tuple[str, ...]:
    """`codes` lower-cased and without repeats, in the order given; `()` for none. Raises
    `InvalidLanguages` for a code that is not two letters, or for more than MAX_LANGUAGES."""
    seen: dict[str, None] = {}
    for raw in codes:
        code = raw.strip().lower()
        if not _CODE.fullmatch(code):
            shown = raw if len(raw) <= 16 else raw[:16] + "..."
            raise InvalidLanguages(f"{shown!r} is not an ISO 639-1 language code (two letters, like 'vi')")
        seen[code] = None
        if len(seen) > MAX_LANGUAGES:
            raise InvalidLanguages(f"at most {MAX_LANGUAGES} languages may be named")
    return tuple(seen)


def parse_language_list(text: str) -> tuple[str, ...]:
    """The codes of a comma-separated list (`"vi, en"` -> `("vi", "en")`); `()` for a blank
    text. Raises `InvalidLanguages` like `normalise_language_codes`, or for a text longer
    than MAX_LANGUAGES_TEXT."""
    if len(text) > MAX_LANGUAGES_TEXT:
        raise InvalidLanguages(f"the language list is longer than {MAX_LANGUAGES_TEXT} characters")
    if not text.strip():
        return ()
    return normalise_language_codes(text.split(","))
